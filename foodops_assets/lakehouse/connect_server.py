"""A warm Spark for the runs of ``foodops ui``: a local Spark Connect server.

Every run that ``dagster dev``'s daemon launches is a new process, and with embedded Spark
each one starts its own JVM (~5 s) and warms it up (~2.5 s for the first job) before it
reads a line. ``foodops ui`` starts one Spark Connect server (unless ``--no-warm-spark``) beside the
webserver and the daemon, and every run attaches to it (``FOODOPS_SPARK_REMOTE``: a client
session in ~0.35 s); the server is stopped with them. The runs then write Delta the way
they do on any remote Spark (``FOODOPS_DELTA_WRITER=auto``: the executors write the
Parquet files, delta-rs commits them).

The pip ``pyspark`` wheel has no ``start-connect-server.sh``; the server is the wheel's own
``spark-submit --class ...SparkConnectServer`` (nothing downloaded). It binds to 127.0.0.1
on a free port, runs in a process group of its own and is stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from .spark import LOCAL_SPARK_CONF, SparkConnectUnreachable, _check_reachable

CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
# the embedded session's settings that a server takes at start (the UI stays off: the
# server's own log says what it runs)
_SERVER_CONF = {
    k: v
    for k, v in LOCAL_SPARK_CONF.items()
    if k not in ("spark.log.level",)  # spark-submit takes the level from log4j
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(
    port: int,
    master: str = "local[2]",
    driver_memory: str = "3g",
    conf: Mapping[str, str] | None = None,
    name: str = "foodops-warm-spark",
) -> list[str]:
    """The ``spark-submit`` command of a Spark Connect server on 127.0.0.1:port whose jobs run
    on ``master`` (``conf`` adds to or overrides the embedded session's settings)."""
    import pyspark

    spark_home = Path(pyspark.__file__).resolve().parent
    conf = {
        **_SERVER_CONF,
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.pyspark.python": sys.executable,
        **(conf or {}),
    }
    cmd = [
        str(spark_home / "bin" / "spark-submit"),
        "--class",
        CONNECT_SERVER_CLASS,
        "--master",
        master,
        "--driver-memory",
        driver_memory,
        "--name",
        name,
    ]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    return cmd


def default_signals() -> None:
    """For a child of a non-interactive shell, which may inherit ignored SIGINT/SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


@contextlib.contextmanager
def local_connect_server(
    log: Path,
    driver_memory: str = "3g",
    master: str = "local[2]",
    startup_timeout: float = 120.0,
) -> Iterator[str]:
    """Start a local Spark Connect server; yield its URL (``sc://127.0.0.1:<port>``) once it
    answers; stop it on exit. Fails naming the log when it does not come up in time."""
    port = free_port()
    url = f"sc://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            server_command(port, master, driver_memory),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=default_signals,
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the Spark Connect server exited ({proc.returncode}) before it answered; "
                    f"see {log}"
                )
            try:
                _check_reachable(url, 2.0)
                break
            except SparkConnectUnreachable:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the Spark Connect server on {url} did not answer within "
                        f"{startup_timeout:.0f}s; see {log}"
                    ) from None
                time.sleep(0.5)
        yield url
    finally:
        stop(proc)
