"""Acceptance on real MovieLens 100K (skipped when ../shared/data/ml-100k is absent)."""

import numpy as np
import pytest

from bench.ml100k import fastbook_rmse

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def test_fastbook_settings_reach_rmse_092(ml100k):
    rmses = [fastbook_rmse(ml100k, seed)[0] for seed in (42, 43, 44)]
    assert np.mean(rmses) <= 0.92, rmses
