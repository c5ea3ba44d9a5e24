"""The asset graph: one module per layer (bronze, silver, gold, ml) and ``graph.py``, which
builds every asset from the contracts. Thin: read, transform, audit, write, report. Imports
checks, transforms, lakehouse, contracts, partitions and settings; nothing above it."""
