"""Crash-test hook: ``COLLABFLOW_TEST_KILL_AT=<stage>`` makes the process SIGKILL itself at that stage, so
tests can prove that a crash there leaves the published results intact. A no-op otherwise."""

from __future__ import annotations

import os
import signal

STAGES = ("ingest", "index", "train", "score", "publish")


def point(stage: str) -> None:
    if os.environ.get("COLLABFLOW_TEST_KILL_AT") == stage:
        os.kill(os.getpid(), signal.SIGKILL)
