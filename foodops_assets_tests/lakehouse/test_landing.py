"""Landing files read for real: one row per file, so lines keep their numbers."""

import datetime as dt

import pytest

from foodops_assets.lakehouse.landing import LandingError, LandingZone, read_whole_files
from foodops_assets.transforms.bronze import split_lines

DAY = dt.date(2026, 11, 20)


def test_landed_files_are_read_whole_and_lines_keep_their_numbers(lake, spark):
    lake.land("reviews", DAY, "batch-0001.jsonl", ['{"a":1}', "", '{"a":2}', '{"a":3}'])
    lake.land("reviews", DAY, "batch-0002.jsonl", ['{"a":4}'])
    files = LandingZone(str(lake.landing)).daily_files("reviews", [DAY])[DAY]
    whole = read_whole_files(spark, [f.path for f in files])
    assert whole.count() == 2  # one row per file, not per line
    lines = sorted(
        (r.source_file.rsplit("/", 1)[-1], r.source_line, r.value)
        for r in split_lines(whole).collect()
    )
    assert lines == [
        ("batch-0001.jsonl", 1, '{"a":1}'),
        ("batch-0001.jsonl", 3, '{"a":2}'),  # line 2 is blank: skipped, numbering kept
        ("batch-0001.jsonl", 4, '{"a":3}'),
        ("batch-0002.jsonl", 1, '{"a":4}'),
    ]


def test_snapshots_are_ordered_by_the_time_in_their_name(lake):
    for name in (
        "snapshot-20261103.jsonl",
        "snapshot-20261102T120000Z.jsonl",  # noon of the 2nd: after the 2nd, before the 3rd
        "snapshot-20261102.jsonl",
    ):
        lake.land("restaurants", None, name, ['{"restaurant_id": "r-1"}'])
    zone = LandingZone(str(lake.landing))
    assert [
        (t.isoformat(), f.path.rsplit("/", 1)[1]) for t, f in zone.snapshots("restaurants")
    ] == [
        ("2026-11-02T00:00:00+00:00", "snapshot-20261102.jsonl"),
        ("2026-11-02T12:00:00+00:00", "snapshot-20261102T120000Z.jsonl"),
        ("2026-11-03T00:00:00+00:00", "snapshot-20261103.jsonl"),
    ]
    assert zone.newest_snapshot("restaurants").path.endswith("snapshot-20261103.jsonl")
    # a snapshot whose name says no time cannot be placed in the history: the run says so
    lake.land("restaurants", None, "latest.jsonl", ['{"restaurant_id": "r-1"}'])
    with pytest.raises(LandingError, match="latest.jsonl.*snapshot-YYYYMMDD"):
        zone.snapshots("restaurants")
