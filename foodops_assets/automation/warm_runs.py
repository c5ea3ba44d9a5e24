"""Runs that start warm: in a standby process that has already loaded everything a run needs.

Dagster's code server starts every launched run in a new Python process (``multiprocessing``
spawn, hard-coded): here ~2.5 s of interpreter start, imports and code-location load, then
~1.2 s for the Spark session (a JVM start, ~5 s, with embedded Spark) and ~0.6 s for
pandera's first validation, all before the first row is read, paid by every run a landed
file requests. ``foodops ui`` starts a *warm run worker* beside ``dagster dev``: it keeps
:data:`STANDBYS` standby processes ready, each of which has imported Dagster and the
definitions, opened the run's Spark session (the same settings the run's resource uses, so
the run's ``getOrCreate`` returns it; a remote one only, foodops ui's warm Spark or a cluster:
an embedded JVM per idle standby would cost more than it saves) and run pandera once, and
then waits. The worker
listens on a Unix socket; :class:`WarmRunLauncher`, the instance's run launcher
(``resources/dagster.yaml``), hands it each run the queue dequeues, the worker passes the
run to a standby (over its stdin) and starts a new standby in its place. The standby executes
the run exactly as Dagster's run worker does (``core_execute_run``: events, step isolation,
failure reporting) and exits: one run per process, as with Dagster's own worker (a run's
memory, threads and Spark session end with it), and two runs of different lanes run side by
side. A standby is a new process (not a ``fork``: Spark, gRPC, polars, Arrow and delta-rs
keep threads that do not survive one).

Standbys are replaced when the package's code changes on disk and after
:data:`STANDBY_MAX_AGE_SECONDS` (a Spark Connect server ends a session idle for an hour).

When the worker is not there (``dagster asset materialize``, tests, a production instance
without it) or does not answer, the launcher launches the run the default way, through the
code server.

Termination: the launcher asks the worker to interrupt the run's process (SIGINT: Dagster
marks the run canceled). A run whose process is killed (the OOM killer) is failed by the
worker within a second, instead of staying "started" until its ``dagster/max_runtime``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

WORKER_TAG = "foodops/run_worker"
WARM = "warm"
# how long the worker gives a run it interrupts (on its own stop) before killing it
STOP_GRACE_SECONDS = 20.0
_ASK_TIMEOUT_SECONDS = 5.0
_PACKAGE = Path(__file__).resolve().parents[1]
_MODULE = "foodops_assets.automation.warm_runs"  # (``__name__`` is __main__ under -m)


def socket_path(dagster_home: str) -> str:
    """The worker's socket for an instance: in the temp directory (a Unix socket path is at
    most 107 bytes; DAGSTER_HOME may be deeper), named after the instance's directory."""
    digest = hashlib.sha256(os.path.realpath(dagster_home).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"foodops-runs-{digest}.sock")


def ask(path: str, request: Mapping[str, Any], timeout: float = _ASK_TIMEOUT_SECONDS) -> dict:
    """One request to the worker, one reply. Raises OSError when no worker listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(path)
        conn.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        raise ConnectionError(f"the warm run worker on {path} closed the connection")
    return json.loads(data)


def code_fingerprint(package: Path = _PACKAGE) -> str:
    """The package's Python files and their modification times: changes when code is edited."""
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        with contextlib.suppress(FileNotFoundError):
            h.update(f"{path}\0{path.stat().st_mtime_ns}\n".encode())
    return h.hexdigest()


# -- the launcher (in the daemon and the webserver) ----------------------------------------------
class WarmRunLauncher(dg.DefaultRunLauncher):
    """Dagster's default run launcher, which first offers each run to the warm run worker of
    the instance (:func:`socket_path` of its directory) and launches it the default way when
    there is none or it declines."""

    def _socket(self) -> str:
        return socket_path(self._instance.root_directory)

    def launch_run(self, context) -> None:
        run = context.dagster_run
        path = self._socket()
        if os.path.exists(path):
            try:
                self._instance.add_run_tags(run.run_id, {WORKER_TAG: WARM})
                reply = ask(path, {"op": "launch", "run_id": run.run_id})
                if reply.get("pid"):
                    return
                why = reply.get("error", "it declined")
            except (OSError, ValueError) as exc:
                if self._worker_has(path, run.run_id):  # the reply was lost, not the launch
                    return
                why = f"it did not answer ({exc})"
            self._instance.add_run_tags(run.run_id, {WORKER_TAG: "code_server"})
            self._instance.report_engine_event(
                f"The warm run worker did not take this run: {why}. Launched by the code "
                "server instead (a new process).",
                run,
                cls=self.__class__,
            )
        super().launch_run(context)

    @staticmethod
    def _worker_has(path: str, run_id: str) -> bool:
        """The worker started a process for the run (never launch a run twice)."""
        try:
            return ask(path, {"op": "status", "run_id": run_id}).get("state") != "unknown"
        except (OSError, ValueError):
            return False

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished or run.tags.get(WORKER_TAG) != WARM:
            return super().terminate(run_id)
        self._instance.report_run_canceling(run)
        try:
            reply = ask(self._socket(), {"op": "terminate", "run_id": run_id})
        except (OSError, ValueError) as exc:
            reply = {"error": f"the warm run worker did not answer ({exc})"}
        if not reply.get("signalled"):
            self._instance.report_engine_event(
                f"Could not interrupt the run's process: {reply.get('error', 'not running')}.",
                run,
                cls=self.__class__,
            )
            return False
        return True


