"""Crash-test hooks, no-ops unless a test sets them:

* ``COLLABFLOW_TEST_KILL_AT=<stage>``: the process SIGKILLs itself at that stage, so tests can prove
  that a crash there leaves the published results intact;
* ``COLLABFLOW_TEST_KILL_PID_AT=<stage>:<pid>``: another process (a Prefect server, say) is killed there.
"""

from __future__ import annotations

import os
import signal

STAGES = ("ingest", "index", "train", "score", "publish", "promote", "published")


def point(stage: str) -> None:
    if os.environ.get("COLLABFLOW_TEST_KILL_AT") == stage:
        os.kill(os.getpid(), signal.SIGKILL)
    other = os.environ.get("COLLABFLOW_TEST_KILL_PID_AT", "")
    if other.startswith(f"{stage}:"):
        os.kill(int(other.split(":", 1)[1]), signal.SIGKILL)
