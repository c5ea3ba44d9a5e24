"""Storage and compute: the Spark session resource, Delta tables (delta-rs, and the
Spark-side writers), the landing zone and what landed since a sensor's last tick, the table
registry. Imports settings and the drills' fault hook only."""
