"""A real Spark cluster on 127.0.0.1, started from the installed pyspark (no downloads).

A standalone master, one worker behind it, and a Spark Connect server whose
driver runs its jobs on that worker's executor — each its own process group,
on free ports, stopped by PID. The executors and the Connect driver share
this machine's disk, so they see the same lake and landing paths (on a real
cluster that is a shared filesystem or an object store).

Used by the tests that need it (a session-scoped fixture in conftest.py) and
by bench/delta_writers.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

from foodops_assets.lakehouse.connect_server import server_command
from foodops_assets_tests.processes import _default_signals, free_port, stop_process_group

SPARK_HOME = Path(pyspark.__file__).resolve().parent


@dataclass
class SparkCluster:
    master_url: str
    master_ui: str
    connect_url: str
    driver_ui: str
    logs: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def _get(self, url: str, timeout: float = 5) -> object:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())

    def master_state(self) -> dict:
        return self._get(f"{self.master_ui}/json/")  # type: ignore[return-value]

    def application_id(self) -> str:
        apps = self._get(f"{self.driver_ui}/api/v1/applications")
        return apps[0]["id"]  # type: ignore[index]

    def executors(self) -> list[dict]:
        """The Connect driver's executors (not the driver itself), with their task counts."""
        app = self.application_id()
        found = self._get(f"{self.driver_ui}/api/v1/applications/{app}/executors")
        return [e for e in found if e["id"] != "driver"]  # type: ignore[union-attr]

    def tasks_on_executors(self) -> int:
        return sum(e["totalTasks"] for e in self.executors())

    def log_tail(self, chars: int = 4000) -> str:
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)


def _env(logs: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOG_DIR=str(logs),
        SPARK_DAEMON_MEMORY="512m",  # master and worker daemons themselves
        PYSPARK_PYTHON=sys.executable,
        TZ="UTC",
    )
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    env.pop("SPARK_REMOTE", None)
    return env


def _start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            cmd,
            cwd=log.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_default_signals,
        )


def _wait(what: str, ready, cluster: SparkCluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for proc in cluster.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{what}: a cluster process exited early\n{cluster.log_tail()}")
        try:
            if ready():
                return
        except (
            urllib.error.URLError,
            ConnectionError,
            TimeoutError,
            OSError,
            KeyError,
            IndexError,
        ):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f}s\n{cluster.log_tail()}")
        time.sleep(1)


@contextlib.contextmanager
def spark_connect_cluster(
    work_dir: Path,
    *,
    worker_memory: str = "2g",
    executor_memory: str = "1g",
    driver_memory: str = "2g",
    startup_timeout: float = 180,
) -> Iterator[SparkCluster]:
    """Master + one worker (1 core) + a Spark Connect server driving that cluster."""
    logs = work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (work_dir / "worker").mkdir(exist_ok=True)
    env = _env(logs)
    master_port, master_ui_port = free_port(), free_port()
    worker_ui_port, connect_port, driver_ui_port = free_port(), free_port(), free_port()
    cluster = SparkCluster(
        master_url=f"spark://127.0.0.1:{master_port}",
        master_ui=f"http://127.0.0.1:{master_ui_port}",
        connect_url=f"sc://127.0.0.1:{connect_port}",
        driver_ui=f"http://127.0.0.1:{driver_ui_port}",
        logs=logs,
    )
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    try:
        cluster.procs.append(
            _start(
                [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(master_port),
                    "--webui-port",
                    str(master_ui_port),
                ],
                logs / "master.log",
                env,
            )
        )
        _wait(
            "master", lambda: cluster.master_state()["status"] == "ALIVE", cluster, startup_timeout
        )
        cluster.procs.append(
            _start(
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    cluster.master_url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "1",
                    "--memory",
                    worker_memory,
                    "--webui-port",
                    str(worker_ui_port),
                    "--work-dir",
                    str(work_dir / "worker"),
                ],
                logs / "worker.log",
                env,
            )
        )
        _wait(
            "worker",
            lambda: cluster.master_state()["aliveworkers"] >= 1,
            cluster,
            startup_timeout,
        )
        # the product's Connect server command (foodops ui --warm-spark), on the cluster
        cmd = server_command(
            connect_port,
            master=cluster.master_url,
            driver_memory=driver_memory,
            name="foodops-spark-connect",
            conf={
                "spark.ui.enabled": "true",  # its REST API says which executors registered
                "spark.ui.port": str(driver_ui_port),
                "spark.executor.memory": executor_memory,
                "spark.executor.cores": "1",
                "spark.cores.max": "1",
            },
        )
        cluster.procs.append(_start(cmd, logs / "connect.log", env))
        # ready = the gRPC port answers and an executor on the worker has registered
        from foodops_assets.lakehouse.spark import SparkConnectUnreachable, _check_reachable

        def connect_ready() -> bool:
            try:
                _check_reachable(cluster.connect_url, 2)
            except SparkConnectUnreachable:
                return False
            return len(cluster.executors()) >= 1

        _wait("Spark Connect server", connect_ready, cluster, startup_timeout)
        yield cluster
    finally:
        for proc in reversed(cluster.procs):
            stop_process_group(proc)
