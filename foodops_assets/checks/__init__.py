"""Data-quality checks (the circuit breakers) and their names. Pure functions of DataFrames
and counts that return ``AssetCheckResult``s; imports transforms and contracts only."""
