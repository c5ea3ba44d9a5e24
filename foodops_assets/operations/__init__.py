"""What an operator runs by hand: restore a table, replay the dead-letter queue, re-run a
failed run from failure, plan the re-runs after late data. Jobs loaded by ``definitions.py``
and functions the ``foodops`` command calls; imports the layers below it (assets, checks,
lakehouse, transforms, contracts, settings), never ``definitions`` or ``cli``."""
