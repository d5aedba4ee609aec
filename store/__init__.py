"""The warehouse on disk: DuckDB state, ingest, the run's snapshot, publishing, retention.

A pure library like ``recmodel`` (no Prefect, no torch): the Prefect tasks call it, and the read
commands of the CLI use it without loading anything heavy.
"""
