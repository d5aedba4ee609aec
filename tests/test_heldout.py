"""Issue #15's bars on fastai's own splits of MovieLens 100K (seeds 42-44), through the nightly defaults:
what a night would publish (tuning on a validation part of the training 80%, never the test 20%)."""

import numpy as np
import pytest

from bench.heldout import load_u_data, published
from recmodel.config import RunConfig

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def test_published_models_beat_the_book_on_held_out_splits(ml100k):
    frame = load_u_data(ml100k)
    runs = [published(frame, seed, RunConfig(rating_min=1, rating_max=5)) for seed in (42, 43, 44)]
    rmse = np.mean([r["rmse"] for r in runs])
    ndcg = np.mean([r["ndcg_at_10"] for r in runs])
    assert rmse <= 0.895, [r["rmse"] for r in runs]
    assert ndcg >= 0.39, [r["ndcg_at_10"] for r in runs]
