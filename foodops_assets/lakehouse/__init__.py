"""Storage and compute: the Spark session resource, Delta tables (``delta.py``: delta-rs
access; ``writers/``: one writer interface, a module per backend), the landing zone and what
landed since a sensor's last tick, the table registry. Imports settings and the drills' fault
hook only."""
