"""``foodops ui`` (what ``make ui`` runs): ``dagster dev`` that stops cleanly on Ctrl-C.

``dagster dev`` starts a webserver, a daemon and code servers, and the daemon starts
run workers. Started from a shell script or ``make``, a Ctrl-C or a ``kill`` can reach
only some of them and leave the rest running (holding the port and the instance). Here
``dagster dev`` gets a process group of its own; SIGINT and SIGTERM are forwarded to
that whole group, and whatever is still alive after the grace period is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STOP_GRACE_SECONDS = 30.0
# threads of each code server's gRPC pool (Dagster's default: cores + 4, so 6 here): the three
# daily file-arrival sensors each hold one for most of every sensor-daemon look
# (FOODOPS_ARRIVAL_WAIT_SECONDS), and UI queries, run launches and the other sensors need theirs
CODE_SERVER_THREADS = "16"


def _default_signals() -> None:
    # a child of a non-interactive shell may inherit ignored SIGINT/SIGTERM
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def serve(
    workspace: str,
    host: str,
    port: int,
    grace: float = STOP_GRACE_SECONDS,
    echo=print,
    env: dict[str, str] | None = None,
) -> int:
    """Run ``dagster dev`` (with ``env``, default this process's) until it exits or
    SIGINT/SIGTERM arrives; return its exit code."""
    dagster = Path(sys.executable).parent / "dagster"
    env = dict(os.environ if env is None else env)
    env.setdefault("DAGSTER_GRPC_MAX_WORKERS", CODE_SERVER_THREADS)
    proc = subprocess.Popen(
        [str(dagster), "dev", "-w", workspace, "-h", host, "-p", str(port)],
        env=env,
        start_new_session=True,  # its own process group: the whole tree is signalled at once
        preexec_fn=_default_signals,
    )
    pgid = proc.pid
    stop: list[int] = []

    def forward(signum, frame) -> None:
        if not stop:
            echo(f"stopping the Dagster UI ({signal.Signals(signum).name}) ...")
        stop.append(signum)
        with contextlib.suppress(ProcessLookupError):
            # dagster dev shuts its webserver, daemon and code servers down on SIGTERM
            os.killpg(pgid, signal.SIGTERM if len(stop) == 1 else signal.SIGKILL)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    echo(f"Dagster UI on http://{host}:{port} (Ctrl-C to stop)")
    try:
        while proc.poll() is None:
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        # run workers and servers that outlive dagster dev are still in its group
        deadline = time.monotonic() + grace
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if group_alive(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stop:
        echo("Dagster UI stopped")
        return 0
    return proc.returncode or 0
