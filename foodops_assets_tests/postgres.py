"""A real PostgreSQL server for the tests of the production instance (Debian's binaries).

:func:`postgres_server` runs ``initdb`` into a fresh directory, starts the server with
``pg_ctl`` on a free 127.0.0.1 port with TLS on (the production instance asks for
``sslmode: require``; a throwaway self-signed certificate), creates a login role with a
random password and a database it owns, and stops and deletes everything on exit.

PostgreSQL refuses to run as root: when the suite runs as root, ``initdb`` and ``pg_ctl``
run as the ``postgres`` user the Debian package creates (``runuser``), in a directory that
user owns. Missing binaries fail with what to install (``make system-deps``), never a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from foodops_assets_tests.processes import free_port

SERVER_USER = "postgres"  # created by Debian's postgresql package
INSTALL_HINT = (
    "the PostgreSQL server binaries (initdb, pg_ctl) were not found under "
    "/usr/lib/postgresql/*/bin or on PATH: run `make system-deps` (it installs the Debian "
    "package postgresql), or set FOODOPS_TEST_PG_BINDIR to the directory that holds them"
)


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    db_name: str
    username: str
    password: str  # random per test session: the secret the secrets test looks for
    data_dir: Path
    log: Path

    def dagster_env(self) -> dict[str, str]:
        """The environment resources/dagster-prod.yaml reads its storage from."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": self.db_name,
            "DAGSTER_PG_USERNAME": self.username,
            "DAGSTER_PG_PASSWORD": self.password,
        }

    def connect(self):
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            dbname=self.db_name,
            user=self.username,
            password=self.password,
            sslmode="require",
        )


def bindir() -> Path:
    """The directory of ``initdb`` and ``pg_ctl`` (the newest Debian version)."""
    configured = os.environ.get("FOODOPS_TEST_PG_BINDIR")
    if configured:
        candidates = [configured]
    else:
        candidates = sorted(
            glob.glob("/usr/lib/postgresql/*/bin"),
            key=lambda p: int(p.split("/")[-2]),
            reverse=True,
        )
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise PostgresMissing(INSTALL_HINT)


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresMissing(
            f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as "
            "(PostgreSQL refuses root): run `make system-deps` (the Debian package postgresql "
            "creates it)"
        ) from None
    return ["runuser", "-u", SERVER_USER, "--", *argv]


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(_as_server_user(argv), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@contextlib.contextmanager
def postgres_server(
    db_name: str = "dagster", username: str = "foodops"
) -> Iterator[PostgresServer]:
    """A fresh PostgreSQL server on 127.0.0.1 (TLS on, password login), removed on exit."""
    bin_dir = bindir()
    # not under pytest's tmp dir: its parent is private to root, and the server runs as
    # another user when the suite runs as root
    root = Path(tempfile.mkdtemp(prefix="foodops-pg-"))
    data, log = root / "data", root / "server.log"
    superuser_password = secrets.token_hex(16)
    password = f"pg-{secrets.token_hex(12)}"
    (root / "pwfile").write_text(superuser_password + "\n")
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        for path in (root, root / "pwfile"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    port = free_port()
    started = False
    try:
        _run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile",
             str(root / "pwfile"), "--auth-host=scram-sha-256", "--auth-local=peer",
             "--encoding=UTF8", "--no-sync"],
            "initdb",
        )  # fmt: skip
        # a throwaway certificate: the production instance connects with sslmode=require
        _run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-keyout", str(data / "server.key"),
             "-out", str(data / "server.crt")],
            "openssl (the server's TLS certificate)",
        )  # fmt: skip
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {port}",
                f"-c unix_socket_directories={root}",
                "-c ssl=on",
                # a test server: durability is not the point, speed is
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        _run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w",
             "-t", "120", "start"],
            "pg_ctl start",
        )  # fmt: skip
        started = True
        import psycopg2

        admin = psycopg2.connect(
            host="127.0.0.1", port=port, dbname="postgres", user="postgres",
            password=superuser_password, sslmode="require",
        )  # fmt: skip
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"CREATE ROLE {username} LOGIN PASSWORD %s", (password,))
            cur.execute(f"CREATE DATABASE {db_name} OWNER {username}")
        admin.close()
        yield PostgresServer("127.0.0.1", port, db_name, username, password, data, log)
    finally:
        if started:
            with contextlib.suppress(Exception):
                _run(
                    [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                    "pg_ctl stop",
                )
        shutil.rmtree(root, ignore_errors=True)
