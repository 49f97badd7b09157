"""The ledger HTTP API: the standard library's threading HTTP server on SQLAlchemy Core.

Routes:
    GET    /health          200 {"status": "ok", "version", "database": "ok", "revision"} when the
                            database answers and Alembic has migrated it, else 503
    GET    /entries         {"entries": [...]}, newest first (?limit=1..500, default 100)
    POST   /entries         JSON {"account": str, "amount_cents": int, "memo"?: str} -> 201
    GET    /entries/{id}    200 or 404
    DELETE /entries/{id}    204 or 404

An entry is {"id", "account", "amount_cents", "currency", "created_at", "receipt"} plus every
column a later revision adds (e.g. "memo"); "receipt" is an HMAC of the entry under
LEDGER_SECRET_KEY. Settings: see ledger/settings.py; APP_VERSION (default "dev") is reported by
/health. Run: `python -m ledger.app` (listens on 0.0.0.0:$PORT, default 8000).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import signal
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ledger.settings import Settings, SettingsError, load

log = logging.getLogger("ledger")

APP_VERSION = os.environ.get("APP_VERSION", "").strip() or "dev"
BODY_MAX = 64 * 1024
ID = re.compile(r"/entries/([0-9]{1,18})")


def receipt(settings: Settings, row: dict[str, Any]) -> str:
    msg = f"{row['id']}:{row['account']}:{row['amount_cents']}:{settings.currency}".encode()
    return hmac.new(settings.secret_key.encode(), msg, hashlib.sha256).hexdigest()[:16]


def entry_json(settings: Settings, row: dict[str, Any]) -> dict[str, Any]:
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    out["currency"] = settings.currency
    out["receipt"] = receipt(settings, row)
    return out


class Handler(BaseHTTPRequestHandler):
    server_version = "ledger"
    engine: Engine
    settings: Settings

    # plumbing
    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def send(self, status: int, body: Any = None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > BODY_MAX:
            raise ValueError("request body too large")
        return json.loads(self.rfile.read(length) or b"null")

    def route(self) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        return parts.path.rstrip("/") or "/", parse_qs(parts.query)

    def guarded(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except DBAPIError as exc:
            log.warning("database error: %s", type(exc.orig).__name__)
            self.send(503, {"error": "database unavailable"})
        except SQLAlchemyError as exc:
            log.warning("database error: %s", type(exc).__name__)
            self.send(503, {"error": "database unavailable"})

    # routes
    def do_GET(self) -> None:
        path, query = self.route()
        if path == "/health":
            return self.guarded(self.health)
        if path == "/entries":
            return self.guarded(self.list_entries, query)
        m = ID.fullmatch(path)
        if m:
            return self.guarded(self.get_entry, int(m.group(1)))
        self.send(404, {"error": "not found"})

    def do_POST(self) -> None:
        path, _ = self.route()
        if path != "/entries":
            return self.send(404, {"error": "not found"})
        self.guarded(self.create_entry)

    def do_DELETE(self) -> None:
        path, _ = self.route()
        m = ID.fullmatch(path)
        if not m:
            return self.send(404, {"error": "not found"})
        self.guarded(self.delete_entry, int(m.group(1)))

    def health(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            revision = conn.execute(text(
                "SELECT version_num FROM alembic_version")).scalar() if conn.execute(text(
                    "SELECT to_regclass('alembic_version')")).scalar() else None
        if revision is None:
            return self.send(503, {"status": "error", "version": APP_VERSION,
                                   "database": "database schema is not migrated"})
        self.send(200, {"status": "ok", "version": APP_VERSION, "database": "ok",
                        "revision": revision})

    def list_entries(self, query: dict[str, list[str]]) -> None:
        try:
            limit = int((query.get("limit") or ["100"])[0])
        except ValueError:
            limit = 0
        if not 1 <= limit <= 500:
            return self.send(422, {"error": "limit must be 1..500"})
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM entries ORDER BY id DESC LIMIT :n"),
                                {"n": limit}).mappings().all()
        self.send(200, {"entries": [entry_json(self.settings, dict(r)) for r in rows]})

    def get_entry(self, entry_id: int) -> None:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM entries WHERE id = :id"),
                               {"id": entry_id}).mappings().first()
        if row is None:
            return self.send(404, {"error": "no such entry"})
        self.send(200, entry_json(self.settings, dict(row)))

    def create_entry(self) -> None:
        try:
            body = self.read_json()
        except ValueError:
            return self.send(400, {"error": "expected a JSON object"})
        if not isinstance(body, dict):
            return self.send(400, {"error": "expected a JSON object"})
        account, amount, memo = body.get("account"), body.get("amount_cents"), body.get("memo")
        if not isinstance(account, str) or not 1 <= len(account) <= 100:
            return self.send(422, {"error": "account: a string of 1..100 characters"})
        if not isinstance(amount, int) or isinstance(amount, bool) or abs(amount) >= 10**15:
            return self.send(422, {"error": "amount_cents: an integer"})
        if memo is not None and not isinstance(memo, str):
            return self.send(422, {"error": "memo: a string"})
        cols = {"account": account, "amount_cents": amount}
        if memo is not None:
            cols["memo"] = memo  # a later revision's column: a 503 on a schema without it
        names = ", ".join(cols)
        values = ", ".join(f":{k}" for k in cols)
        with self.engine.begin() as conn:
            row = conn.execute(text(f"INSERT INTO entries ({names}) VALUES ({values}) "
                                    "RETURNING *"), cols).mappings().one()
        self.send(201, entry_json(self.settings, dict(row)))

    def delete_entry(self, entry_id: int) -> None:
        with self.engine.begin() as conn:
            n = conn.execute(text("DELETE FROM entries WHERE id = :id"),
                             {"id": entry_id}).rowcount
        self.send(204 if n else 404, None if n else {"error": "no such entry"})


def main() -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "info").upper(), stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load()
    except SettingsError as exc:
        log.error("%s", exc)
        return 2
    Handler.settings = settings
    Handler.engine = create_engine(settings.database_url, pool_size=5, pool_pre_ping=True,
                                   connect_args={"connect_timeout": 3})
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True

    def stop(signum: int, frame: Any) -> None:
        log.info("ledger stopping (signal %d)", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("ledger %s started on 0.0.0.0:%d (%s)", APP_VERSION, port, settings.currency)
    server.serve_forever()
    server.server_close()
    Handler.engine.dispose()
    log.info("ledger stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
