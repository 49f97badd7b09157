"""ledger: conveyor's second example app (stdlib HTTP server, SQLAlchemy, Alembic)."""
