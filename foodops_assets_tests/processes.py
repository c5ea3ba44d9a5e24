"""Real processes for end-to-end tests: ``dagster dev`` on a free loopback port, the daemon, an
HTTP server that receives the alert webhook."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from foodops_assets.lakehouse import connect_server

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# the product's own process helpers (foodops ui's warm Spark uses them too)
free_port = connect_server.free_port
_default_signals = connect_server.default_signals
stop_process_group = connect_server.stop


@dataclass
class DagsterDev:
    url: str
    proc: subprocess.Popen
    log: Path

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@contextlib.contextmanager
def dagster_dev(
    env: dict[str, str], log_dir: Path, startup_timeout: float = 180
) -> Iterator[DagsterDev]:
    """``dagster dev -w workspace.yaml`` (webserver + daemon) on 127.0.0.1, stopped by PID."""
    port = free_port()
    log = log_dir / "dagster-dev.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "dagster"),
                "dev",
                "-w",
                "workspace.yaml",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )
    dev = DagsterDev(url=f"http://127.0.0.1:{port}", proc=proc, log=log)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"dagster dev exited early:\n{dev.log_tail()}")
            try:
                with urllib.request.urlopen(f"{dev.url}/server_info", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"dagster dev did not answer in {startup_timeout}s:\n{dev.log_tail()}"
                )
            time.sleep(1)
        yield dev
    finally:
        stop_process_group(proc)


@contextlib.contextmanager
def dagster_daemon(env: dict[str, str], log_dir: Path) -> Iterator[subprocess.Popen]:
    """``dagster-daemon run -w workspace.yaml`` (sensors, schedules, run queue, automation),
    stopped by PID with the run workers it launched (same process group)."""
    log = log_dir / "dagster-daemon.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )
    try:
        yield proc
    finally:
        stop_process_group(proc)


@contextlib.contextmanager
def webhook_server(status: int = 200) -> Iterator[tuple[str, list[dict]]]:
    """A real HTTP server on 127.0.0.1 standing in for the alert webhook: yields its URL and
    the JSON bodies it received (answering ``status``)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(
                {"path": self.path, "type": self.headers["Content-Type"], **json.loads(body)}
            )
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/foodops", received
    finally:
        server.shutdown()
        server.server_close()
