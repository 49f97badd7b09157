"""The settings the app and its Alembic environment read from the process environment.

Only the app's environment provides them (conveyor passes `app.env`, `app.secrets` and the
environment's own `env` / `secrets` to the app container and to the migration container):

    DATABASE_URL         postgresql://user:password@host:5432/ledger (libpq URI)
    LEDGER_SECRET_KEY    signs each entry's receipt; at least 16 characters (a secret)
    LEDGER_CURRENCY      the ledger's currency, three capital letters (e.g. EUR)

A missing or malformed setting raises SettingsError naming the variable, never its value.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass


class SettingsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: str
    currency: str

    def __repr__(self) -> str:  # never the secret, never the URL's password
        return f"Settings(currency={self.currency!r})"


def sqlalchemy_url(url: str) -> str:
    """postgresql://... -> postgresql+psycopg://... (psycopg 3 as SQLAlchemy's driver)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def load(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    missing = [n for n in ("DATABASE_URL", "LEDGER_SECRET_KEY", "LEDGER_CURRENCY")
               if not env.get(n, "").strip()]
    if missing:
        raise SettingsError(
            "ledger needs these settings in its environment, which are not set: "
            + ", ".join(missing) + " (conveyor passes app.env, app.secrets and the "
            "environment's env/secrets; see examples/ledger/README.md)")
    key = env["LEDGER_SECRET_KEY"]
    if len(key) < 16:
        raise SettingsError("LEDGER_SECRET_KEY is too short: at least 16 characters")
    currency = env["LEDGER_CURRENCY"].strip()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise SettingsError("LEDGER_CURRENCY must be three capital letters (e.g. EUR)")
    return Settings(sqlalchemy_url(env["DATABASE_URL"].strip()), key, currency)
