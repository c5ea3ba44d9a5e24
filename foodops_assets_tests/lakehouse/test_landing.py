"""Landing files read for real: one row per file, so lines keep their numbers."""

import datetime as dt
from pathlib import Path

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


def test_entries_resolving_outside_the_landing_root_are_refused_not_read(lake, tmp_path):
    # issue 17: a symlink inside orders/date=D/ pointing to a file elsewhere on the machine
    secret = tmp_path / "elsewhere" / "secret.jsonl"
    secret.parent.mkdir()
    secret.write_text('{"order_id": "o-secret"}\n')
    real = lake.land("orders", DAY, "batch-0001.jsonl", ['{"order_id": "o-1"}'])
    (real.parent / "linked.jsonl").symlink_to(secret)
    # a link that stays inside the landing zone is an ordinary path
    (real.parent / "alias.jsonl").symlink_to(real)
    listing = LandingZone(str(lake.landing)).daily_listing("orders", [DAY])
    assert sorted(Path(f.path).name for f in listing.files[DAY]) == [
        "alias.jsonl",
        "batch-0001.jsonl",
    ]
    [refused] = listing.refused
    assert refused.path.endswith("/linked.jsonl")
    assert "outside the landing root" in refused.reason and str(secret) in refused.reason


def test_a_date_directory_linked_out_of_the_root_fails_saying_why(lake, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "b.jsonl").write_text('{"order_id": "o-1"}\n')
    (lake.landing / "orders").mkdir(parents=True)
    (lake.landing / "orders" / f"date={DAY.isoformat()}").symlink_to(outside)
    with pytest.raises(LandingError, match="outside the landing root"):
        LandingZone(str(lake.landing)).daily_files("orders", [DAY])


def test_the_quarantine_never_writes_outside_the_landing_root(lake, tmp_path):
    landed = lake.land("orders", DAY, "batch-0001.jsonl", ['{"order_id": "o-1"}'])
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (lake.landing / "_quarantine").symlink_to(outside)
    with pytest.raises(LandingError, match="quarantine refused"):
        LandingZone(str(lake.landing)).quarantine(str(landed), "empty file")
    assert list(outside.iterdir()) == []


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