# -- the worker ------------------------------------------------------------------------------
# standbys kept ready: the instance's max_concurrent_runs (resources/dagster.yaml), so two
# runs landing together both start warm
STANDBYS = 2
# a standby older than this is replaced (Spark Connect ends a session idle for 60 min)
STANDBY_MAX_AGE_SECONDS = 30 * 60
# a standby that exits before it is given a run is restarted after this long (no crash loop)
RESTART_DELAY_SECONDS = 10.0


@contextlib.contextmanager
def warm_run_worker(dagster_home: str, env: Mapping[str, str], log: Path):
    """Start the warm run worker of the instance at ``dagster_home`` (with ``env``: the
    environment the runs get), yield its socket path, stop it (and the runs it still holds,
    interrupted) on exit. Its output, and its runs' processes', goes to ``log``."""
    path = socket_path(dagster_home)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", _MODULE, "serve", path],
            env={**env, "DAGSTER_HOME": dagster_home},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches it through us, once
        )
    try:
        yield path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE_SECONDS + 10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _warm_up() -> None:
    """Everything a run does before its first row, done ahead (the code location itself is
    imported with this module's package): the Spark session the run's resource opens
    (``getOrCreate`` returns it), pandera's first validation. Nothing is written."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    from ..contracts import contract_files, load_contract
    from ..contracts.pandera_schema import validate
    from ..contracts.spark import spark_schema
    from ..lakehouse.spark import SparkResource
    from ..settings import Settings

    settings = Settings.from_env()
    spark = SparkResource.from_settings(settings)
    # a remote session only (Spark Connect: foodops ui's warm Spark, a cluster): an embedded
    # one would be a JVM per standby, idle
    if spark.is_remote:
        spark.spark_session.range(1).collect()
    for name in contract_files(settings.contracts_dir):
        contract = load_contract(name, settings.contracts_dir)
        schema = to_arrow_schema(spark_schema(contract), timezone="UTC")
        validate(pa.Table.from_pylist([], schema=schema), contract)


def _execute(instance: dg.DagsterInstance, run_id: str, warm_seconds: float) -> int:
    """The run, executed as Dagster's run worker executes it (``dagster api execute_run``):
    there is no public API that executes an existing run, hence the two internals."""
    from dagster._grpc.impl import core_execute_run
    from dagster._utils.hosted_user_process import recon_job_from_origin

    with instance:
        run = instance.get_run_by_id(run_id)
        if run is None:
            return 2
        pid = os.getpid()
        try:
            instance.report_engine_event(
                f"Started process for run (pid: {pid}): a standby of the warm run worker "
                f"(its {warm_seconds:.1f}s warm-up was done before the run reached it).",
                run,
            )
            recon_job = recon_job_from_origin(run.job_code_origin)
        except Exception:
            instance.report_run_failed(
                run,
                "The warm run worker's process could not load the run's job:\n"
                + traceback.format_exc(),
            )
            return 1
        try:
            for _event in core_execute_run(recon_job, run, instance, inject_env_vars=False):
                pass
        except BaseException:  # noqa: BLE001 - core_execute_run reported it to the event log
            return 1
        finally:
            instance.report_engine_event(f"Process for run exited (pid: {pid}).", run)
    return 0


def standby() -> int:
    """A standby process: open the instance and warm up, wait for one run id on stdin,
    execute that run, exit.
    Exits without a run when stdin closes (the worker replaced it)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    instance = dg.DagsterInstance.get()  # ~0.9 s: its storage, run coordinator and launcher
    try:
        _warm_up()
    except Exception:  # noqa: BLE001 - a cold start is still a start: the run reports errors
        print("warm-up failed; the run will pay for what is left cold:", flush=True)
        traceback.print_exc()
    warm = time.monotonic() - started
    line = sys.stdin.readline().strip()
    if not line:
        instance.dispose()
        return 0
    return _execute(instance, line, warm)


def _describe(status: int) -> str:
    if status < 0:
        return f"signal {signal.Signals(-status).name}"
    return f"exit code {status}"


def _fail_if_unfinished(run_id: str, pid: int, code: int) -> None:
    """A run's process ended (killed, out of memory) before the run did: fail the run now,
    not when run monitoring notices (it cannot: Dagster's default launcher reports no health)."""
    try:
        with dg.DagsterInstance.get() as instance:
            run = instance.get_run_by_id(run_id)
            if run is not None and not run.is_finished:
                instance.report_run_failed(
                    run,
                    f"The run's process (pid {pid}, a standby of the warm run worker) ended "
                    f"with {_describe(code)} before the run finished.",
                )
    except Exception:  # noqa: BLE001 - the worker keeps serving; say why in its log
        traceback.print_exc()


