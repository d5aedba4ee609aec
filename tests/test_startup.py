"""Start-up: what `collabflow run` loads while Prefect starts (recmodel.warm), the collector (flows.heap)."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import CLI

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import sys, numba
from recmodel.warm import warm_up
assert "matplotlib.figure" not in sys.modules
try:
    numba.threading_layer()
except ValueError:
    pass
else:
    raise AssertionError("numba's thread pool started before warm_up")
warm_up()
print("matplotlib.backends.backend_agg" in sys.modules, numba.threading_layer())
"""


def test_warm_up_loads_numbas_thread_pool_and_matplotlibs_canvas():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True" and out[1] in ("omp", "tbb", "workqueue")


PRELOAD = """
import sys
import numpy as np
from recmodel import sparse, warm
kernel = sparse._counting_sort
if sys.argv[1] == "fill":  # compiled, or loaded: numba's cache holds it either way
    sparse.csr_order(np.array([2, 0, 1]), 3)
else:
    assert not kernel.signatures
    loaded = warm.load_cached_kernels()
    print(loaded >= 1, len(kernel.signatures) >= 1)
    hits = sum(kernel.stats.cache_hits.values())
    sparse.csr_order(np.array([2, 0, 1]), 3)  # neither loads (a hit) nor compiles (a miss)
    print(sum(kernel.stats.cache_hits.values()) - hits, sum(kernel.stats.cache_misses.values()))
"""


