"""Folding files into a materialised day equals a full rebuild of the day (assets/fold.py).

Hypothesis generates a sequence of landing files for one orders day: valid orders whose
keys collide within and across files (with different content, so which copy wins
matters), rule breakers, unparseable lines, blank lines, file names that sort before or
after the ones already landed (the newest landing wins by name), and a file landed again
under its name with new content. The first file is loaded by a full run; every later one
by a run tagged as the file-arrival sensor tags its runs, which must fold it. Then a second
lake is rebuilt from the same landing zone in one full run, and bronze, silver, the DLQ and
both gold tables of the day must hold exactly the same rows in the two lakes, with every
check passed on the way.

The number of examples is bounded: each is several real materialisations.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os

import dagster as dg
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from foodops_assets.assets.fold import FOLD, FOLD_TAG, FULL, INGEST_MODE
from foodops_assets.lakehouse.tables import (
    CITY_HOURLY_DEMAND,
    DEAD_LETTER_QUEUE,
    ORDERS_RAW,
    ORDERS_VALID,
    RESTAURANT_DAILY_SALES,
)
from foodops_assets_tests.conftest import Lake, materialize
from foodops_assets_tests.factories import land_reference, line, order, without

DAY = dt.date(2026, 11, 20)
PATH = ["orders_raw", "orders_valid", "restaurant_daily_sales", "city_hourly_demand"]
TABLES = [ORDERS_RAW, ORDERS_VALID, DEAD_LETTER_QUEUE, RESTAURANT_DAILY_SALES, CITY_HOURLY_DEMAND]
ANY_DLQ_RATE = {"ops": {"orders_valid": {"config": {"max_dlq_rate": 1.0}}}}
FOLDED = {FOLD_TAG: FOLD}
NAMES = ["batch-a.jsonl", "batch-c.jsonl", "batch-e.jsonl", "batch-g.jsonl"]
_clock = itertools.count(1)


def _text(n: int, kind: str, variant: int) -> str:
    """One landed line: an order keyed o-<n> (``variant`` changes its content), or a bad
    line of some kind."""
    if kind == "valid":
        if n % 2:
            record = order(n, day=DAY, quantity=1 + variant, dish_id=f"d-{1 + variant % 2}")
        else:
            record = order(
                n, day=DAY, quantity=1 + variant, restaurant_id="r-2", dish_id="d-3", city="Mumbai"
            )
        return line(record)
    if kind == "rule":
        return line(order(n, day=DAY, quantity=-1 - variant))
    if kind == "missing":
        return line(without(order(n, day=DAY), "price"))
    if kind == "blank":
        return "   "
    return f'{{"order_id": "o-{n}", "quantity": '


LINE = st.tuples(
    st.integers(1, 8),
    st.sampled_from(["valid", "valid", "valid", "rule", "missing", "blank", "broken"]),
    st.integers(0, 3),
)
# every file holds at least one valid order, so the day is never empty (which would trip
# the not_empty circuit breaker in both lakes alike)
LINES = st.tuples(
    st.tuples(st.integers(1, 8), st.just("valid"), st.integers(0, 3)),
    st.lists(LINE, max_size=8),
).map(lambda drawn: st_shuffle(drawn[0], drawn[1]))
FILES = st.lists(st.tuples(st.sampled_from(NAMES), LINES), min_size=2, max_size=3)


def st_shuffle(first, rest: list) -> list:
    """The guaranteed valid line among the others, at a place that depends on them."""
    place = sum(n for n, _, _ in rest) % (len(rest) + 1)
    return [*rest[:place], first, *rest[place:]]


def _land(lake: Lake, name: str, lines: list[tuple[int, str, int]]) -> None:
    path = lake.land("orders", DAY, name, [_text(*spec) for spec in lines])
    # every landing a distinct modification time, as files landing one after another have
    stamp = (1_700_000_000 + next(_clock)) * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def _mode(result: dg.ExecuteInProcessResult, asset: str) -> str:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return event.materialization.metadata[INGEST_MODE].value


def _all_checks_passed(result: dg.ExecuteInProcessResult) -> None:
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    assert not [c for c in failed if c != "landing_schema"], failed


def _content(spark, lake: Lake) -> dict:
    out = {}
    for table in TABLES:
        df = lake.read(spark, table, {"partition_date": [DAY]})
        out[table.name] = sorted(map(repr, (r.asDict(recursive=True) for r in df.collect())))
    return out


def _rebuilt_content(lake: Lake, spark_resource, spark) -> dict:
    """The day as one full run rebuilds it from ``lake``'s landing zone, in a lake of its
    own beside it."""
    rebuilt = Lake.under(lake.root, landing=lake.landing, lake="rebuilt")
    with dg.instance_for_test() as instance:
        materialize(rebuilt, spark_resource, ["restaurants", "dishes"], instance=instance)
        _materialize(rebuilt, spark_resource, instance)
    return _content(spark, rebuilt)


def _materialize(lake, spark_resource, instance, tags=None):
    result = materialize(
        lake,
        spark_resource,
        PATH,
        partition_key=DAY.isoformat(),
        instance=instance,
        run_config=ANY_DLQ_RATE,
        tags=tags,
    )
    _all_checks_passed(result)
    return result


@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    database=None,
    # a failing example is reported as generated: shrinking it would cost minutes of runs
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(files=FILES)
def test_files_folded_one_by_one_equal_a_full_rebuild_of_the_day(
    files, tmp_path_factory, spark_resource, spark
):
    root = tmp_path_factory.mktemp("fold")
    lake = Lake.under(root)
    land_reference(lake)
    with dg.instance_for_test() as instance:
        materialize(lake, spark_resource, ["restaurants", "dishes"], instance=instance)
        (first_name, first_lines), *later = files
        _land(lake, first_name, first_lines)
        _materialize(lake, spark_resource, instance)
        landed = {first_name}
        for name, lines in later:
            _land(lake, name, lines)
            landed.add(name)
            result = _materialize(lake, spark_resource, instance, FOLDED)
            # the only file of the day landed again is the whole day: a full rebuild; any
            # other file is folded in
            expected = FULL if landed == {name} else FOLD
            assert _mode(result, "orders_raw") == expected
            assert _mode(result, "orders_valid") == expected

    assert _content(spark, lake) == _rebuilt_content(lake, spark_resource, spark)
