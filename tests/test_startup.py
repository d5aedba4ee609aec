"""Start-up: what `collabflow run` loads while Prefect starts (recmodel.warm), the collector (flows.heap)."""

import subprocess
import sys

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
