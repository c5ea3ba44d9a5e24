"""Check names, shared by the assets that declare them and the tests that read them."""

# silver (orders_valid, deliveries_valid, reviews_valid)
NOT_EMPTY = "not_empty"
DLQ_RATE = "dlq_rate_below_threshold"
UNIQUE_KEY = "unique_business_key"
CONSERVATION = "conservation"
CONTRACT = "pandera_contract"
KNOWN_RESTAURANTS_AND_DISHES = "known_restaurants_and_dishes"

# gold
REVENUE_RECONCILES = "revenue_reconciles_with_silver"
