"""``foodops``: the command line of the platform (besides Dagster's own).

foodops generate --landing-root DIR --start YYYY-MM-DD --days N ...
foodops summary                      tables, DLQ by rule, latest check results
foodops late-data --source S --date D  what to re-materialise after a late file
"""

from __future__ import annotations

import datetime as dt
import os
import sys

import click

from .settings import DEFAULT_LANDING_ROOT, ENV_LANDING_ROOT, ConfigError, Settings


def _date(ctx, param, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


@click.group()
def main() -> None:
    """FoodOps Lakehouse tools."""


@main.command()
@click.option(
    "--landing-root",
    default=lambda: os.environ.get(ENV_LANDING_ROOT, DEFAULT_LANDING_ROOT),
    show_default=f"${ENV_LANDING_ROOT} or {DEFAULT_LANDING_ROOT}",
    help="Landing zone to write into.",
)
@click.option(
    "--start",
    callback=_date,
    default=None,
    help="First day (YYYY-MM-DD). Default: DAYS days before today (UTC), ending yesterday.",
)
@click.option("--days", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--orders-per-day", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--files-per-day", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--bad-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.02,
    show_default=True,
    help="Share of orders, deliveries and reviews replaced by bad records "
    "(plus duplicates and extra fields).",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: for large runs)."
)
def generate(landing_root, start, days, orders_per_day, files_per_day, bad_rate, seed, progress):
    """Write synthetic orders, deliveries, reviews, restaurants and dishes."""
    from .datagen.generator import generate as run

    if start is None:
        start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days)
    report = run(
        landing_root=landing_root,
        start=start,
        days=days,
        orders_per_day=orders_per_day,
        files_per_day=files_per_day,
        bad_rate=bad_rate,
        seed=seed,
        progress=progress,
    )
    click.echo(report.summary())


@main.command()
def summary() -> None:
    """Per table: Delta version and rows; DLQ rows per rule; latest result of every check."""
    from .summary import render

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(render(settings))


@main.command("late-data")
@click.option(
    "--source",
    required=True,
    type=click.Choice(["orders", "deliveries", "reviews"]),
    help="Landing source the late file belongs to.",
)
@click.option(
    "--date",
    "day",
    required=True,
    callback=_date,
    help="The date= directory the late file landed in (YYYY-MM-DD).",
)
def late_data(source: str, day: dt.date) -> None:
    """Print the runs that rebuild a partition after a late file, and everything downstream
    (rolling windows and lookups included), as dagster commands in dependency order."""
    from .definitions import build_definitions
    from .late_data import replan

    try:
        settings = Settings.from_env()
        steps = replan(build_definitions(settings), source, day)
    except (ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"# a file landed late in {source}/date={day.isoformat()}: re-materialise, in this order"
    )
    for step in steps:
        click.echo(step.command())


if __name__ == "__main__":
    sys.exit(main())
