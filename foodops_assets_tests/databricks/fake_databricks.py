"""A STAND-IN FOR DATABRICKS: a real HTTP server on 127.0.0.1 speaking the REST
endpoints that dagster-databricks' PipesDatabricksClient calls through the
databricks-sdk (found by reading dagster_databricks/pipes.py and
databricks/sdk/service/{jobs,files}.py):

    POST /api/2.2/jobs/runs/submit   GET /api/2.2/jobs/runs/get   POST /api/2.2/jobs/runs/cancel
    POST /api/2.0/dbfs/mkdirs        POST /api/2.0/dbfs/put       POST /api/2.0/dbfs/delete
    GET  /api/2.0/dbfs/get-status    GET  /api/2.0/dbfs/read      GET  /api/2.0/dbfs/list
    PUT/GET/DELETE /api/2.0/fs/files/Volumes/...   PUT/GET/DELETE /api/2.0/fs/directories/Volumes/...
        (Unity Catalog volumes, used by the serverless client)

Databricks itself cannot be reached from the test machines. What this stand-in
does like Databricks: it checks the bearer token, keeps DBFS (REST on one
side, a directory that plays the ``/dbfs`` FUSE mount on the other), and
"runs" a submitted ``spark_python_task`` the way a job cluster would: the
task's Python file from the checked-out repository (``git_source``), with the
new cluster's ``spark_env_vars`` as its environment. What it does not do:
start a cluster, install libraries (the test's virtualenv has them), or put
Delta on Spark's classpath (so a test must choose a writer that needs none).
Every request is recorded for the test to inspect.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeRun:
    run_id: int
    submitted: dict
    proc: subprocess.Popen | None = None
    log: Path | None = None
    state: str = "PENDING"
    result: str | None = None
    message: str = ""


@dataclass
class FakeDatabricks:
    token: str
    dbfs_root: Path
    checkout: Path  # what git_source checks out: this repository
    cluster_env: dict[str, str]  # the environment a cluster node has (PATH, JAVA_HOME, ...)
    cluster_env_overrides: dict[str, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    runs: dict[int, FakeRun] = field(default_factory=dict)
    url: str = ""
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1001))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- DBFS --------------------------------------------------------------------
    def local(self, dbfs_path: str) -> Path:
        path = dbfs_path.removeprefix("dbfs:")
        return self.dbfs_root / path.lstrip("/")

    @property
    def volumes_root(self) -> Path:  # plays the / under which /Volumes/... is mounted
        return self.dbfs_root.parent / "uc"

    def volume(self, path: str) -> Path:
        return self.volumes_root / path.lstrip("/")

    # -- jobs ----------------------------------------------------------------------
    def submit(self, body: dict) -> int:
        run = FakeRun(run_id=next(self._ids), submitted=body)
        self.runs[run.run_id] = run
        task = body["tasks"][0]
        python_task = task["spark_python_task"]
        script = self.checkout / python_task["python_file"]
        env = {
            **self.cluster_env,
            **(task.get("new_cluster") or {}).get("spark_env_vars", {}),
            "FOODOPS_DBFS_MOUNT": str(self.dbfs_root),  # where this "cluster" mounts DBFS
            "FOODOPS_VOLUMES_MOUNT": str(self.volumes_root),  # ... and /Volumes
            **self.cluster_env_overrides,
        }
        run.log = self.dbfs_root.parent / f"driver-{run.run_id}.log"
        with open(run.log, "w") as out:
            run.proc = subprocess.Popen(
                [sys.executable, str(script), *python_task.get("parameters", [])],
                cwd=self.checkout,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        run.state = "RUNNING"
        return run.run_id

    def refresh(self, run: FakeRun) -> None:
        if run.proc is not None and run.state == "RUNNING" and run.proc.poll() is not None:
            ok = run.proc.returncode == 0
            run.state, run.result = "TERMINATED", ("SUCCESS" if ok else "FAILED")
            run.message = (
                "" if ok else f"Task foodops_assets failed with exit code {run.proc.returncode}"
            )

    def driver_log(self, run_id: int) -> str:
        run = self.runs[run_id]
        return run.log.read_text(errors="replace") if run.log and run.log.exists() else ""

    def stop(self) -> None:
        for run in self.runs.values():
            if run.proc is not None and run.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.proc.pid, 9)
                run.proc.wait(30)


def _handler(fake: FakeDatabricks):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _reply(self, status: int, payload: dict | None) -> None:
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, code: str, message: str) -> None:
            self._reply(status, {"error_code": code, "message": message})

        def _handle(self, method: str) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            json_body = "json" in (self.headers.get("Content-Type") or "")
            body = json.loads(raw) if raw and json_body else (raw or None)
            with fake._lock:
                fake.requests.append(
                    Request(method, url.path, query, {k: v for k, v in self.headers.items()}, body)
                )
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                return self._error(401, "UNAUTHENTICATED", "Invalid access token.")
            name = url.path.replace("/", "_").replace("-", "_").replace(".", "_")
            if self._route_volumes(method, url.path, query, body):
                return
            route = getattr(self, f"_{method}_{name}", None)
            if route is None:
                return self._error(
                    404, "ENDPOINT_NOT_FOUND", f"No API found for {method} {url.path}"
                )
            route(query, body or {})

        def do_GET(self):  # noqa: N802
            self._handle("GET")

        def do_POST(self):  # noqa: N802
            self._handle("POST")

        def do_PUT(self):  # noqa: N802
            self._handle("PUT")

        def do_DELETE(self):  # noqa: N802
            self._handle("DELETE")

        def do_HEAD(self):  # noqa: N802
            self._handle("HEAD")

        def _route_volumes(self, method: str, path: str, query, body) -> bool:
            """The Files API on Unity Catalog volumes: /api/2.0/fs/{files,directories}/Volumes/..."""
            for kind in ("files", "directories"):
                prefix = f"/api/2.0/fs/{kind}"
                if path.startswith(prefix + "/Volumes/"):
                    target = fake.volume(unquote(path[len(prefix) :]))
                    getattr(self, f"_volume_{kind}")(method, target, query, body)
                    return True
            return False

        def _volume_files(self, method, target: Path, query, body):
            if method == "PUT":
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body or b"")
                return self._reply(204, None)
            if not target.is_file():
                return self._error(404, "NOT_FOUND", "The file does not exist")
            if method == "DELETE":
                target.unlink()
                return self._reply(204, None)
            data = target.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method == "GET":
                self.wfile.write(data)

        def _volume_directories(self, method, target: Path, query, body):
            if method == "PUT":
                target.mkdir(parents=True, exist_ok=True)
                return self._reply(204, None)
            if not target.is_dir():
                return self._error(404, "NOT_FOUND", "The directory does not exist")
            if method == "DELETE":
                target.rmdir()
                return self._reply(204, None)
            if method == "HEAD":
                return self._reply(200, None)
            base = "/" + str(target.relative_to(fake.volumes_root))
            contents = [
                {
                    "path": f"{base}/{p.name}",
                    "name": p.name,
                    "is_directory": p.is_dir(),
                    **({} if p.is_dir() else {"file_size": p.stat().st_size}),
                }
                for p in sorted(target.iterdir())
            ]
            self._reply(200, {"contents": contents})

        # -- jobs --------------------------------------------------------------------
        def _POST__api_2_2_jobs_runs_submit(self, query, body):  # noqa: N802
            self._reply(200, {"run_id": fake.submit(body)})

        def _GET__api_2_2_jobs_runs_get(self, query, body):  # noqa: N802
            run = fake.runs.get(int(query.get("run_id", 0)))
            if run is None:
                return self._error(404, "RESOURCE_DOES_NOT_EXIST", "Run does not exist")
            fake.refresh(run)
            state = {"life_cycle_state": run.state, "state_message": run.message}
            if run.result:
                state["result_state"] = run.result
            self._reply(
                200,
                {
                    "run_id": run.run_id,
                    "run_name": run.submitted.get("run_name"),
                    "state": state,
                    "run_page_url": f"{fake.url}/#job/runs/{run.run_id}",
                    "tasks": [{"task_key": run.submitted["tasks"][0]["task_key"], "state": state}],
                },
            )

        def _POST__api_2_2_jobs_runs_cancel(self, query, body):  # noqa: N802
            run = fake.runs.get(int(body.get("run_id", 0)))
            if run and run.proc and run.proc.poll() is None:
                os.killpg(run.proc.pid, 15)
            self._reply(200, {})

        # -- DBFS --------------------------------------------------------------------
        def _POST__api_2_0_dbfs_mkdirs(self, query, body):  # noqa: N802
            fake.local(body["path"]).mkdir(parents=True, exist_ok=True)
            self._reply(200, {})

        def _POST__api_2_0_dbfs_put(self, query, body):  # noqa: N802
            target = fake.local(body["path"])
            if target.exists() and not body.get("overwrite"):
                return self._error(409, "RESOURCE_ALREADY_EXISTS", f"{body['path']} exists")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(body.get("contents", "")))
            self._reply(200, {})

        def _POST__api_2_0_dbfs_delete(self, query, body):  # noqa: N802
            target = fake.local(body["path"])
            if target.is_dir():
                shutil.rmtree(target) if body.get("recursive") else target.rmdir()
            elif target.exists():
                target.unlink()
            self._reply(200, {})

        def _GET__api_2_0_dbfs_get_status(self, query, body):  # noqa: N802
            target = fake.local(query["path"])
            if not target.exists():
                return self._error(404, "RESOURCE_DOES_NOT_EXIST", f"No file: {query['path']}")
            self._reply(200, _status(query["path"], target))

        def _GET__api_2_0_dbfs_read(self, query, body):  # noqa: N802
            target = fake.local(query["path"])
            if not target.is_file():
                return self._error(404, "RESOURCE_DOES_NOT_EXIST", f"No file: {query['path']}")
            offset, length = int(query.get("offset", 0)), int(query.get("length", 512 * 1024))
            data = target.read_bytes()[offset : offset + length]
            self._reply(200, {"bytes_read": len(data), "data": base64.b64encode(data).decode()})

        def _GET__api_2_0_dbfs_list(self, query, body):  # noqa: N802
            target = fake.local(query["path"])
            if not target.is_dir():
                return self._error(404, "RESOURCE_DOES_NOT_EXIST", f"No dir: {query['path']}")
            prefix = query["path"].rstrip("/")
            self._reply(
                200, {"files": [_status(f"{prefix}/{p.name}", p) for p in sorted(target.iterdir())]}
            )

    return Handler


def _status(path: str, target: Path) -> dict:
    stat = target.stat()
    return {
        "path": path,
        "is_dir": target.is_dir(),
        "file_size": 0 if target.is_dir() else stat.st_size,
        "modification_time": int(stat.st_mtime * 1000),
    }


@contextlib.contextmanager
def fake_databricks(work_dir: Path, token: str, checkout: Path, **kwargs):
    """Start the stand-in on a free loopback port; yields it with ``.url`` set."""
    (work_dir / "dbfs").mkdir(parents=True, exist_ok=True)
    cluster_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "DAGSTER_PIPES"))
    }
    fake = FakeDatabricks(
        token=token,
        dbfs_root=work_dir / "dbfs",
        checkout=checkout,
        cluster_env=cluster_env,
        **kwargs,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        fake.stop()
        thread.join(10)
        time.sleep(0)
