"""The dot-product model and its trainer (recmodel.models, recmodel.train)."""

import numpy as np
import pytest
import torch

from recmodel.config import RunConfig, TrainConfig
from recmodel.models import DotProductBias
from recmodel.splits import random_split
from recmodel.train import Interactions, evaluate, fit


def synthetic(seed=0, n_users=120, n_items=80, n=6000):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    uf, itf = rng.normal(size=(n_users, 3)), rng.normal(size=(n_items, 3))
    r = np.clip(3 + (uf[u] * itf[i]).sum(1) + rng.normal(0, 0.3, n), 1, 5)
    return u, i, r.astype(np.float32), n_users, n_items


def train_once(cfg, seed=0):
    u, i, r, nu, ni = synthetic(seed)
    data = Interactions.from_numpy(u, i, r, torch.device("cpu"))
    tr, va = random_split(len(r), cfg.valid_pct, cfg.seed)
    model = DotProductBias(nu, ni, cfg.n_factors, cfg.y_range, generator=torch.Generator().manual_seed(cfg.seed))
    result = fit(model, data.subset(torch.as_tensor(tr)), data.subset(torch.as_tensor(va)), cfg)
    return model, result, r[tr], data.subset(torch.as_tensor(va))


def test_learns_better_than_the_global_mean():
    cfg = TrainConfig(n_factors=8, epochs=15, lr_max=3e-2, wd=0.01, batch_size=256)
    model, result, train_r, valid = train_once(cfg)
    mean_rmse = float(np.sqrt(((valid.ratings.numpy() - train_r.mean()) ** 2).mean()))
    assert result.final.valid_rmse < 0.8 * mean_rmse
    assert [h.epoch for h in result.history] == list(range(1, 16))
    assert evaluate(model, valid)[0] == pytest.approx(result.final.valid_rmse)


def test_same_seed_same_model_on_cpu():
    cfg = TrainConfig(n_factors=4, epochs=2, batch_size=128)
    a, ra, _, _ = train_once(cfg)
    b, rb, _, _ = train_once(cfg)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c, _, _, _ = train_once(cfg.model_copy(update={"seed": 7}))
    assert not torch.equal(a.user_emb.weight, c.user_emb.weight)


def test_predictions_stay_in_y_range():
    model = DotProductBias(3, 4, 2, (1.0, 2.0))
    with torch.no_grad():
        model.user_emb.weight.fill_(10.0)
        model.item_emb.weight.fill_(10.0)
    pred = model(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 3]))
    assert ((pred >= 1.0) & (pred <= 2.0)).all()


