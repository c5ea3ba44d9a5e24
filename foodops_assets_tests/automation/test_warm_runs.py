"""The warm run worker and its launcher: a real instance on resources/dagster.yaml, a real
worker process (``foodops ui`` starts the same), real runs in its standby processes."""

from __future__ import annotations

import os
import shutil
import signal
import time

import dagster as dg
import pytest
from dagster._core.launcher import LaunchRunContext

from foodops_assets.automation import warm_runs
from foodops_assets_tests.automation import warm_runs_jobs
from foodops_assets_tests.conftest import REPO_ROOT

FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPO_ROOT / "resources" / "dagster.yaml", home / "dagster.yaml")
    return home


@pytest.fixture(scope="module")
def worker(home, tmp_path_factory):
    marker = tmp_path_factory.mktemp("marker") / "pid"
    env = {**os.environ, "WARM_RUNS_TEST_MARKER": str(marker)}
    with warm_runs.warm_run_worker(str(home), env, home / "warm-runs.log") as path:
        deadline = time.monotonic() + 120
        while not os.path.exists(path):  # it listens once it has loaded the code location
            assert time.monotonic() < deadline, (home / "warm-runs.log").read_text()
            time.sleep(0.2)
        yield path, marker, warm_runs.ask(path, {"op": "ping"})["pid"]


@pytest.fixture
def instance(home):
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def launch(instance: dg.DagsterInstance, job: dg.JobDefinition) -> dg.DagsterRun:
    run = instance.create_run_for_job(
        job,
        status=dg.DagsterRunStatus.STARTING,
        job_code_origin=dg.reconstructable(getattr(warm_runs_jobs, job.name)).get_python_origin(),
    )
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run


def wait_for(instance, run_id, statuses, timeout=120.0) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout
    while True:
        run = instance.get_run_by_id(run_id)
        if run.status in statuses:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run.status}"
        time.sleep(0.1)


def settled_status(path, run_id, timeout=30.0) -> dict:
    """What the worker says of the run's process once it is no longer running."""
    deadline = time.monotonic() + timeout
    while (status := warm_runs.ask(path, {"op": "status", "run_id": run_id}))["state"] == (
        "running"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return status


def messages(instance, run_id) -> str:
    return "\n".join(e.message or "" for e in instance.all_logs(run_id))


def test_the_instance_launches_runs_with_the_warm_launcher(instance):
    assert isinstance(instance.run_launcher, warm_runs.WarmRunLauncher)


def test_a_run_executes_in_a_standby_started_before_it(instance, worker):
    path, marker, worker_pid = worker
    standbys = warm_runs.ask(path, {"op": "ping"})["standbys"]
    assert len(standbys) == warm_runs.STANDBYS
    run = launch(instance, warm_runs_jobs.quick)
    done = wait_for(instance, run.run_id, FINISHED)
    assert done.status == dg.DagsterRunStatus.SUCCESS, messages(instance, run.run_id)
    assert done.tags[warm_runs.WORKER_TAG] == warm_runs.WARM
    # the step ran in a standby that existed before the run was launched (no process start
    # on the run's path), not in the worker itself
    pid = int(marker.read_text())
    assert pid in standbys and pid != worker_pid
    assert "a standby of the warm run worker" in messages(instance, run.run_id)
    # its process ends just after the run's last event
    assert settled_status(path, run.run_id) == {
        "state": "exited",
        "pid": pid,
        "code": 0,
        "how": "exit code 0",
    }
    # a second run gets a process of its own: one run per process, as Dagster's own worker
    second = launch(instance, warm_runs_jobs.quick)
    assert wait_for(instance, second.run_id, FINISHED).status == dg.DagsterRunStatus.SUCCESS
    assert int(marker.read_text()) not in (pid, worker_pid)
    # once no run is in progress, the pool is full again
    deadline = time.monotonic() + 30
    while len(warm_runs.ask(path, {"op": "ping"})["standbys"]) < warm_runs.STANDBYS:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_terminating_a_warm_run_cancels_it(instance, worker):
    run = launch(instance, warm_runs_jobs.slow)
    started = wait_for(instance, run.run_id, {dg.DagsterRunStatus.STARTED, *FINISHED})
    assert started.status == dg.DagsterRunStatus.STARTED
    assert warm_runs.ask(worker[0], {"op": "status", "run_id": run.run_id})["state"] == "running"
    assert instance.run_launcher.terminate(run.run_id)
    assert wait_for(instance, run.run_id, FINISHED).status == dg.DagsterRunStatus.CANCELED


def test_a_killed_run_process_fails_its_run_at_once(instance, worker):
    path, _, _ = worker
    run = launch(instance, warm_runs_jobs.slow)
    started = wait_for(instance, run.run_id, {dg.DagsterRunStatus.STARTED, *FINISHED})
    assert started.status == dg.DagsterRunStatus.STARTED
    pid = warm_runs.ask(path, {"op": "status", "run_id": run.run_id})["pid"]
    os.kill(pid, signal.SIGKILL)  # the OOM killer, say: nothing in the run reports it
    # the worker fails the run itself (Dagster's default launcher reports no worker health,
    # so run monitoring would leave it "started" until its max runtime)
    assert wait_for(instance, run.run_id, FINISHED, timeout=30).status == (
        dg.DagsterRunStatus.FAILURE
    )
    assert "ended with signal SIGKILL before the run finished" in messages(instance, run.run_id)
    assert warm_runs.ask(path, {"op": "status", "run_id": run.run_id})["how"] == "signal SIGKILL"


def test_without_a_worker_the_launcher_launches_the_default_way(tmp_path):
    shutil.copy(REPO_ROOT / "resources" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert not os.path.exists(warm_runs.socket_path(str(tmp_path)))
        run = instance.create_run_for_job(warm_runs_jobs.quick)
        # Dagster's default launcher: it needs the code server of a workspace
        with pytest.raises(dg.DagsterInvariantViolationError, match="requires a workspace"):
            instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        assert warm_runs.WORKER_TAG not in instance.get_run_by_id(run.run_id).tags


def test_standbys_are_replaced_when_the_code_changes_on_disk(home, monkeypatch):
    """A standby holds the code as it was when it started: after an edit, the next run must
    not get it."""
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    worker = warm_runs.Worker()
    try:
        worker.tend()
        old = [proc for proc, _ in worker.standbys]
        assert len(old) == warm_runs.STANDBYS
        worker.tend()
        assert [proc for proc, _ in worker.standbys] == old  # nothing changed: kept
        worker.fingerprint = "the code as it was"  # what an edit of a .py file looks like
        worker.tend()
        new = [proc for proc, _ in worker.standbys]
        assert len(new) == warm_runs.STANDBYS and not set(new) & set(old)
        # the old ones were given no run: they exit cleanly
        assert [proc.wait(timeout=60) for proc in old] == [0] * len(old)
    finally:
        worker.stop(grace=30)
