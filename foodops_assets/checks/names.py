"""Check names, shared by the assets that declare them and the tests that read them."""

# silver (orders_valid, deliveries_valid, reviews_valid)
NOT_EMPTY = "not_empty"
DLQ_RATE = "dlq_rate_below_threshold"
UNIQUE_KEY = "unique_business_key"
CONSERVATION = "conservation"
CONTRACT = "pandera_contract"
KNOWN_RESTAURANTS_AND_DISHES = "known_restaurants_and_dishes"
# deliveries_valid, reviews_valid: records point to known orders (orders_valid)
KNOWN_ORDERS = "known_orders"


def known_reference(source: str) -> str:
    """Name of the referential-integrity check of a contract's reference into ``source``."""
    return f"known_{source}"


# bronze (orders_raw, deliveries_raw, reviews_raw): non-blocking, WARN severity
LANDING_SCHEMA = "landing_schema_matches_contract"

# gold
REVENUE_RECONCILES = "revenue_reconciles_with_silver"
DELIVERIES_RECONCILE = "deliveries_reconcile_with_silver"
DELIVERY_METRICS_SANE = "delivery_metrics_sane"
REVIEWS_RECONCILE = "reviews_reconcile_with_silver"
RATINGS_SANE = "ratings_sane"

# ml_features
USER_FEATURES_SANE = "user_features_sane"
DISH_FEATURES_SANE = "dish_features_sane"
MODEL_BEATS_BASELINE = "model_beats_popularity_baseline"
# silver, after publishing: read back from the published tables; a failure rolls back
PUBLISHED_CONSISTENCY = "published_consistency"

# dimensions (restaurants_history, dishes_history): audited before each snapshot's commit
SNAPSHOT_NOT_EMPTY = "snapshot_not_empty"
NO_OVERLAPPING_VERSIONS = "no_overlapping_versions"
ONE_CURRENT_VERSION = "one_current_version_per_live_key"
KEEPS_EVERY_VERSION = "history_keeps_every_version"
