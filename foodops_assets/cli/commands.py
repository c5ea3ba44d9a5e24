"""``foodops``: the command line of the platform (besides Dagster's own).

foodops generate --landing-root DIR --start YYYY-MM-DD --days N ...
foodops summary                      tables, DLQ by rule, latest check results
foodops late-data --source S --date D  what to re-materialise after a late file
foodops rerun RUN_ID                 re-execute a failed run from failure
foodops dlq export --source S --date D --out FILE   DLQ rows as an editable corrections file
foodops ui [-w workspace.yaml] [-h 127.0.0.1] [-p 3000] [--no-warm-spark] [--no-warm-runs]
                                                 dagster dev, stopped cleanly on Ctrl-C
"""

from __future__ import annotations

import datetime as dt
import os
import sys

import click

from ..settings import (
    DEFAULT_LANDING_ROOT,
    ENV_LANDING_ROOT,
    ENV_SPARK_REMOTE,
    ConfigError,
    Settings,
)


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
    from ..datagen.generator import generate as run

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
    from ..definitions import build_definitions
    from ..operations.late_data import replan

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


@main.command()
@click.argument("run_id")
def rerun(run_id: str) -> None:
    """Re-execute a failed run from failure: only its failed steps and what follows them run
    (the UI's Re-execute > From failure). Uses the Dagster instance of $DAGSTER_HOME."""
    import dagster as dg

    from ..operations.rerun import rerun_from_failure

    try:
        Settings.from_env()
        with dg.DagsterInstance.get() as instance:
            result = rerun_from_failure(run_id, instance)
    except (ConfigError, ValueError, dg.DagsterInvariantViolationError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"re-execution run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'}")
    if not result.success:
        sys.exit(1)


@main.command()
@click.option("-w", "--workspace", default="workspace.yaml", show_default=True)
@click.option("-h", "--host", default="127.0.0.1", show_default=True)
@click.option("-p", "--port", default=3000, show_default=True, type=int)
@click.option(
    "--warm-spark/--no-warm-spark",
    default=True,
    show_default=True,
    help="Start a local Spark Connect server with the UI and run every launched run on it "
    "(no JVM start per run); stopped with the UI. Ignored when FOODOPS_SPARK_REMOTE is set. "
    "--no-warm-spark: each run starts an embedded Spark of its own.",
)
@click.option(
    "--warm-runs/--no-warm-runs",
    default=True,
    show_default=True,
    help="Start a warm run worker with the UI (needs DAGSTER_HOME): each launched run starts in "
    "a standby process that has already loaded the code location and opened its Spark session.",
)
def ui(workspace: str, host: str, port: int, warm_spark: bool, warm_runs: bool) -> None:
    """The Dagster UI (dagster dev: webserver + daemon). Prints its URL; Ctrl-C (SIGINT) or
    SIGTERM stops the whole process tree (webserver, daemon, code servers, run workers)."""
    import contextlib
    from pathlib import Path

    from .ui import serve

    echo = lambda m: click.echo(m)  # noqa: E731
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    home = os.environ.get("DAGSTER_HOME")
    env = dict(os.environ)
    try:
        with contextlib.ExitStack() as stack:
            if warm_spark and not settings.spark_remote:
                from ..lakehouse.connect_server import local_connect_server

                log = Path(home or ".foodops") / "spark-connect.log"
                echo(f"starting a warm Spark (Spark Connect server, log {log}) ...")
                url = stack.enter_context(
                    local_connect_server(log, driver_memory=settings.spark_driver_memory)
                )
                echo(f"warm Spark on {url}: runs attach to it (FOODOPS_SPARK_REMOTE)")
                env[ENV_SPARK_REMOTE] = url
            if warm_runs and home:
                from ..automation.warm_runs import warm_run_worker

                log = Path(home) / "warm-runs.log"
                stack.enter_context(warm_run_worker(home, env, log))
                echo(f"warm run worker: runs start in warm standby processes (log {log})")
            elif warm_runs:
                echo("DAGSTER_HOME is not set: each run starts in a new process")
            code = serve(workspace, host, port, echo=echo, env=env)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


@main.group()
def dlq() -> None:
    """Dead-letter queue tools (replay runs as the dlq_replay job)."""


@dlq.command("export")
@click.option("--source", required=True, type=click.Choice(["orders", "deliveries", "reviews"]))
@click.option(
    "--date",
    "days",
    required=True,
    multiple=True,
    callback=lambda c, p, v: [_date(c, p, d) for d in v],
    help="Partition (YYYY-MM-DD); repeat for several.",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="JSONL file to write.")
def dlq_export(source: str, days: list[dt.date], out: str) -> None:
    """Write DLQ rows as a corrections file: edit each `record`, delete lines you do not
    fix, then run the dlq_replay job with corrections_path pointing to it."""
    from pathlib import Path

    from ..lakehouse.delta import DeltaStore, TableNotMaterialized
    from ..operations.dlq_replay import export_dlq

    try:
        settings = Settings.from_env()
        n = export_dlq(DeltaStore(settings.lake_root), source, days, Path(out))
    except (ConfigError, TableNotMaterialized) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {n} {source} DLQ rows to {out}")


if __name__ == "__main__":
    sys.exit(main())
