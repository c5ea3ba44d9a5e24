"""The asset graph: one module per layer (bronze, silver, gold, ml), ``step.py`` (the
read-transform-audit-write-report sequence they share) and ``graph.py``, which builds every
asset from the contracts. Imports checks, transforms, lakehouse, contracts, partitions and
settings; nothing above it."""
