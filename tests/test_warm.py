"""``recmodel.warm``: what ``collabflow run`` loads while Prefect's temporary server starts."""

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
