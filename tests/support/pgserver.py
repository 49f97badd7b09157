"""A throwaway PostgreSQL server for tests and benchmarks.

Starts a private cluster (initdb as the ``postgres`` user, since initdb refuses root) on
127.0.0.1 and a free port, waits until it accepts connections (pg_isready, not a sleep), and stops
it by PID. Fails loudly when the server binaries are missing: tests must not silently skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN_CANDIDATES = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin")]


class PgServerError(RuntimeError):
    pass


def pg_bin() -> Path:
    env = os.environ.get("CONVEYOR_PG_BIN")
    for cand in ([Path(env)] if env else []) + PG_BIN_CANDIDATES:
        if (cand / "initdb").exists():
            return cand
    raise PgServerError(
        "PostgreSQL server binaries not found (looked in "
        + ", ".join(str(c) for c in PG_BIN_CANDIDATES)
        + "); install them with `apt-get install postgresql` or set CONVEYOR_PG_BIN"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@dataclass
class PgServer:
    datadir: Path
    port: int
    password: str = "conveyor-test"
    user: str = "postgres"
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def start(self, timeout: float = 30.0) -> PgServer:
        bindir = pg_bin()
        if os.geteuid() == 0:
            shutil.chown(self.datadir.parent, "postgres")
            shutil.chown(self.datadir, "postgres")
        pwfile = self.datadir.parent / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres")
        subprocess.run(
            _as_postgres([str(bindir / "initdb"), "-D", str(self.datadir), "-U", self.user,
                          "--pwfile", str(pwfile), "-A", "scram-sha-256", "-E", "UTF8",
                          "--no-sync", "--locale=C.UTF-8"]),
            check=True, capture_output=True,
        )
        log = open(self.datadir.parent / "postgres.log", "wb")  # noqa: SIM115 - the child keeps it
        # the postmaster is our direct child (user= instead of runuser, which would swallow
        # the SIGINT of stop() and leave the server running)
        self.proc = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(self.datadir),
                          "-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
                          "-c", f"unix_socket_directories={self.datadir.parent}",
                          "-c", "fsync=off", "-c", "synchronous_commit=off",
                          "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT,
            **({"user": "postgres", "group": "postgres", "extra_groups": []}
               if os.geteuid() == 0 else {}),
        )
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port),
                                "-q", "-t", "1"], check=False)
            if r.returncode == 0:
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.datadir.parent / "postgres.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise PgServerError(f"PostgreSQL did not start on port {self.port}:\n{tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # SIGINT = PostgreSQL's "fast" shutdown; it is our own child, stopped by PID.
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def createdb(self, name: str) -> str:
        """Create a fresh database and return its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start_server(base: Path | None = None) -> PgServer:
    root = Path(tempfile.mkdtemp(prefix="conveyor-pg-", dir=base))
    os.chmod(root, 0o755)
    datadir = root / "data"
    datadir.mkdir()
    return PgServer(datadir=datadir, port=free_port()).start()


def cleanup(server: PgServer) -> None:
    server.stop()
    shutil.rmtree(server.datadir.parent, ignore_errors=True)
