"""A throwaway PostgreSQL cluster for the tests: initdb, pg_ctl, a free loopback port.

The tests run against a real server, never a mock. By default the harness starts its own
cluster from the installed server binaries (Debian's postgresql-15 here) in a temporary folder,
as an unprivileged user when the tests run as root (initdb refuses to run as root), and removes
it afterwards. To use an existing server instead, set GANFRIENDS_TEST_PG_URL to a superuser URL
such as `postgresql+psycopg2://postgres:secret@127.0.0.1:5432/postgres`; each test then gets its
own database on that server, dropped afterwards (restart tests are skipped on such a server).
To start the cluster from other server binaries (another PostgreSQL release, such as the one
`python -m tests.pg_binaries` fetches), set GANFRIENDS_TEST_PG_BIN to their `bin` folder.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from sqlalchemy.engine import make_url

SUPERUSER = "postgres"
PASSWORD = "ganfriends-test"  # loopback only, thrown away with the cluster
UNPRIVILEGED_USER = "postgres"  # the account that owns the cluster when the tests run as root


# Tests that end PostgreSQL sessions on purpose (restarts, pg_terminate_backend) mark their
# module with this. psycopg2 2.9, when the server ends a session during a COPY FROM, reports the
# error twice: it calls `sys.excepthook` with a SystemError ("<function decode …> returned a
# result with an exception set", caused by the server's error), then raises the
# OperationalError the store turns into DatabaseUnavailable. pytest-qt fails any test whose
# excepthook is called; these tests tolerate that one call, and only that one.
ENDS_SESSIONS = [
    pytest.mark.qt_no_exception_capture,
    pytest.mark.usefixtures("psycopg2_copy_noise_tolerated"),
]


def is_psycopg2_copy_noise(error: BaseException) -> bool:
    """Whether an excepthook call is psycopg2's report of a COPY whose session was ended."""
    return (
        isinstance(error, SystemError)
        and "returned a result with an exception set" in str(error)
        and isinstance(error.__cause__, psycopg2.Error)
    )


class PostgresUnavailable(RuntimeError):
    """No server binaries and no GANFRIENDS_TEST_PG_URL: the message says how to get one."""


def _binary(name: str) -> str:
    chosen = os.environ.get("GANFRIENDS_TEST_PG_BIN")
    if chosen:
        path = Path(chosen) / name
        if not os.access(path, os.X_OK):
            raise PostgresUnavailable(
                f"GANFRIENDS_TEST_PG_BIN={chosen} holds no {name}: point it at the bin folder "
                "of a PostgreSQL server (`python -m tests.pg_binaries` prints one)"
            )
        return str(path)
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise PostgresUnavailable(
            f"PostgreSQL's {name} was not found: install the server (Debian: apt-get install "
            "postgresql) or set GANFRIENDS_TEST_PG_URL to an existing server"
        )
    return found


