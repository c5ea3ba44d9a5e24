"""Pure PySpark ``DataFrame -> DataFrame`` functions (bronze parsing, silver rules, gold
aggregates, ML features and ALS): no Dagster. Imports contracts only."""