def test_the_warm_up_loads_a_cached_kernel_before_its_first_call_and_compiles_nothing():
    """``load_cached_kernels`` (run while Prefect starts) loads what numba's cache holds for the imported
    kernels, so their first call in the night neither loads nor compiles."""
    subprocess.run([sys.executable, "-c", PRELOAD, "fill"], capture_output=True, text=True, check=True, cwd=ROOT)
    out = subprocess.run([sys.executable, "-c", PRELOAD, "use"], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["True", "True", "0", "0"]


HEAP = """
import gc
from flows import heap
heap.settle()  # collector on: nothing to do
assert gc.isenabled() and gc.get_freeze_count() == 0
heap.quiet_start()
assert not gc.isenabled()
made = [[i] for i in range(1000)]
heap.settle()
print(gc.isenabled(), gc.get_freeze_count() >= 1000)
"""


def test_the_collector_is_off_for_start_up_and_on_for_the_night_with_start_up_frozen():
    out = subprocess.run([sys.executable, "-c", HEAP], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True"]


def test_sigterm_while_prefect_starts_leaves_no_server_behind(small_ratings, tmp_path):
    """SIGTERM (a scheduler's time limit) outside Prefect's own handler, e.g. while its temporary server
    starts, killed the process on the spot and left that server running, orphaned. It now unwinds as Ctrl-C
    does: exit 130, a last line saying nothing was published, and no server left."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)  # the temporary server of a plain `collabflow run`
    cmd = [
        *CLI,
        "run",
        "--source",
        str(small_ratings),
        "--warehouse",
        str(tmp_path / "wh"),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    while not (started := re.search(r"Starting temporary server on http://127\.0\.0\.1:(\d+)", "".join(lines))):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines[-20:])
        time.sleep(0.1)
    port = started.group(1)
    time.sleep(1.0)  # the server process is up and starting; the flow has not begun
    assert not any("Beginning flow run" in line for line in lines)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 130
    reader.join(10)
    assert "collabflow run: interrupted (Ctrl-C or SIGTERM): nothing was published" in "".join(lines)
    left = _serving(port)
    assert not left, f"Prefect's server on port {port} outlived the night"


def _has_arg(proc_dir: Path, needle: str) -> bool:
    try:
        return needle in (proc_dir / "cmdline").read_text()
    except OSError:  # gone meanwhile, or not ours to read
        return False


def _serving(port: str) -> list[Path]:
    """The processes (``/proc`` folders) whose command line has ``--port PORT``: a server on that port."""
    return [p for p in Path("/proc").iterdir() if p.name.isdigit() and _has_arg(p, f"--port\0{port}\0")]


def test_run_starts_one_temporary_server_before_its_imports_and_stops_it(small_ratings, tmp_path):
    """`collabflow run` starts Prefect's temporary server as it begins (flows.server), so the server boots
    while the night imports; Prefect uses it rather than starting its own, and it is gone after the run."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    cmd = [*CLI, "run", "--source", str(small_ratings), "--warehouse", str(tmp_path / "wh")]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    starts = re.findall(r"Starting temporary server on http://127\.0\.0\.1:(\d+)(.*)", proc.stderr)
    assert len(starts) == 1 and "while the night loads" in starts[0][1], starts
    assert "View at" not in proc.stderr  # that server serves no UI, as Prefect's own temporary one
    left = _serving(starts[0][0])
    assert not left, f"the temporary server on port {starts[0][0]} outlived the night"
    # no flow-run heartbeats for a server that ends with the run (flows.server.night_settings)
    with sqlite3.connect(tmp_path / "prefect" / "prefect.db") as db:
        events = dict(db.execute("select event, count(*) from events group by event").fetchall())
    assert events.get("prefect.flow-run.Running") == 1 and "prefect.flow-run.heartbeat" not in events, events


HANDOVER = """
import os, subprocess, sys
from pathlib import Path
from flows import server
from prefect.context import refresh_global_settings_context
from prefect.settings import PREFECT_API_URL

def children():
    def parent(stat):
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[1]
        except OSError:  # gone meanwhile
            return None
    return sum(parent(p) == str(os.getpid()) for p in Path("/proc").glob("[0-9]*/stat"))

def exiting(status):
    process = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({status})"])
    return server.EarlyServer(process, server._free_port())

taken = exiting(3)  # uvicorn's status when its port was taken meanwhile: a real server on another port
first = taken.port
server._point_prefect_at(taken.url)
server.wait_until_up(taken)
print(taken.port != first, PREFECT_API_URL.value() == taken.url + "/api", taken.process is not None)
taken.stop()
broken = exiting(1)
server._point_prefect_at(broken.url)
assert PREFECT_API_URL.value() == broken.url + "/api"
server.wait_until_up(broken)  # it exited: stopped, and Prefect is pointed at no server again
print(PREFECT_API_URL.value(), os.environ.get("PREFECT_API_URL"), broken.process, children())
os.environ["PREFECT_SERVER_EPHEMERAL_ENABLED"] = "false"  # as a profile may say: started, then stopped at once
refresh_global_settings_context()
print(server.start_early(), children())
os.environ["PREFECT_API_URL"] = "http://127.0.0.1:9/api"  # a configured server: nothing started
refresh_global_settings_context()
print(server.start_early())
"""


def test_a_temporary_server_that_does_not_come_up_is_replaced_or_handed_back_to_prefect():
    out = subprocess.run([sys.executable, "-c", HANDOVER], cwd=ROOT, capture_output=True, text=True, check=True)
    expected = ["True", "True", "True", "None", "None", "None", "0", "None", "0", "None"]
    assert out.stdout.split() == expected, out.stdout + out.stderr[-2000:]


def test_a_night_killed_outright_leaves_no_server_behind(small_ratings, tmp_path):
    """SIGKILL (or the OOM killer) runs no exit handler: Prefect's own temporary server outlived such a night.
    The one `collabflow run` starts is told by the kernel to stop when its parent dies (Linux)."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "COLLABFLOW_TEST_KILL_AT": "train"}
    env.pop("PREFECT_API_URL", None)
    cmd = [*CLI, "run", "--source", str(small_ratings), "--warehouse", str(tmp_path / "wh")]
    with open(tmp_path / "stderr", "w+") as err:  # a file, not a pipe: a server left behind would hold a pipe open
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err, timeout=300)
        err.seek(0)
        stderr = err.read()
    assert proc.returncode == -signal.SIGKILL, stderr[-2000:]
    port = re.search(r"Starting temporary server on http://127\.0\.0\.1:(\d+)", stderr).group(1)
    deadline = time.monotonic() + 20
    while (left := _serving(port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for p in left:  # never leave one behind, even when the test fails
        os.kill(int(p.name), signal.SIGKILL)
    assert not left, f"the temporary server on port {port} outlived a night killed outright"


def test_the_wait_for_the_early_server_is_used_to_warm_up(monkeypatch):
    """The early server (flows.server) sets PREFECT_API_URL, and the warm-up was keyed on that variable
    being unset: from then on no night warmed up while it waited for the server. It keys on the server now."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.cli import _warm_up_while_prefect_starts

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert _warm_up_while_prefect_starts(None) is None  # a configured server: nothing to wait for
        thread = _warm_up_while_prefect_starts(object())  # ours, booting
    assert thread is not None and thread.name == "collabflow-warm-up"
    thread.join(60)
    assert not thread.is_alive() and "matplotlib.backends.backend_agg" in sys.modules
