"""The one training loop: losses fall, runs repeat with a seed, and misuse gets a clear error."""
import pytest
import torch
from torch import nn

from lecture13.training import (History, UntilDeadline, deadline_after, evaluate_mean, gradient_step, pick_device,
                                seed_everything, train)


def regression_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    return list(zip(x.split(32), y.split(32)))


def mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def test_loss_falls_and_history_is_complete():
    model = nn.Linear(3, 1)
    history = train(model, regression_data(), mse, lr=0.05, epochs=20, progress=False, device="cpu")
    losses = history.series("loss")
    assert len(losses) == 20 * 8 and len(history.epochs) == 20
    assert losses[-1] < 0.01 * losses[0]
    assert history.seconds > 0 and not model.training


def test_same_seed_same_run():
    def run(seed):
        seed_everything(seed)  # the model's initial weights
        return train(nn.Linear(3, 1), regression_data(), mse, epochs=2, seed=seed, progress=False, device="cpu")

    assert run(5).series("loss") == run(5).series("loss") != run(6).series("loss")


def test_max_steps_and_logged_parts():
    def loss_with_parts(model, batch):
        loss = mse(model, batch)
        return {"loss": loss, "half": loss / 2}

    history = train(nn.Linear(3, 1), regression_data(), loss_with_parts, epochs=5, max_steps=3, progress=False)
    assert len(history.steps) == 3 and history.series("half")[0] == pytest.approx(history.series("loss")[0] / 2)


def test_step_fn_does_the_whole_update():
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def step(batch):
        optimizer.zero_grad()
        loss = mse(model, batch)
        loss.backward()
        optimizer.step()
        calls.append(1)
        return {"loss": loss.item()}

    history = train(model, regression_data(), step_fn=step, epochs=3, progress=False)
    assert len(calls) == 24 and history.series("loss")[-1] < history.series("loss")[0]


def test_eval_fn_runs_each_epoch():
    history = train(nn.Linear(3, 1), regression_data(), mse, epochs=2, progress=False,
                    eval_fn=lambda m: {"bias": m.bias.item()})
    assert [row["epoch"] for row in history.epochs] == [0, 1] and "eval_bias" in history.epochs[0]


def test_misuse_is_explained():
    data = regression_data()
    with pytest.raises(ValueError, match="exactly one of loss_fn"):
        train(nn.Linear(3, 1), data, progress=False)
    with pytest.raises(ValueError, match="scalar"):
        train(nn.Linear(3, 1), data, lambda m, b: (m(b[0]) - b[1]) ** 2, progress=False)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train(nn.Linear(3, 1), data, lambda m, b: m(b[0]).sum() * float("nan"), progress=False)


def test_helpers():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    g = seed_everything(1)
    assert torch.rand(1, generator=g).item() == torch.rand(1, generator=torch.Generator().manual_seed(1)).item()
    data = [torch.ones(4, 2), torch.ones(2, 2)]
    assert evaluate_mean(nn.Identity(), data, lambda m, x: x.sum(1), device="cpu") == 2.0
    both = History(steps=[{"loss": 1.0}], seconds=1.0).extend(History(steps=[{"loss": 0.5}], seconds=2.0))
    assert both.series("loss") == [1.0, 0.5] and both.seconds == 3.0


def test_a_time_budget_stops_training_and_no_budget_never_does():
    data = regression_data()
    spent = UntilDeadline(data, deadline_after(0.0))          # already past: not one step
    history = train(nn.Linear(3, 1), spent, mse, epochs=3, progress=False)
    assert history.steps == [] and len(spent) == len(data)
    unlimited = train(nn.Linear(3, 1), UntilDeadline(data, deadline_after(None)), mse, epochs=3, progress=False)
    assert len(unlimited.steps) == 3 * len(data)


@pytest.mark.parametrize("precision, forward_dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_precision_sets_the_forward_dtype_and_keeps_weights_float32(precision, forward_dtype):
    seen = []

    def recording_mse(model, batch):
        out = model(batch[0])
        seen.append(out.dtype)
        return ((out.float() - batch[1]) ** 2).mean()

    model = nn.Linear(3, 1)
    history = train(model, regression_data(), recording_mse, lr=0.05, epochs=20, precision=precision,
                    progress=False, device="cpu")
    assert set(seen) == {forward_dtype}
    assert model.weight.dtype == torch.float32 and model.weight.grad.dtype == torch.float32
    losses = history.series("loss")
    assert losses[-1] < 0.02 * losses[0]          # bf16 still fits the line (to bf16's precision)


def test_bf16_gradient_is_close_to_the_float32_one():
    seed_everything(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
    batch = regression_data()[0]
    grads = {}
    for precision in ("fp32", "bf16"):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)     # lr 0: weights stay put
        gradient_step(model, lambda m, b: ((m(b[0]).float() - b[1]) ** 2).mean(), optimizer,
                      precision=precision)(batch)
        grads[precision] = torch.cat([p.grad.flatten() for p in model.parameters()])
    relative = (grads["bf16"] - grads["fp32"]).norm() / grads["fp32"].norm()
    assert 0 < relative < 0.05        # not bit-identical (bf16 really ran), yet the same direction


def test_unknown_precision_is_explained():
    with pytest.raises(ValueError, match="precision must be one of"):
        train(nn.Linear(3, 1), regression_data(), mse, precision="fp16", progress=False)
    with pytest.raises(ValueError, match="precision applies to loss_fn"):
        train(nn.Linear(3, 1), regression_data(), step_fn=lambda batch: {"loss": 0.0}, precision="bf16",
              progress=False)


def test_set_threads_follows_omp_num_threads_else_the_course_default(monkeypatch):
    import os

    from lecture13.training import COURSE_THREADS, set_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert set_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        expected = min(COURSE_THREADS, os.cpu_count() or 1)
        assert set_threads() == expected and torch.get_num_threads() == expected
        monkeypatch.setenv("OMP_NUM_THREADS", "junk")
        assert set_threads(1) == 1
    finally:
        torch.set_num_threads(before)
