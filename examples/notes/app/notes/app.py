"""The notes HTTP API (Starlette ASGI app, served by uvicorn).

Routes:
    GET    /health          200 {"status": "ok", ...} when `SELECT 1` succeeds, else 503
    GET    /notes           list, newest first (?limit=1..500, ?offset>=0)
    POST   /notes           create from JSON {"title", "body"?, "pinned"?} -> 201
    GET    /notes/{id}      200 or 404
    DELETE /notes/{id}      204 or 404

Configuration (environment):
    DATABASE_URL   libpq URI or conninfo string, e.g. postgresql://user:pw@db:5432/notes
    APP_VERSION    reported by /health (default "dev")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .db import Database, DatabaseNotConfigured

log = logging.getLogger("notes")

APP_VERSION = os.environ.get("APP_VERSION", "").strip() or "dev"
APP_REVISION = os.environ.get("APP_REVISION", "").strip()  # set by conveyor for a deploy

TITLE_MAX = 200
BODY_MAX = 10_000
REQUEST_MAX_BYTES = 64 * 1024
LIST_DEFAULT_LIMIT = 100
LIST_MAX_LIMIT = 500
HEALTH_TIMEOUT = 2.5
BIGINT_MAX = 2**63 - 1
_ID_RE = re.compile(r"[0-9]{1,19}")


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _note_json(row: dict[str, Any]) -> dict[str, Any]:
    created = row["created_at"]
    return {
        "id": row["id"],
        "title": row["title"],
        "body": row["body"],
        "pinned": row["pinned"],
        "created_at": created.isoformat() if isinstance(created, datetime) else created,
    }


def _db(request: Request) -> Database:
    return request.app.state.db


def _parse_id(raw: str) -> int | None:
    if not _ID_RE.fullmatch(raw):
        return None
    value = int(raw)
    if value < 1 or value > BIGINT_MAX:
        return None
    return value


class ValidationFailed(Exception):
    def __init__(self, details: list[dict[str, str]]) -> None:
        super().__init__("validation failed")
        self.details = details


def validate_new_note(payload: Any) -> tuple[str, str, bool]:
    """Return (title, body, pinned) or raise ValidationFailed (-> 422)."""
    if not isinstance(payload, dict):
        raise ValidationFailed([{"field": "", "message": "request body must be a JSON object"}])
    details: list[dict[str, str]] = []

    unknown = sorted(set(payload) - {"title", "body", "pinned"})
    for key in unknown:
        details.append({"field": key, "message": "unknown field"})

    title = payload.get("title")
    if "title" not in payload or title is None:
        details.append({"field": "title", "message": "field required"})
    elif not isinstance(title, str):
        details.append({"field": "title", "message": "must be a string"})
    else:
        title = title.strip()
        if not title:
            details.append({"field": "title", "message": "must not be empty"})
        elif len(title) > TITLE_MAX:
            details.append({"field": "title", "message": f"at most {TITLE_MAX} characters"})
        elif "\x00" in title:
            details.append({"field": "title", "message": "must not contain NUL characters"})

    body = payload.get("body", "")
    if body is None:
        body = ""
    if not isinstance(body, str):
        details.append({"field": "body", "message": "must be a string"})
    elif len(body) > BODY_MAX:
        details.append({"field": "body", "message": f"at most {BODY_MAX} characters"})
    elif "\x00" in body:
        details.append({"field": "body", "message": "must not contain NUL characters"})

    pinned = payload.get("pinned", False)
    if pinned is None:
        pinned = False
    if not isinstance(pinned, bool):
        details.append({"field": "pinned", "message": "must be a boolean"})

    if details:
        raise ValidationFailed(details)
    return title, body, pinned


# -- handlers ----------------------------------------------------------------


async def root(request: Request) -> JSONResponse:
    return JSONResponse({"service": "notes", "version": APP_VERSION})


async def health(request: Request) -> JSONResponse:
    try:
        await asyncio.wait_for(_db(request).ping(), timeout=HEALTH_TIMEOUT)
    except Exception as exc:  # any failure of SELECT 1 means "not healthy"
        if isinstance(exc, DatabaseNotConfigured):
            reason = "DATABASE_URL is not set"
        elif isinstance(exc, (asyncio.TimeoutError, PoolTimeout)):
            reason = "timed out getting a database connection"
        else:
            reason = type(exc).__name__
        log.warning("health check failed: %s: %s", type(exc).__name__, exc)
        return JSONResponse(
            {
                "status": "unavailable",
                "version": APP_VERSION,
                "database": "unreachable",
                "error": reason,
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok", "version": APP_VERSION, "database": "ok"})


def _query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"query parameter {name!r} must be an integer") from None
    if not lo <= value <= hi:
        raise HTTPException(400, f"query parameter {name!r} must be between {lo} and {hi}")
    return value


async def list_notes(request: Request) -> JSONResponse:
    limit = _query_int(request, "limit", LIST_DEFAULT_LIMIT, 1, LIST_MAX_LIMIT)
    offset = _query_int(request, "offset", 0, 0, BIGINT_MAX)
    rows = await _db(request).list_notes(limit, offset)
    return JSONResponse(
        {"notes": [_note_json(r) for r in rows], "limit": limit, "offset": offset}
    )


async def create_note(request: Request) -> JSONResponse:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > REQUEST_MAX_BYTES:
        return _error(413, f"request body larger than {REQUEST_MAX_BYTES} bytes")
    raw = await request.body()
    if len(raw) > REQUEST_MAX_BYTES:
        return _error(413, f"request body larger than {REQUEST_MAX_BYTES} bytes")
    if not raw.strip():
        return _error(400, "request body is empty: expected a JSON object")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"request body is not valid JSON: {exc}")
    try:
        title, body, pinned = validate_new_note(payload)
    except ValidationFailed as exc:
        return _error(422, "invalid note", details=exc.details)
    row = await _db(request).create_note(title, body, pinned)
    return JSONResponse(
        _note_json(row), status_code=201, headers={"Location": f"/notes/{row['id']}"}
    )


async def get_note(request: Request) -> JSONResponse:
    note_id = _parse_id(request.path_params["note_id"])
    row = await _db(request).get_note(note_id) if note_id is not None else None
    if row is None:
        return _error(404, "note not found")
    return JSONResponse(_note_json(row))


async def delete_note(request: Request) -> Response:
    note_id = _parse_id(request.path_params["note_id"])
    if note_id is None or not await _db(request).delete_note(note_id):
        return _error(404, "note not found")
    return Response(status_code=204)


# -- error mapping -----------------------------------------------------------


async def _http_exception(request: Request, exc: HTTPException) -> Response:
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _db_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    return _error(503, "database unavailable", reason=type(exc).__name__)


async def _schema_missing(request: Request, exc: Exception) -> JSONResponse:
    log.error("database schema does not match the app (migrations not applied?): %s", exc)
    return _error(503, "database schema is not migrated", reason=type(exc).__name__)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error(500, "internal server error")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    if not logging.getLogger().handlers:
        level = os.environ.get("LOG_LEVEL", "info").strip().upper()
        logging.basicConfig(
            level=getattr(logging, level, logging.INFO),
            format="%(levelname)s:%(name)s: %(message)s",
        )
    logging.getLogger("psycopg.pool").setLevel(logging.WARNING)
    db = Database.from_env()
    await db.open()
    app.state.db = db
    log.info("notes %s started%s", APP_VERSION,
             f" (revision {APP_REVISION[:12]})" if APP_REVISION else "")
    try:
        yield
    finally:
        await db.close()
        log.info("notes %s stopped", APP_VERSION)


routes = [
    Route("/", root, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
    Route("/notes", list_notes, methods=["GET"]),
    Route("/notes", create_note, methods=["POST"]),
    Route("/notes/{note_id}", get_note, methods=["GET"]),
    Route("/notes/{note_id}", delete_note, methods=["DELETE"]),
]

app = Starlette(
    routes=routes,
    lifespan=lifespan,
    exception_handlers={
        HTTPException: _http_exception,
        DatabaseNotConfigured: _db_unavailable,
        psycopg.OperationalError: _db_unavailable,  # includes psycopg_pool.PoolTimeout
        pg_errors.UndefinedTable: _schema_missing,
        pg_errors.UndefinedColumn: _schema_missing,
        Exception: _internal_error,
    },
)
