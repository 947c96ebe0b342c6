"""Trainer: schedules, exact resume, EMA, logs, checkpoints, DDP on CPU (gloo)."""
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from sideman.numerics.schedules import ema_decay, exponential_decay, warmup_cosine
from sideman.models.checkpoint_io import atomic_torch_save
from sideman.training.trainer import (EMA, TrainConfig, Trainer, load_weights,
                                      make_loader)

torch.set_num_threads(1)


def test_warmup_then_cosine_to_zero():
    assert warmup_cosine(0, 10, 110) == pytest.approx(0.1)
    assert warmup_cosine(4, 10, 110) == pytest.approx(0.5)
    assert warmup_cosine(9, 10, 110) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 110) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110) == pytest.approx(0.5)
    assert warmup_cosine(35, 10, 110) == pytest.approx(0.5 * (1 + 2 ** -0.5))
    assert warmup_cosine(110, 10, 110) == pytest.approx(0.0)
    assert warmup_cosine(500, 10, 110) == pytest.approx(0.0)


def test_other_schedules():
    assert exponential_decay(0, 100, 0.1, 0.001) == pytest.approx(0.1)
    assert exponential_decay(50, 100, 0.1, 0.001) == pytest.approx(0.01)
    assert exponential_decay(100, 100, 0.1, 0.001) == pytest.approx(0.001)
    assert ema_decay(0, 0.999) == pytest.approx(0.1)
    assert ema_decay(10**6, 0.999) == 0.999


def test_ema_update():
    model = nn.Linear(3, 3)
    ema = EMA(model, max_decay=0.9)
    start = ema.module.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=10**6)          # decay 0.9
    assert torch.allclose(ema.module.weight, 0.9 * start + 0.1 * model.weight)
    assert not ema.module.weight.requires_grad


class Noisy(nn.Module):
    """A model whose loss uses the global RNG, so resuming must restore it."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, x):
        return self.net(x + 0.1 * torch.randn_like(x))


def regression_loss(model, batch):
    x, y = batch
    loss = (model(x) - y).pow(2).mean()
    return loss, {"loss": loss.detach(), "abs_y": y.abs().mean()}


def dataset():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(22, 4, generator=g)
    return TensorDataset(x, torch.stack([x.sum(1), x[:, 0] * x[:, 1]], 1))


def run(out_dir, until=None, total=12, **overrides):
    torch.manual_seed(123)
    settings = dict(lr=1e-2, warmup_steps=3, log_every=1, ckpt_every=4, ema_decay=0.9,
                    progress=False)
    cfg = TrainConfig(out_dir=str(out_dir), total_steps=total, **{**settings, **overrides})
    trainer = Trainer(Noisy(), regression_loss, make_loader(dataset(), 4, seed=5), cfg)
    trainer.fit(until)
    return trainer


def test_resume_continues_identically(tmp_path):
    whole = run(tmp_path / "whole")
    first = run(tmp_path / "split", until=7)       # stops mid-epoch (5 batches per epoch)
    assert first.step == 7 and (tmp_path / "split" / "last.pt").exists()
    resumed = run(tmp_path / "split")
    assert resumed.history[:7] == first.history[:7]          # reloaded from log.csv
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in whole.history]
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in whole.history]
    for a, b in zip(resumed.model.parameters(), whole.model.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(resumed.ema.parameters(), whole.ema.parameters()):
        assert torch.equal(a, b)
    fresh = run(tmp_path / "fresh", resume=False, seed=1)     # a different run differs
    assert [r["loss"] for r in fresh.history] != [r["loss"] for r in whole.history]


def test_learning_rate_follows_the_schedule(tmp_path):
    trainer = run(tmp_path)
    lrs = [r["lr"] for r in trainer.history]
    expect = [1e-2 * warmup_cosine(s, 3, 12) for s in range(12)]
    assert lrs == pytest.approx(expect, rel=1e-6)


def test_logs_plot_and_checkpoint_are_written(tmp_path):
    trainer = run(tmp_path, log_every=3)
    lines = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert lines[0].split(",")[:2] == ["step", "loss"]
    assert {"lr", "grad_norm", "abs_y"} <= set(lines[0].split(","))
    assert [int(line.split(",")[0]) for line in lines[1:]] == [3, 6, 9, 12]
    png = (tmp_path / "loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]   # no temp files
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    assert state["step"] == 12 and {"model", "ema", "optimizer", "scheduler", "rng"} <= set(state)
    assert trainer.history[-1]["loss"] < trainer.history[0]["loss"]


def test_load_weights_takes_the_ema(tmp_path):
    trainer = run(tmp_path)
    target = Noisy()
    load_weights(target, tmp_path / "last.pt")
    for a, b in zip(target.parameters(), trainer.ema.module.parameters()):
        assert torch.equal(a, b)
    load_weights(target, tmp_path / "last.pt", ema=False)
    for a, b in zip(target.parameters(), trainer.model.parameters()):
        assert torch.equal(a, b)


def test_atomic_save_replaces_the_file(tmp_path):
    path = tmp_path / "x.pt"
    atomic_torch_save({"a": 1}, path)
    atomic_torch_save({"a": 2}, path)
    assert torch.load(path)["a"] == 2 and os.listdir(tmp_path) == ["x.pt"]


def test_non_finite_loss_stops_training(tmp_path):
    def bad_loss(model, batch):
        return model(batch[0]).sum() * float("nan"), {}

    cfg = TrainConfig(out_dir=str(tmp_path), total_steps=3, log_every=1, progress=False)
    with pytest.raises(FloatingPointError):
        Trainer(Noisy(), bad_loss, make_loader(dataset(), 4), cfg).fit()


DDP_SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    from test_trainer import Noisy, regression_loss, dataset
    from sideman.training.trainer import Trainer, TrainConfig, make_loader
    torch.manual_seed(0)
    cfg = TrainConfig(out_dir={out!r}, total_steps=4, lr=1e-2, warmup_steps=1, log_every=2,
                      ckpt_every=4, progress=False)
    trainer = Trainer(Noisy(), regression_loss, make_loader(dataset(), 4, seed=1), cfg)
    trainer.fit()
    torch.save(trainer.model.state_dict(), {out!r} + f"/rank{{trainer.rank}}.pt")
""")


def test_ddp_on_cpu_with_two_processes(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(tests=os.path.dirname(__file__), out=str(tmp_path)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), CUDA_VISIBLE_DEVICES="")
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env,
                                      stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)     # gradients were averaged
    assert torch.load(tmp_path / "last.pt", weights_only=False)["step"] == 4
    assert len((tmp_path / "log.csv").read_text().strip().splitlines()) == 3
