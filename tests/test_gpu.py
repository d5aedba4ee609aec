"""The CUDA path (issue 4): same lists and comparable models on the GPU as on the CPU.

Marked ``gpu`` and skipped where torch sees no CUDA device (CI never has one); run with
``pytest -m gpu`` on a GPU machine (see bench/gpu_check.sh).
"""

import numpy as np
import pytest
import torch

from recmodel.config import TrainConfig
from recmodel.models import DotProductBias
from recmodel.score import top_n_unseen
from recmodel.sparse import csr_from_pairs
from recmodel.splits import random_split
from recmodel.train import Interactions, fit

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch"),
]


@pytest.mark.parametrize("integer", [False, True])
def test_gpu_lists_equal_cpu_lists(integer):
    rng = np.random.default_rng(4)
    if integer:  # exact ties, broken by item index on both devices
        uf, itf = rng.integers(-2, 3, (300, 6)).astype(np.float32), rng.integers(-2, 3, (5000, 6)).astype(np.float32)
    else:
        uf, itf = rng.normal(size=(300, 6)).astype(np.float32), rng.normal(size=(5000, 6)).astype(np.float32)
    users, items = np.nonzero(rng.random((300, 5000)) < 0.05)
    indptr, indices = csr_from_pairs(users, items, 300)
    cpu = top_n_unseen(torch.from_numpy(uf), torch.from_numpy(itf), indptr, indices, 50)
    gpu = top_n_unseen(torch.from_numpy(uf).cuda(), torch.from_numpy(itf).cuda(), indptr, indices, 50)
    assert np.array_equal(cpu.items, gpu.items)


def test_gpu_training_matches_cpu_quality():
    rng = np.random.default_rng(0)
    n_users, n_items, n = 500, 300, 40_000
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    uf, itf = rng.normal(size=(n_users, 3)), rng.normal(size=(n_items, 3))
    r = np.clip(3 + (uf[u] * itf[i]).sum(1) + rng.normal(0, 0.3, n), 1, 5).astype(np.float32)
    tr, va = random_split(n, 0.2, 0)
    cfg = TrainConfig(n_factors=8, epochs=5, lr_max=3e-2, wd=0.01)
    rmse = {}
    for device in ("cpu", "cuda"):
        data = Interactions.from_numpy(u, i, r, torch.device(device))
        model = DotProductBias(n_users, n_items, 8, generator=torch.Generator().manual_seed(0)).to(device)
        result = fit(
            model, data.subset(torch.as_tensor(tr, device=device)), data.subset(torch.as_tensor(va, device=device)), cfg
        )
        assert next(model.parameters()).device.type == device
        rmse[device] = result.final.valid_rmse
    assert rmse["cuda"] == pytest.approx(rmse["cpu"], abs=0.02)
