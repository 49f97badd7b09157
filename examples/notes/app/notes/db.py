"""Database access for the notes app: a small psycopg 3 async connection pool.

The pool is opened without waiting, so the app starts (and answers /health with
503) while PostgreSQL is still unreachable; connections are made in the
background and on demand once the database comes up.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("notes.db")

NOTE_COLUMNS = "id, title, body, pinned, created_at"


class DatabaseNotConfigured(RuntimeError):
    """DATABASE_URL is not set."""


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        log.warning("ignoring %s=%r: not a number, using %s", name, raw, default)
        return default


def _env_int(name: str, default: int) -> int:
    return max(1, int(_env_float(name, default)))


class Database:
    def __init__(self, url: str | None) -> None:
        self.url = url or None
        self.connect_timeout = _env_float("DB_CONNECT_TIMEOUT", 3.0)
        # How long a request waits for a pooled connection before giving up.
        self.acquire_timeout = _env_float("DB_ACQUIRE_TIMEOUT", 3.0)
        self.pool: AsyncConnectionPool | None = None

    @classmethod
    def from_env(cls) -> "Database":
        return cls(os.environ.get("DATABASE_URL", "").strip())

    async def open(self) -> None:
        if not self.url:
            log.error("DATABASE_URL is not set: every database call will fail (503)")
            return
        min_size = _env_int("DB_POOL_MIN_SIZE", 1)
        max_size = max(min_size, _env_int("DB_POOL_MAX_SIZE", 5))
        self.pool = AsyncConnectionPool(
            self.url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={
                "connect_timeout": max(1, int(self.connect_timeout)),
                "application_name": "notes",
                "autocommit": True,
                "row_factory": dict_row,
            },
            # Drop connections that died (e.g. PostgreSQL restarted) at checkout.
            check=AsyncConnectionPool.check_connection,
            timeout=self.acquire_timeout,
            # Give up a failing background connection attempt quickly; a new
            # one is started on demand by the next request, so recovery after
            # a long outage is not delayed by a long exponential back-off.
            reconnect_timeout=10.0,
            num_workers=2,
            name="notes",
        )
        # wait=False: never block (or fail) start-up on the database.
        await self.pool.open(wait=False)

    async def close(self) -> None:
        if self.pool is not None:
            # Short timeout so SIGTERM -> exit stays fast even while the
            # pool's workers are stuck connecting to an unreachable database.
            await self.pool.close(timeout=1.0)
            self.pool = None

    def connection(self):
        if self.pool is None:
            raise DatabaseNotConfigured("DATABASE_URL is not set")
        return self.pool.connection(timeout=self.acquire_timeout)

    # -- queries -----------------------------------------------------------

    async def ping(self) -> None:
        async with self.connection() as conn:
            conn: AsyncConnection
            await conn.execute("SELECT 1")

    async def create_note(self, title: str, body: str, pinned: bool) -> dict[str, Any]:
        async with self.connection() as conn:
            cur = await conn.execute(
                f"INSERT INTO notes (title, body, pinned) VALUES (%s, %s, %s)"
                f" RETURNING {NOTE_COLUMNS}",
                (title, body, pinned),
            )
            row = await cur.fetchone()
            assert row is not None
            return row

    async def list_notes(self, limit: int, offset: int) -> list[dict[str, Any]]:
        async with self.connection() as conn:
            cur = await conn.execute(
                f"SELECT {NOTE_COLUMNS} FROM notes"
                " ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s",
                (limit, offset),
            )
            return await cur.fetchall()

    async def get_note(self, note_id: int) -> dict[str, Any] | None:
        async with self.connection() as conn:
            cur = await conn.execute(
                f"SELECT {NOTE_COLUMNS} FROM notes WHERE id = %s", (note_id,)
            )
            return await cur.fetchone()

    async def delete_note(self, note_id: int) -> bool:
        async with self.connection() as conn:
            cur = await conn.execute("DELETE FROM notes WHERE id = %s", (note_id,))
            return cur.rowcount > 0