def test_ranking_factors_reproduce_logits():
    model = DotProductBias(5, 7, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    uf, itf = model.ranking_factors()
    users, items = torch.arange(5).repeat_interleave(7), torch.arange(7).repeat(5)
    assert torch.allclose((uf @ itf.T).flatten(), model.logits(users, items), atol=1e-5)


def test_random_split_is_seeded_and_disjoint():
    tr, va = random_split(100, 0.2, 1)
    assert len(va) == 20 and len(set(tr) | set(va)) == 100 and not set(tr) & set(va)
    assert np.array_equal(va, random_split(100, 0.2, 1)[1])
    assert not np.array_equal(va, random_split(100, 0.2, 2)[1])


def test_config_validation_messages():
    with pytest.raises(ValueError, match="low < high"):
        TrainConfig(y_range=(5, 1))
    with pytest.raises(ValueError, match="cover the rating range"):
        RunConfig(rating_max=10, train=TrainConfig(y_range=(0.0, 6.0)))  # set by hand: refused, not widened
    with pytest.raises(ValueError):
        RunConfig(top_n=0)


def test_the_star_defaults_follow_a_scale_they_do_not_fit():
    """Book-Crossing rates 0-10, Jester -10..10, a score 0-1: ``y_range`` keeps the default's margins (a ninth
    of the scale each side: (0, 5.5) for 0.5-5) and ``relevance_threshold`` its place (7/9 of the way up)
    instead of refusing the scale; a scale they fit (1-5) keeps both, and a value given keeps its value."""
    for scale in ({}, {"rating_min": 1, "rating_max": 5}):
        cfg = RunConfig.from_flat(**scale)
        assert (cfg.train.y_range, cfg.rank.relevance_threshold) == ((0.0, 5.5), 4.0)
    for (lo, hi), threshold in (((0, 10), 70 / 9), ((1, 10), 8.0), ((-10, 10), 50 / 9), ((0, 1), 7 / 9)):
        cfg = RunConfig.from_flat(rating_min=lo, rating_max=hi)
        margin = (hi - lo) / 9
        assert cfg.train.y_range == pytest.approx((lo - margin, hi + margin))
        assert cfg.rank.relevance_threshold == pytest.approx(threshold)
    cfg = RunConfig.from_flat(rating_min=1, rating_max=10, relevance_threshold=6.0, y_range=(0.0, 12.0))
    assert (cfg.train.y_range, cfg.rank.relevance_threshold) == ((0.0, 12.0), 6.0)


def test_hand_written_gradients_match_autograd():
    """The dot model's trainer (recmodel.train._fit_dot) and the autograd path (used by every other model)
    take the same steps: same data, seed and settings give the same weights (float rounding aside)."""
    from recmodel.train import OneCycleAdamW, _fit_dot, epoch_order

    u, i, r, nu, ni = synthetic(3)
    data = Interactions.from_numpy(u, i, r, torch.device("cpu"))
    cfg = TrainConfig(n_factors=4, epochs=3, batch_size=256, lr_max=3e-2)
    fast = DotProductBias(nu, ni, 4, generator=torch.Generator().manual_seed(0))
    slow = DotProductBias(nu, ni, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _fit_dot(fast, data, cfg, torch.Generator().manual_seed(1), 256, lambda *a: None)
    opt = OneCycleAdamW(slow.parameters(), cfg, 3 * -(-len(data) // 256))
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        order = epoch_order(len(data), gen, torch.device("cpu"))
        for s in range(0, len(data), 256):
            idx = order[s : s + 256]
            loss = torch.nn.functional.mse_loss(slow(data.users[idx], data.items[idx]), data.ratings[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    for a, b in zip(fast.state_dict().values(), slow.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_one_cycle_adamw_takes_torchs_fused_adamw_steps_under_one_cycle_lr():
    """``OneCycleAdamW`` (torch's fused kernel called directly, schedule computed here) and
    ``torch.optim.AdamW(fused=True)`` stepped by ``OneCycleLR`` give the same weights, bit for bit."""
    from recmodel.train import OneCycleAdamW, one_cycle_schedule

    cfg = TrainConfig(lr_max=3e-2, wd=0.1)
    steps = 37
    ours = [torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), torch.randn(4)]
    ref = [p.clone().requires_grad_() for p in ours]
    opt = OneCycleAdamW(ours, cfg, steps)
    torch_opt = torch.optim.AdamW(ref, lr=cfg.lr_max, betas=(0.9, 0.99), eps=1e-5, weight_decay=cfg.wd, fused=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        torch_opt, max_lr=cfg.lr_max, total_steps=steps, pct_start=0.25, final_div_factor=1e5,
        base_momentum=0.85, max_momentum=0.95,
    )  # fmt: skip
    lrs, beta1s = one_cycle_schedule(cfg.lr_max, steps)
    gen = torch.Generator().manual_seed(1)
    for k in range(steps):
        group = torch_opt.param_groups[0]
        assert (lrs[k], beta1s[k]) == (group["lr"], group["betas"][0]), k
        for a, b in zip(ours, ref):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad.clone()
        opt.step()
        torch_opt.step()
        sched.step()
    for a, b in zip(ours, ref):
        assert torch.equal(a, b.detach())


def test_batches_grow_on_large_data_and_shrink_on_small():
    from recmodel.train import effective_batch_size

    assert effective_batch_size(20_000_000, 512, 1000) == 20_000  # at most 1000 dense optimizer steps an epoch
    assert effective_batch_size(80_000, 512, 1000) == 512
    assert effective_batch_size(6_000, 512, 1000) == 60  # at least 100 steps


def test_lazy_adamw_kernel_takes_adamw_steps_on_touched_rows():
    """The large-data trainer (``_fit_dot_numba``: one numba kernel per epoch) takes AdamW's step (torch's
    formula: decoupled decay, bias-corrected moments, eps outside the root) on exactly the rows each batch
    touches, under the same one-cycle schedule; untouched rows keep their weights and moments."""
    from recmodel.train import OneCycleAdamW, _fit_dot_numba, epoch_order, one_cycle_schedule

    u, i, r, nu, ni = synthetic(3)
    data = Interactions.from_numpy(u, i, r, torch.device("cpu"))
    cfg = TrainConfig(n_factors=4, epochs=2, batch_size=256, lr_max=3e-2, wd=0.1, lazy_optimizer_from=0)
    fast = DotProductBias(nu, ni, 4, generator=torch.Generator().manual_seed(0))
    ref = DotProductBias(nu, ni, 4, generator=torch.Generator().manual_seed(0))
    _fit_dot_numba(fast, data, cfg, torch.Generator().manual_seed(1), 256, lambda *a: None)
    params = [ref.user_emb.weight, ref.user_bias.weight, ref.item_emb.weight, ref.item_bias.weight]
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    lrs, beta1s = one_cycle_schedule(cfg.lr_max, cfg.epochs * -(-len(data) // 256))
    gen, t = torch.Generator().manual_seed(1), 0
    for _ in range(cfg.epochs):
        order = epoch_order(len(data), gen, torch.device("cpu"))
        for s in range(0, len(data), 256):
            idx = order[s : s + 256]
            for p in params:
                p.grad = None
            torch.nn.functional.mse_loss(ref(data.users[idx], data.items[idx]), data.ratings[idx]).backward()
            lr, b1, b2, eps = lrs[t], beta1s[t], OneCycleAdamW.beta2, OneCycleAdamW.eps
            t += 1
            touched = [
                data.users[idx].unique(),
                data.users[idx].unique(),
                data.items[idx].unique(),
                data.items[idx].unique(),
            ]
            with torch.no_grad():
                for p, (m, v), rows in zip(params, moments, touched):
                    g = p.grad[rows]
                    m[rows] = b1 * m[rows] + (1 - b1) * g
                    v[rows] = b2 * v[rows] + (1 - b2) * g * g
                    denom = (v[rows] / (1 - b2**t)).sqrt() + eps
                    p[rows] = p[rows] * (1 - lr * cfg.wd) - lr / (1 - b1**t) * m[rows] / denom
    for a, b in zip(fast.state_dict().values(), ref.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
    # the same seed gives the same weights, bit for bit, with any number of threads (rows are split
    # between threads, each row's gradient summed in batch order)
    import numba

    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        again = DotProductBias(nu, ni, 4, generator=torch.Generator().manual_seed(0))
        _fit_dot_numba(again, data, cfg, torch.Generator().manual_seed(1), 256, lambda *a: None)
    finally:
        numba.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(fast.state_dict().values(), again.state_dict().values()))


def test_many_users_and_items_take_the_lazy_step_below_lazy_optimizer_from():
    """The dense step reads every row at every step: with more than ``DENSE_MAX_ROWS`` users plus items
    (sparse data: many users with a few ratings each) ``fit`` takes the lazy step even on few ratings, and
    the dense one on MovieLens-sized tables."""
    from recmodel.train import DENSE_MAX_ROWS, _fit_dot_numba, dense_steps

    cfg = TrainConfig(n_factors=4, epochs=1, batch_size=256)
    assert dense_steps(80_000, 943 + 1682, cfg) and dense_steps(800_000, 6040 + 3706, cfg)
    assert not dense_steps(4_000_000, 1_450_000 + 400_000, cfg) and not dense_steps(8_000_000, 80_000, cfg)
    rng = np.random.default_rng(0)
    nu, ni, n = DENSE_MAX_ROWS, 2_000, 30_000
    u, i = rng.integers(0, nu, n), rng.integers(0, ni, n)
    data = Interactions.from_numpy(u, i, rng.uniform(1, 5, n).astype(np.float32), torch.device("cpu"))
    models = [DotProductBias(nu, ni, 4, generator=torch.Generator().manual_seed(0)) for _ in range(3)]
    fit(models[0], data, None, cfg)
    batch = 256 if n // 100 >= 256 else max(32, n // 100)
    for model, dense in zip(models[1:], (False, True)):
        _fit_dot_numba(model, data, cfg, torch.Generator().manual_seed(cfg.seed), batch, lambda *a: None, dense)
    fitted, lazy, dense = (m.user_emb.weight for m in models)
    assert torch.equal(fitted, lazy) and not torch.equal(fitted, dense)


def test_the_dense_cpu_kernel_takes_the_steps_of_the_torch_trainer():
    """Below ``lazy_optimizer_from`` on the CPU the dot model trains in ``_dot_epoch(dense=True)``: AdamW on
    every row at every step (an untouched row decays and follows its momentum), as ``_fit_dot`` does with
    torch's fused step (used on the GPU). Same weights up to float rounding, and the same bits with any
    number of threads."""
    import numba

    from recmodel.train import _fit_dot, _fit_dot_numba

    u, i, r, nu, ni = synthetic(3)
    data = Interactions.from_numpy(u, i, r, torch.device("cpu"))
    cfg = TrainConfig(n_factors=4, epochs=3, batch_size=256, lr_max=3e-2, wd=0.1)
    models = [DotProductBias(nu, ni, 4, generator=torch.Generator().manual_seed(0)) for _ in range(3)]
    with torch.no_grad():
        _fit_dot(models[0], data, cfg, torch.Generator().manual_seed(1), 256, lambda *a: None)
    _fit_dot_numba(models[1], data, cfg, torch.Generator().manual_seed(1), 256, lambda *a: None, dense=True)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        _fit_dot_numba(models[2], data, cfg, torch.Generator().manual_seed(1), 256, lambda *a: None, dense=True)
    finally:
        numba.set_num_threads(threads)
    torch_w, dense_w, one_thread_w = (m.state_dict().values() for m in models)
    for a, b in zip(torch_w, dense_w):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    assert all(torch.equal(a, b) for a, b in zip(models[1].state_dict().values(), one_thread_w))
    lazy = DotProductBias(nu, ni, 4, generator=torch.Generator().manual_seed(0))
    _fit_dot_numba(lazy, data, cfg, torch.Generator().manual_seed(1), 256, lambda *a: None)
    assert not torch.allclose(lazy.user_emb.weight, models[0].user_emb.weight, atol=1e-5)  # lazy differs: rows rest


def test_the_dot_models_cpu_evaluation_is_the_torch_forward_passs():
    """``evaluate`` takes one numba pass for the dot model on the CPU: the RMSE and MAE of the torch forward
    pass (float rounding aside), and the same bits with any number of threads."""
    import numba

    from recmodel.train import _evaluate_torch, evaluate

    u, i, r, nu, ni = synthetic(5)
    data = Interactions.from_numpy(u, i, r, torch.device("cpu"))
    model = DotProductBias(nu, ni, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for emb in (model.user_emb, model.item_emb, model.user_bias, model.item_bias):
            emb.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(emb.weight.numel()))
    fast, slow = evaluate(model, data), _evaluate_torch(model, data, batch_size=1000)
    np.testing.assert_allclose(fast, slow, rtol=1e-6)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert evaluate(model, data) == fast
    finally:
        numba.set_num_threads(threads)
