"""The postgres step: a bounded readiness poll of the local database (a real psycopg connection
and `SELECT 1`), with a quick, clear failure when the password is wrong."""

from __future__ import annotations

import time
from collections.abc import Callable

from conveyor.errors import DatabaseNotReady
from conveyor.masking import mask_secrets
from conveyor.plan import StepIO
from conveyor.state.local import LocalState

READS = ("db_timeout",)
WRITES = ()


def with_connect_timeout(url: str, seconds: int) -> str:
    if "connect_timeout=" in url:
        return url
    return url + ("&" if "?" in url else "?") + f"connect_timeout={seconds}"


def wait_for_postgres(url: str, timeout: float, interval: float = 0.2,
                      clock: Callable[[], float] = time.monotonic) -> int:
    """Poll until PostgreSQL accepts a connection and answers `SELECT 1` (bounded by `timeout`).
    Returns the number of attempts. Raises DatabaseNotReady with the last error."""
    import psycopg

    deadline = clock() + timeout
    attempts = 0
    auth_since: float | None = None
    while True:
        attempts += 1
        try:
            with psycopg.connect(with_connect_timeout(url, 3), autocommit=True) as conn:
                conn.execute("SELECT 1")
            return attempts
        except psycopg.Error as exc:
            last = " ".join(str(exc).split()).removeprefix("connection failed: ")
        now = clock()
        if "password authentication failed" in last:
            auth_since = auth_since if auth_since is not None else now
            if now - auth_since > 5:
                raise DatabaseNotReady(
                    f"PostgreSQL rejects the password: {mask_secrets(last)}",
                    hint="the local database password in conveyor.toml and the one the compose "
                    "file gives the db service (POSTGRES_PASSWORD) must be the same; a volume "
                    "created with another password keeps it (`conveyor down --volumes` resets it)")
        else:
            auth_since = None
        if now >= deadline:
            raise DatabaseNotReady(
                f"PostgreSQL at {mask_secrets(url)} did not accept connections within {timeout:g} s "
                f"({attempts} attempts); last error: {mask_secrets(last)}",
                hint="see the db container's log above; check the database port in conveyor.toml "
                "matches the port the compose file publishes")
        time.sleep(min(interval, max(0.0, deadline - now)))


def postgres(state: LocalState, io: StepIO) -> None:
    attempts = wait_for_postgres(state.target.database_url(), state.db_timeout)
    db = state.target.db
    io.note(f"accepting connections on {db.host}:{db.port}"
            + (f" after {attempts} attempts" if attempts > 1 else ""))
