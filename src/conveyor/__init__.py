"""conveyor: deploy a containerized app and its PostgreSQL database, local -> dev -> prod."""

__version__ = "0.1.0"
