"""The SCD2 fold on small hand-made snapshots: every awkward case, exact versions."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from foodops_assets.transforms.history import (
    Snapshot,
    apply_plan,
    current_version_problems,
    lost_versions,
    observed_versions,
    overlapping_versions,
    plan_snapshot,
)

KEY = ["restaurant_id"]
TRACKED = ["name", "city"]


def day(n: int) -> dt.datetime:
    return dt.datetime(2026, 11, n, tzinfo=dt.UTC)


def snap(n: int) -> Snapshot:
    return Snapshot(day(n), f"snapshot-202611{n:02d}.jsonl")


def rows(**names: str) -> list[dict]:
    return [{"restaurant_id": k, "name": v, "city": "Pune"} for k, v in names.items()]


def apply(snapshots: list[tuple[Snapshot, list[dict]]], rejected=None) -> tuple[list, list]:
    """Apply the snapshots in the given order; (history, plans). ``rejected``: file ->
    the keys whose rows that snapshot sent to the DLQ."""
    history: list[dict] = []
    applied: list[Snapshot] = []
    plans = []
    for s, content in snapshots:
        skipped = frozenset((rejected or {}).get(s.file, []))
        s = Snapshot(s.time, s.file, skipped)
        plan = plan_snapshot(
            history,
            applied,
            s,
            observed_versions(content, KEY, TRACKED),
            skipped,
            KEY,
        )
        history = apply_plan(history, plan, KEY)
        applied.append(s)
        plans.append(plan)
        assert overlapping_versions(history, KEY) == []
        assert current_version_problems(history, KEY) == []
    return history, plans


def versions(history) -> list[tuple]:
    return sorted(
        (
            r["restaurant_id"],
            r["name"],
            r["valid_from"].day,
            r["valid_to"].day if r["valid_to"] else None,
            r["is_current"],
            r["is_deleted"],
            r["source_file"][-10:-6],
        )
        for r in history
    )


SEQUENCE = [
    (snap(1), rows(a="Spice", b="Dosa")),
    (snap(2), rows(a="Spice", b="Dosa", c="Wok")),
    (snap(3), rows(a="Spice Hub", c="Wok")),  # a renamed, b deleted
    (snap(4), rows(a="Spice", b="Dosa", c="Wok")),  # a reverted, b re-added
]


def test_in_order_versions_change_revert_delete_and_re_add():
    history, plans = apply(SEQUENCE)
    assert versions(history) == [
        ("a", "Spice", 1, 3, False, False, "1101"),
        ("a", "Spice", 4, None, True, False, "1104"),
        ("a", "Spice Hub", 3, 4, False, False, "1103"),
        ("b", "Dosa", 1, 3, False, True, "1101"),
        ("b", "Dosa", 4, None, True, False, "1104"),
        ("c", "Wok", 2, None, True, False, "1102"),
    ]
    third = plans[2]
    assert (third.opened, third.closed, third.deleted_keys, third.unchanged) == (1, 2, 1, 1)
    # conservation: every row of a snapshot opened a version or confirmed one
    for (_, content), plan in zip(SEQUENCE, plans, strict=True):
        assert plan.opened + plan.unchanged == len(content)


@pytest.mark.parametrize("late", [0, 1, 2])
def test_a_late_snapshot_gives_the_in_order_history_and_rewrites_only_its_keys(late):
    in_order, _ = apply(SEQUENCE)
    arrival = [s for i, s in enumerate(SEQUENCE) if i != late] + [SEQUENCE[late]]
    history, plans = apply(arrival)
    assert versions(history) == versions(in_order)
    assert plans[-1].late
    # the late snapshot only re-cut keys whose state it changes
    changed = {r["restaurant_id"] for r in plans[-1].upserts + plans[-1].deletes}
    assert changed == {k[0] for k in plans[-1].rewritten_keys}
    if late == 0:  # snapshot 1 arrives last: only a and b existed then; c is untouched
        assert changed == {"a", "b"}


def test_every_arrival_order_gives_the_same_history():
    in_order, _ = apply(SEQUENCE)
    for order in itertools.permutations(SEQUENCE):
        assert versions(apply(list(order))[0]) == versions(in_order)


def test_the_same_content_twice_opens_nothing():
    history, plans = apply([(snap(1), rows(a="Spice")), (snap(2), rows(a="Spice"))])
    assert plans[1].changes == 0 and plans[1].unchanged == 1
    assert versions(history) == [("a", "Spice", 1, None, True, False, "1101")]


def test_a_rejected_key_keeps_its_version_and_the_rest_applies():
    history, plans = apply(
        [(snap(1), rows(a="Spice", b="Dosa")), (snap(2), rows(b="Dosa Corner"))],
        rejected={"snapshot-20261102.jsonl": [("a",)]},
    )
    # a's rows were rejected in snapshot 2: a is not closed; b's change applies
    assert versions(history) == [
        ("a", "Spice", 1, None, True, False, "1101"),
        ("b", "Dosa", 1, 2, False, False, "1101"),
        ("b", "Dosa Corner", 2, None, True, False, "1102"),
    ]
    assert plans[1].opened == 1 and plans[1].closed == 1


def test_the_checks_see_overlaps_double_currents_and_lost_versions():
    history, _ = apply(SEQUENCE[:2])
    broken = [dict(r) for r in history] + [
        dict(history[0], valid_from=day(1) + dt.timedelta(hours=1))
    ]
    assert overlapping_versions(broken, KEY)
    assert current_version_problems(broken, KEY)
    assert current_version_problems(history, KEY, live=[("a",)])  # b and c are current
    assert lost_versions(history, history[1:], KEY, rewritten=[]) != []
    key = (history[0]["restaurant_id"],)
    assert lost_versions(history, history[1:], KEY, rewritten=[key]) == []


def test_two_snapshots_of_one_time_are_refused():
    history, _ = apply(SEQUENCE[:1])
    with pytest.raises(ValueError, match="already applied"):
        plan_snapshot(history, [snap(1)], Snapshot(day(1), "other.jsonl"), {}, [], KEY)


def test_a_late_snapshot_carries_its_state_over_a_later_rejected_row():
    """a's row was rejected in snapshot 3, so a kept its state there; a late snapshot 2
    that renames a must carry the new name over snapshot 3 too, as in time order."""
    rejected = {"snapshot-20261103.jsonl": [("a",)]}
    sequence = [
        (snap(1), rows(a="Spice")),
        (snap(2), rows(a="Spice Hub")),
        (snap(3), rows()),  # a's (duplicated) rows went to the DLQ
    ]
    in_order, _ = apply(sequence, rejected)
    late, _ = apply([sequence[0], sequence[2], sequence[1]], rejected)
    assert (
        versions(late)
        == versions(in_order)
        == [
            ("a", "Spice", 1, 2, False, False, "1101"),
            ("a", "Spice Hub", 2, None, True, False, "1102"),
        ]
    )
