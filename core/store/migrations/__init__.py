"""Alembic migrations of the run database (a package so that env.py ships with core)."""
