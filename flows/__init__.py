"""Prefect flows and the ``collabflow`` CLI.

Defaults for Prefect settings are set here, before Prefect is imported, and only where the user has
not set them: no telemetry (our machines have no internet), a start-up timeout that survives a busy
2-core machine, and our own loggers shipped to the Prefect UI.
"""

import os

for _key, _value in {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "recmodel,store,tasks,flows",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}.items():
    os.environ.setdefault(_key, _value)

import logging  # noqa: E402  (after the defaults above, so nothing sees Prefect unset)

for _name in ("recmodel", "store", "tasks", "flows"):
    # Prefect attaches its console and API handlers to these (PREFECT_LOGGING_EXTRA_LOGGERS) but leaves
    # their level unset, i.e. WARNING from the root logger: our progress lines are INFO.
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.INFO)


class _UserErrorsWithoutTraceback(logging.Filter):
    """Prefect logs a failed task or flow with its traceback. For a user error (a bad file, a bad flag, a busy
    warehouse) that reads like a crash; its one-line message says everything, so drop the traceback there.
    A real bug keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from recmodel.io.errors import UserError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, UserError):
            record.exc_info, record.exc_text = None, None
        return True


for _name in ("prefect.task_runs", "prefect.flow_runs"):
    logging.getLogger(_name).addFilter(_UserErrorsWithoutTraceback())