class Worker:
    """The worker's state: standbys, the processes of runs in progress by run id, and how
    the finished ones ended."""

    def __init__(self, standbys: int = STANDBYS):
        self.size = standbys
        self.fingerprint = code_fingerprint()
        self.standbys: list[tuple[subprocess.Popen, float]] = []  # (process, started)
        self.running: dict[str, subprocess.Popen] = {}
        self.exited: dict[str, tuple[int, int, str]] = {}  # run id -> (pid, code, how)
        self.stopping = False
        self.restart_after = 0.0

    def _spawn(self) -> None:
        proc = subprocess.Popen([sys.executable, "-m", _MODULE, "standby"], stdin=subprocess.PIPE)
        self.standbys.append((proc, time.monotonic()))

    def _retire(self, proc: subprocess.Popen) -> None:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # no run: it exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0)

    def tend(self) -> None:
        """Reap the runs' processes; replace standbys that died, aged or run stale code."""
        for run_id, proc in list(self.running.items()):
            code = proc.poll()
            if code is not None:
                del self.running[run_id]
                self.exited[run_id] = (proc.pid, code, _describe(code))
                if code != 0:
                    _fail_if_unfinished(run_id, proc.pid, code)
        while len(self.exited) > 1000:
            self.exited.pop(next(iter(self.exited)))
        now = time.monotonic()
        fingerprint = code_fingerprint()
        stale = fingerprint != self.fingerprint
        if stale:
            print("the code changed on disk: the standbys are replaced", flush=True)
            self.fingerprint = fingerprint
        keep = []
        for proc, started in self.standbys:
            if proc.poll() is not None:
                print(
                    f"a standby (pid {proc.pid}) exited ({_describe(proc.returncode)})", flush=True
                )
                self.restart_after = now + RESTART_DELAY_SECONDS
            elif stale or now - started > STANDBY_MAX_AGE_SECONDS:
                self._retire(proc)
            else:
                keep.append((proc, started))
        self.standbys = keep
        # a standby warming up takes a core: while runs are in progress, only an empty pool
        # is refilled (the next launch needs one); the rest waits until they have ended
        while (
            not self.stopping
            and len(self.standbys) < (self.size if not self.running else 1)
            and now >= self.restart_after
        ):
            self._spawn()

    def handle(self, request: dict) -> dict:
        op, run_id = request.get("op"), request.get("run_id")
        if op == "launch" and isinstance(run_id, str):
            if self.stopping:
                return {"error": "the warm run worker is stopping"}
            self.tend()
            if not self.standbys:
                return {"error": "no standby is ready (one exited; it restarts shortly)"}
            proc, _ = self.standbys.pop(0)  # the oldest: the most likely warm already
            try:
                proc.stdin.write(run_id.encode() + b"\n")
                proc.stdin.close()
            except OSError as exc:
                return {"error": f"its standby could not take the run ({exc})"}
            self.running[run_id] = proc
            return {"pid": proc.pid}
        if op == "terminate" and isinstance(run_id, str):
            proc = self.running.get(run_id)
            if proc is None or proc.poll() is not None:
                return {"error": "no process of this run is running"}
            proc.send_signal(signal.SIGINT)  # Dagster's run worker: the run is canceled
            return {"signalled": True, "pid": proc.pid}
        if op == "status" and isinstance(run_id, str):
            proc = self.running.get(run_id)
            if proc is not None and proc.poll() is None:
                return {"state": "running", "pid": proc.pid}
            self.tend()
            if run_id in self.exited:
                pid, code, how = self.exited[run_id]
                return {"state": "exited", "pid": pid, "code": code, "how": how}
            return {"state": "unknown"}
        if op == "ping":
            return {
                "pid": os.getpid(),
                "running": sorted(self.running),
                "standbys": [p.pid for p, _ in self.standbys],
            }
        return {"error": f"unknown request {request!r}"}

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Retire the standbys; interrupt the runs in progress, kill what outlives ``grace``."""
        self.stopping = True
        for proc, _ in self.standbys:
            self._retire(proc)
        for proc in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace
        for proc in [*self.running.values(), *(p for p, _ in self.standbys)]:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def serve(path: str) -> None:
    """The worker's loop: keep the standbys, listen on ``path``, hand each launched run to a
    standby; on SIGTERM/SIGINT, interrupt the runs in progress and stop."""
    worker = Worker()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(16)
    listener.settimeout(0.5)

    def stop(signum, frame) -> None:
        worker.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"warm run worker (pid {os.getpid()}) listening on {path}", flush=True)
    try:
        while not worker.stopping:
            worker.tend()
            try:
                conn, _ = listener.accept()
            except (TimeoutError, InterruptedError):
                continue
            with conn:
                conn.settimeout(_ASK_TIMEOUT_SECONDS)
                try:
                    line = conn.makefile("rb").readline()
                    reply = worker.handle(json.loads(line))
                except (OSError, ValueError) as exc:
                    reply = {"error": str(exc)}
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps(reply).encode() + b"\n")
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        worker.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["standby"]:
        sys.exit(standby())
    serve(sys.argv[2])
