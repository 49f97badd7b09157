"""Alembic's environment for the ledger: the URL and the app's settings come from the
process environment only (what conveyor gives the migration container: app.env, app.secrets,
the environment's env/secrets and DATABASE_URL). Without them it refuses to run."""

from __future__ import annotations

import sys
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from ledger.settings import SettingsError, load

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

try:
    settings = load()
except SettingsError as exc:
    sys.stderr.write(f"ledger migrations refused: {exc}\n")
    raise SystemExit(3) from None

# the revisions read the settings through the context's attributes (e.g. the currency)
config.attributes["ledger_currency"] = settings.currency


def run_migrations_offline() -> None:
    """`alembic upgrade ... --sql`: print the SQL instead of running it."""
    context.configure(url=settings.database_url, literal_binds=True,
                      dialect_opts={"paramstyle": "named"}, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(settings.database_url, poolclass=pool.NullPool,
                           connect_args={"connect_timeout": 10})
    with engine.connect() as connection:
        # one transaction per revision: a failing revision leaves the ones before it applied
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
