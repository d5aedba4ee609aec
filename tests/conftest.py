"""Shared fixtures. Prefect settings must be in the environment before anything imports prefect."""

import os
import shutil
import tempfile
from pathlib import Path

_PREFECT_HOME = tempfile.mkdtemp(prefix="collabflow-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = os.path.join(_PREFECT_HOME, "results")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
os.environ.pop("PREFECT_API_URL", None)  # never talk to a real server from tests

import contextlib  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

import flows  # noqa: E402,F401  (our Prefect defaults)
from recmodel import synth  # noqa: E402

# real MovieLens 100K lives in ../shared next to the repository and is never copied into it
CLI = [sys.executable, "-m", "flows.cli"]  # the `collabflow` command, as a subprocess of this Python

ML100K = Path(os.environ.get("COLLABFLOW_ML100K", Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"))


def pytest_unconfigure(config: pytest.Config) -> None:
    """The session's Prefect home goes with it (one per run piled up in the temporary folder)."""
    shutil.rmtree(_PREFECT_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness  # 5 s import: only when a test needs it

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def small_ratings(tmp_path_factory) -> Path:
    """A small u.data file (200 users, 150 items, 6,000 ratings) with taste groups every model learns, so
    nights publish the models, not the baselines (``synth.taste_groups``)."""
    return synth.write(synth.taste_groups(200, 150, 30, seed=7), tmp_path_factory.mktemp("small"), "udata")


@pytest.fixture
def ml100k() -> Path:
    path = ML100K / "u.data"
    if not path.exists():
        pytest.skip(f"MovieLens 100K not found at {ML100K}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(url: str, path: str, body: dict | None = None, attempts: int = 10):
    """One Prefect REST call; a busy server on 2 cores answers 503 now and then, so those are retried."""
    req = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or "null")
        except urllib.error.HTTPError as e:
            if e.code != 503 or attempt == attempts - 1:
                raise
            time.sleep(1)


def wait_for(what, check, timeout=120, every=1.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            result = check()
        except OSError:  # the server answers 503 while it finishes starting
            result = None
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[tuple[str, dict[str, str], subprocess.Popen]]:
    """A real `prefect server start` on a free port with its own PREFECT_HOME, up and answering;
    yields (api url, environment, process) and ends the process (by its handle) afterwards."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for("the Prefect server", lambda: api(url, "/health"), timeout=180)
        yield url, env, proc
    finally:
        proc.terminate()  # lets it stop its own workers; a no-op when a test has killed it already
        proc.wait(30)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One server shared by the modules that need one (each uses its own warehouse and flow runs; a start
    costs ~25 s on 2 cores); yields (api url, environment)."""
    with prefect_server(tmp_path_factory.mktemp("prefect-server") / "prefect") as (url, env, _):
        yield url, env
