"""Prefect's temporary server for a plain ``collabflow run``, started before the night's heavy imports.

With no ``PREFECT_API_URL`` and Prefect's ephemeral mode on (its default profile), any Prefect script gets a
temporary server at its first flow call: Prefect imports its own server code in the calling process, then
waits while a subprocess imports it again and opens the database. By then the night has imported torch,
numba, polars and DuckDB, so the two starts came one after the other.

``start_early`` starts the same subprocess (Prefect's command line, in this process's environment) as the
command begins, so it boots on the other core while this process imports the night, and points this process
at it (``PREFECT_API_URL``, then Prefect's settings refreshed): Prefect then neither imports its server code
here nor starts a second server. A profile that names a server (or forbids a temporary one) stops it again
at once. ``wait_until_up`` waits for its health check before the flow starts; a server that does not come
up is stopped and Prefect starts its own, as before. The server is stopped at exit as Prefect stops its own
(SIGTERM, then SIGKILL after 5 s), and on Linux the kernel also stops it if this process is killed outright
(SIGKILL, the OOM killer), which left Prefect's own temporary server running, orphaned.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PORT_TAKEN = 3  # uvicorn's exit status when it cannot bind


@dataclass
class EarlyServer:
    """A temporary Prefect server this process started (``start_early``)."""

    process: subprocess.Popen[bytes] | None
    port: int
    started: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(port: int) -> subprocess.Popen[bytes]:
    """Prefect's own command for its temporary server (``prefect.server.api.server``), UI off. Its settings
    come from the same environment and profile as this process's: nothing here changes them in-process."""
    spec = importlib.util.find_spec("prefect")
    assert spec is not None and spec.submodule_search_locations, "Prefect is not installed"
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    args = ["--app-dir", str(Path(spec.submodule_search_locations[0]).parent)]
    args += ["--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--log-level", "error", "--lifespan", "on"]
    return subprocess.Popen([*_ends_with_parent(), "-m", "uvicorn", *args], env=env)


# Run in the child before it becomes the server (execv keeps the setting): the kernel sends it SIGTERM when
# the thread that spawned it dies, even by SIGKILL, which no exit handler sees (Prefect's own temporary
# server outlived such a night). It exits at once if that parent is already gone.
_BOOT = (
    "import ctypes, os, sys; ctypes.CDLL(None).prctl(1, 15); "  # PR_SET_PDEATHSIG, SIGTERM
    "os.getppid() == int(sys.argv[1]) or os._exit(0); os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


def _ends_with_parent() -> list[str]:
    """The interpreter's command line, through ``_BOOT`` on Linux (spawned from the main thread, which lives as
    long as the process); elsewhere the exit handlers alone stop the server."""
    if not sys.platform.startswith("linux"):
        return [sys.executable]
    return [sys.executable, "-c", _BOOT, str(os.getpid())]


def _point_prefect_at(url: str | None) -> None:
    from prefect.context import refresh_global_settings_context

    if url is None:
        os.environ.pop("PREFECT_API_URL", None)
        os.environ.pop("PREFECT_UI_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = f"{url}/api"
        os.environ["PREFECT_UI_URL"] = ""  # as for Prefect's own temporary server: no UI, so no "View at" link
    refresh_global_settings_context()


def start_early() -> EarlyServer | None:
    """Start the temporary server now, if Prefect would start one at the flow's first call; else None."""
    if "PREFECT_API_URL" in os.environ or "PREFECT_UI_URL" in os.environ:
        return None  # a configured server: Prefect's own behaviour, untouched
    port = _free_port()
    # spawned before Prefect's settings load (0.7 s of this process's start), which then decide
    server = EarlyServer(_spawn(port), port)
    atexit.register(server.stop)
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        server.stop()  # the profile names a server (or allows none): Prefect's own behaviour
        return None
    _point_prefect_at(server.url)
    from prefect.logging import get_logger
    from prefect.logging.configuration import setup_logging

    setup_logging()  # what importing Prefect's flow machinery does next anyway; the line below shows now
    get_logger().info("Starting temporary server on %s (while the night loads)", server.url)
    return server


def wait_until_up(server: EarlyServer | None) -> None:
    """Return once the server answers its health check. One that exited or did not answer in Prefect's
    start-up timeout is stopped, and Prefect starts its own at the flow's first call (with its own errors)."""
    if server is None:
        return
    import httpx
    from prefect.logging import get_logger
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    deadline = server.started + PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    with httpx.Client() as client:
        while server.process is not None and time.monotonic() < deadline:
            status = server.process.poll()
            if status == PORT_TAKEN:  # another process took the port meanwhile: another port
                server.port = _free_port()
                server.process = _spawn(server.port)
                _point_prefect_at(server.url)
                continue
            if status is not None:
                break
            try:
                if client.get(f"{server.url}/api/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    status = server.process.poll() if server.process is not None else None
    server.stop()
    _point_prefect_at(None)
    get_logger().warning(
        "the temporary server on %s %s; Prefect starts its own",
        server.url,
        "did not answer in time" if status is None else f"exited with status {status}",
    )


@contextmanager
def night_settings(server: EarlyServer | None) -> Iterator[None]:
    """Around the flow call. With the temporary server: no flow-run heartbeats. They let a lasting server
    notice a run that died, and this server dies with the run; and Prefect's heartbeat thread sleeps in
    whole seconds, so ending a flow waited up to 1 s for it to wake."""
    if server is None:
        yield
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