def _reachable_binaries(root: Path) -> Path | None:
    """GANFRIENDS_TEST_PG_BIN's folder, copied into `root` when the cluster's owner can't reach it.

    As root the cluster runs as UNPRIVILEGED_USER, who cannot enter root's home, where
    `tests.pg_binaries` caches the binaries: a copy of the install (bin, lib, share) goes with
    the cluster then. None when no folder is chosen.
    """
    chosen = os.environ.get("GANFRIENDS_TEST_PG_BIN")
    if not chosen:
        return None
    initdb = _binary("initdb")
    if os.geteuid() != 0:
        return Path(initdb).parent
    reachable = subprocess.run(
        ["runuser", "-u", UNPRIVILEGED_USER, "--", "test", "-x", initdb], timeout=30
    )
    if reachable.returncode == 0:
        return Path(initdb).parent
    install = root / "install"
    shutil.copytree(Path(initdb).parent.parent, install, symlinks=True)
    return install / "bin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """One cluster; `database_url(name)` gives SQLAlchemy URLs for the superuser."""

    host: str
    port: int
    password: str
    data_dir: Path | None  # None when the server is not ours (GANFRIENDS_TEST_PG_URL)
    bin_dir: Path | None = None  # where initdb and pg_ctl are; None: _binary() finds them
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    overrides: dict[str, object] = field(default_factory=dict)  # server settings of `start`

    @classmethod
    def start(cls, **settings: object) -> PostgresServer:
        """Start a cluster; `settings` override the server settings of `_options`."""
        existing = os.environ.get("GANFRIENDS_TEST_PG_URL")
        if existing:
            url = make_url(existing)
            return cls(url.host or "127.0.0.1", url.port or 5432, url.password or "", None)
        root = Path(tempfile.mkdtemp(prefix="ganfriends-pg-"))
        server = cls("127.0.0.1", _free_port(), PASSWORD, root / "data", overrides=settings)
        server.bin_dir = _reachable_binaries(root)
        server._initdb(root)
        server.pg_ctl(
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            str(root / "server.log"),
            "-o",
            server._options(root),
        )
        return server

    def _binary(self, name: str) -> str:
        return str(self.bin_dir / name) if self.bin_dir is not None else _binary(name)

    def _options(self, root: Path) -> str:
        settings: dict[str, object] = {
            "port": self.port,
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(root),
            "fsync": "off",  # a throwaway cluster: durability is not what is tested
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": 300,
            "shared_buffers": "128MB",
            **self.overrides,
        }
        return " ".join(f"-c {key}={value}" for key, value in settings.items())

    def _initdb(self, root: Path) -> None:
        pwfile = root / "pwfile"
        pwfile.write_text(self.password)
        if os.geteuid() == 0:
            account = pwd.getpwnam(UNPRIVILEGED_USER)
            for path in (root, pwfile):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._as_owner(
            self._binary("initdb"),
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E", "UTF8",
            "--no-instructions",
        )  # fmt: skip

    def _as_owner(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if os.geteuid() == 0:
            command = ("runuser", "-u", UNPRIVILEGED_USER, "--", *command)
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def pg_ctl(self, action: str, *args: str) -> None:
        if self.data_dir is None:
            raise RuntimeError("this server is not ours to start or stop")
        result = self._as_owner(
            self._binary("pg_ctl"), action, "-D", str(self.data_dir), *args, check=False
        )
        if result.returncode != 0:
            log = self.data_dir.parent / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"pg_ctl {action} failed: {result.stderr}\n{tail}")

    def restart(self, mode: str = "fast") -> None:
        """Restart the server (`fast` or `immediate`, as pg_ctl's -m) on the same port."""
        assert self.data_dir is not None
        root = self.data_dir.parent
        # -l: the server must not inherit our pipes, or waiting for pg_ctl would never end
        self.pg_ctl(
            "restart",
            "-w",
            "-m",
            mode,
            "-t",
            "60",
            "-l",
            str(root / "server.log"),
            "-o",
            self._options(root),
        )

    def stop(self) -> None:
        if self.data_dir is not None:
            self.pg_ctl("stop", "-m", "immediate", "-w")
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def database_url(
        self, database: str, user: str = SUPERUSER, password: str | None = None
    ) -> str:
        secret = self.password if password is None else password
        return f"postgresql+psycopg2://{user}:{secret}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> Any:
        conn = psycopg2.connect(
            host=self.host, port=self.port, user=SUPERUSER, password=self.password, dbname=database
        )
        conn.autocommit = True
        return conn

    def execute(self, statement: str, database: str = "postgres") -> None:
        """Run one statement as the superuser, outside a transaction block."""
        conn = self.connect(database)  # not `with conn`: that would open a transaction block
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def create_database(self) -> str:
        name = f"test_{os.getpid()}_{next(self._counter)}"
        self.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def make_durable(self, database: str) -> None:
        """Commits to `database` survive an immediate shutdown, as on any production server.

        The cluster runs with synchronous_commit off (speed); an immediate shutdown would then
        lose the last acknowledged commits, which no client could be expected to survive.
        """
        self.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = on')

    def terminate_sessions(self, database: str) -> int:
        """End every other session on `database`; returns how many were ended."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (database,),
                )
                row = cur.fetchone()
                return int(row[0]) if row else 0
        finally:
            conn.close()
