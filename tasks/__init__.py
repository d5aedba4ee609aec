"""Thin Prefect tasks over ``recmodel`` and the DuckDB warehouse. They pass paths and small dicts."""
