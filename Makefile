# FoodOps Lakehouse — the commands the README names.
#   make run    install, generate 3 days of sample data, materialise every asset (the ML
#               assets as of the last day), print a summary
#   make test   install, check that the code location loads (dg check defs), run the test suite
#   make ui     install, start the Dagster UI on http://127.0.0.1:3000 (Ctrl-C stops it)
#   make bench  install, run the benchmark suite (BENCH_ORDERS=20000 for a quick one)

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export DAGSTER_HOME ?= $(CURDIR)/.foodops/dagster_home
export FOODOPS_LANDING_ROOT ?= $(CURDIR)/.foodops/landing
export FOODOPS_LAKE_ROOT ?= $(CURDIR)/.foodops/lake

DAYS ?= 3
UI_PORT ?= 3000
# test processes: the suite is mostly waiting on JVMs and subprocesses, two workers overlap that
TEST_WORKERS ?= 2
ORDERS_PER_DAY ?= 2000
# the last DAYS complete UTC days
FIRST_DAY := $(shell python3 -c "import datetime as d; print(d.datetime.now(d.timezone.utc).date() - d.timedelta(days=$(DAYS)))")
LAST_DAY := $(shell python3 -c "import datetime as d; print(d.datetime.now(d.timezone.utc).date() - d.timedelta(days=1))")

DAILY_ASSETS := orders_raw,orders_valid,deliveries_raw,deliveries_valid,reviews_raw,reviews_valid,restaurant_daily_sales,city_hourly_demand,delivery_performance_daily,restaurant_ratings_daily
REFERENCE_ASSETS := restaurants,dishes,restaurants_history,dishes_history
ML_ASSETS := user_features,dish_features,dish_recommendations

.PHONY: install run test ui lint bench clean lock dagster-home system-deps

install: $(STAMP)

# Debian packages the end-to-end tests drive: headless Chromium + its driver (the browser
# test of the UI), the Prometheus Pushgateway (the metrics round trip) and the PostgreSQL
# server (the production instance's storage; its binaries live in /usr/lib/postgresql/*/bin,
# not on PATH). Skipped when present.
SYSTEM_DEPS := chromium chromium-driver prometheus-pushgateway postgresql
system-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		&& command -v prometheus-pushgateway >/dev/null \
		&& ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "system packages present: $(SYSTEM_DEPS)"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $(SYSTEM_DEPS); \
	fi

$(STAMP): pyproject.toml requirements.lock
	@command -v java >/dev/null || { echo "Java 17 is required (apt install openjdk-17-jre-headless)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

dagster-home:
	@mkdir -p "$(DAGSTER_HOME)"
	@cp resources/dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

run: install dagster-home
	$(BIN)/foodops generate --landing-root "$(FOODOPS_LANDING_ROOT)" --start $(FIRST_DAY) \
		--days $(DAYS) --orders-per-day $(ORDERS_PER_DAY) --files-per-day 4 --bad-rate 0.02 --seed 42
	$(BIN)/dagster asset materialize -m foodops_assets --select $(REFERENCE_ASSETS)
	$(BIN)/dagster asset materialize -m foodops_assets --select $(DAILY_ASSETS) \
		--partition-range $(FIRST_DAY)...$(LAST_DAY)
	$(BIN)/dagster asset materialize -m foodops_assets --select $(ML_ASSETS) --partition $(LAST_DAY)
	@echo
	@$(BIN)/foodops summary

test: install dagster-home
	$(BIN)/ruff check foodops_assets foodops_assets_tests bench
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# foodops ui prints the URL and forwards Ctrl-C / SIGTERM to dagster dev's whole process tree
# (the runs attach to a Spark Connect server started with the UI; UI_ARGS=--no-warm-spark: each
# run starts its own embedded Spark)
UI_ARGS ?=
ui: install dagster-home
	@$(BIN)/foodops ui -w workspace.yaml -h 127.0.0.1 -p $(UI_PORT) $(UI_ARGS)

# the benchmark suite (bench/run_all.py); BENCH_ORDERS scales the e2e run, BENCH_ARGS adds options
BENCH_ORDERS ?= 1000000
BENCH_ARGS ?=
bench: install
	$(BIN)/python bench/run_all.py --orders $(BENCH_ORDERS) $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check foodops_assets foodops_assets_tests bench

# Re-freeze the transitive dependency set after changing pins in pyproject.toml.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip==25.3
	.venv-lock/bin/python -m pip install --quiet ".[dev]"
	.venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^foodops' > requirements.lock
	rm -rf .venv-lock

clean:
	rm -rf .foodops
