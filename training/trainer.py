"""A reusable trainer for every Sideman model (autoencoder, DiT, CLAP, bridge).

The trainer owns the optimisation loop: AdamW with linear warm-up then cosine decay to 0,
an EMA of the weights, gradient clipping, bf16 autocast on CUDA (on CPU when asked), DDP when
launched by ``torchrun`` (``WORLD_SIZE`` > 1), a tqdm bar, a CSV log, a PNG of the curves
and atomic checkpoints that resume exactly (same losses as an uninterrupted run).

The model-specific part is ``loss_fn(model, batch) -> (loss, scalars)``: ``loss`` a 0-d
tensor to minimise, ``scalars`` a dict of floats or 0-d tensors to log (averaged over
``log_every`` steps and across ranks). ``model`` is the (possibly DDP-wrapped) module given
to the trainer. A loss_fn with a ``set_step(step)`` method is told the step before each
update (e.g. for the consistency-step schedule).

Exact resume needs a deterministic data order per epoch: use :func:`make_loader`, or a
DataLoader with a ``generator`` (reseeded with ``seed + epoch`` at each epoch) or a sampler
with ``set_epoch``. On resume the current epoch is replayed up to the saved position.
"""
from __future__ import annotations

import atexit
import copy
import csv
import os
import random
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from sideman.data.files import atomic_writer
from sideman.models.checkpoint_io import atomic_torch_save
from sideman.numerics.schedules import ema_decay, warmup_cosine

__all__ = ["TrainConfig", "EMA", "Trainer", "make_loader", "load_weights",
           "distributed_env", "init_distributed", "plot_history"]

LossFn = Callable[[nn.Module, Any], tuple[Tensor, dict]]


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping settings (defaults: the paper's AdamW recipe)."""

    out_dir: str
    total_steps: int
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    warmup_steps: int = 1000
    grad_clip: float = 1.0          # max global L2 norm; <= 0 disables clipping
    ema_decay: float = 0.9999
    log_every: int = 100
    ckpt_every: int = 1000
    seed: int = 0
    amp: bool = True                # bf16 autocast on CUDA
    cpu_bf16: bool = False          # bf16 autocast on CPU too (AMX / AVX512-BF16 CPUs)
    device: str | None = None       # default: cuda:LOCAL_RANK if available, else cpu
    resume: bool = True             # continue from out_dir/last.pt if present
    progress: bool = True


def distributed_env() -> tuple[int, int, int]:
    """``(rank, local_rank, world_size)`` from the torchrun environment."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)))


def init_distributed() -> tuple[int, int, int]:
    """Join the torchrun process group (NCCL on CUDA, else gloo) when ``WORLD_SIZE`` > 1;
    returns :func:`distributed_env`."""
    env = distributed_env()
    if env[2] > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        # Leave the group before the interpreter tears down: gloo's worker threads,
        # destroyed still joinable at exit, abort the process ("terminate called").
        atexit.register(_leave_process_group)
    return env


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class EMA(nn.Module):
    """Exponential moving average of a model's parameters (buffers are copied)."""

    def __init__(self, model: nn.Module, max_decay: float) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.max_decay = max_decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """``ema = d ema + (1 - d) param`` with ``d = ema_decay(step, max_decay)``."""
        d = ema_decay(step, self.max_decay)
        for e, p in zip(self.module.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(self.module.buffers(), model.buffers()):
            e.copy_(b)


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool = True,
                num_workers: int = 0, seed: int = 0, drop_last: bool = True,
                **kwargs) -> DataLoader:
    """DataLoader with a resumable order: a DistributedSampler under DDP, else a seeded
    generator (the trainer reseeds either at every epoch)."""
    if init_distributed()[2] > 1:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
        return DataLoader(dataset, batch_size, sampler=sampler, num_workers=num_workers,
                          drop_last=drop_last, **kwargs)
    return DataLoader(dataset, batch_size, shuffle=shuffle, num_workers=num_workers,
                      drop_last=drop_last, generator=torch.Generator().manual_seed(seed),
                      **kwargs)


def load_weights(module: nn.Module, path: str | os.PathLike, ema: bool = True) -> nn.Module:
    """Load a trainer checkpoint's EMA (or raw) weights into ``module``; returns it."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    key = "ema" if ema else "model"
    weights = state[key]
    if key == "ema":
        weights = {k.removeprefix("module."): v for k, v in weights.items()
                   if k.startswith("module.")}
    module.load_state_dict(weights)
    return module


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def plot_history(rows: list[dict], path: str | os.PathLike) -> None:
    """One panel per logged column against ``step`` (log y-axis for positive losses)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in rows[0] if k != "step"]
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.2 * len(keys)), sharex=True,
                             squeeze=False)
    steps = [r["step"] for r in rows]
    for ax, key in zip(axes[:, 0], keys):
        values = [float(r.get(key, "nan")) for r in rows]
        ax.plot(steps, values, lw=1)
        ax.set_ylabel(key)
        if "loss" in key and all(v > 0 for v in values if np.isfinite(v)):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    with atomic_writer(path, durable=False) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


class Trainer:
    """``Trainer(model, loss_fn, data, cfg).fit()`` trains ``model`` in place.

    Files in ``cfg.out_dir``: ``last.pt`` (checkpoint), ``log.csv`` (one row per
    ``log_every`` steps: step, lr, grad_norm and the loss_fn scalars), ``loss.png``.
    ``history`` holds the logged rows (rank 0 of a DDP run holds the reduced values).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Iterable,
                 cfg: TrainConfig) -> None:
        self.cfg, self.loss_fn, self.data = cfg, loss_fn, data
        self.rank, local_rank, self.world = init_distributed()
        if cfg.device is not None:
            self.device = torch.device(cfg.device)
        elif torch.cuda.is_available():
            self.device = torch.device("cuda", local_rank)
        else:
            self.device = torch.device("cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self._seed(cfg.seed + self.rank)
        self.model = model.to(self.device)
        self.ema = EMA(self.model, cfg.ema_decay)
        self.wrapped = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                           betas=cfg.betas, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_cosine(s, cfg.warmup_steps, cfg.total_steps))
        self.step = self.epoch = self.batch_in_epoch = 0
        self.history: list[dict] = []
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self._pending_rng: dict | None = None
        if cfg.resume and (self.out / "last.pt").exists():
            self.load(self.out / "last.pt")

    @staticmethod
    def _seed(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    # -- checkpoints -------------------------------------------------------------------
    def save(self, path: str | os.PathLike | None = None) -> None:
        """Write the full training state atomically (rank 0; RNG states of all ranks)."""
        rng = [_rng_state()]
        if self.world > 1:
            rng = [None] * self.world
            dist.all_gather_object(rng, _rng_state())
        if self.rank != 0:
            return
        atomic_torch_save({"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                     "optimizer": self.optimizer.state_dict(),
                     "scheduler": self.scheduler.state_dict(), "step": self.step,
                     "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                     "rng": rng, "config": asdict(self.cfg)}, path or self.out / "last.pt")

    def load(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint written by :meth:`save`; the RNG states are restored once
        the data iterator is back at the saved position (in :meth:`fit`)."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.batch_in_epoch = state["batch_in_epoch"]
        rng = state["rng"]
        self._pending_rng = rng[self.rank] if len(rng) == self.world else None
        if self._pending_rng is None:
            self._seed(self.cfg.seed + self.rank + self.step)
        self._load_log()

    # -- data --------------------------------------------------------------------------
    def _open_epoch(self):
        """Iterator over the current epoch, advanced to ``batch_in_epoch``."""
        sampler = getattr(self.data, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        if getattr(self.data, "generator", None) is not None:
            self.data.generator.manual_seed(self.cfg.seed + self.epoch)
        it = iter(self.data)
        for _ in range(self.batch_in_epoch):
            next(it)
        return it

    def _next_batch(self, it):
        try:
            batch = next(it)
        except StopIteration:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            it = self._open_epoch()
            batch = next(it)
        self.batch_in_epoch += 1
        return batch, it

    # -- optimisation ------------------------------------------------------------------
    def train_step(self, batch: Any) -> dict[str, Tensor]:
        """One update; returns the detached scalars of this step (lr, grad_norm, loss_fn's)."""
        if hasattr(self.loss_fn, "set_step"):
            self.loss_fn.set_step(self.step)
        batch = _to_device(batch, self.device)
        amp = (self.cfg.amp and self.device.type == "cuda") or (
            self.cfg.cpu_bf16 and self.device.type == "cpu")
        ctx = torch.autocast(self.device.type, dtype=torch.bfloat16) if amp else nullcontext()
        with ctx:
            loss, scalars = self.loss_fn(self.wrapped, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update(self.model, self.step)
        self.step += 1
        out = {"lr": torch.tensor(lr), "grad_norm": grad_norm.detach()}
        out.update({k: torch.as_tensor(v).detach().float() for k, v in scalars.items()})
        out.setdefault("loss", loss.detach().float())
        return out

    def fit(self, until: int | None = None) -> nn.Module:
        """Train up to ``min(until, total_steps)`` steps (``until`` simulates a stop);
        checkpoints every ``ckpt_every`` steps and at the end. Returns the model."""
        stop = min(until or self.cfg.total_steps, self.cfg.total_steps)
        it = self._open_epoch()
        if self._pending_rng is not None:
            _set_rng_state(self._pending_rng)
            self._pending_rng = None
        self.wrapped.train()
        bar = tqdm(total=self.cfg.total_steps, initial=self.step, dynamic_ncols=True,
                   disable=not self.cfg.progress or self.rank != 0)
        sums: dict[str, Tensor] = defaultdict(lambda: torch.zeros((), device=self.device))
        count = 0
        while self.step < stop:
            batch, it = self._next_batch(it)
            for k, v in self.train_step(batch).items():
                sums[k] = sums[k] + v.to(self.device)
            count += 1
            bar.update(1)
            if self.step % self.cfg.log_every == 0 or self.step == stop:
                row = self._log({k: v / count for k, v in sums.items()})
                bar.set_postfix(loss=f"{row['loss']:.4g}")
                sums.clear()
                count = 0
            if self.step % self.cfg.ckpt_every == 0 or self.step == stop:
                self.save()
                if self.rank == 0 and self.history:
                    plot_history(self.history, self.out / "loss.png")
        bar.close()
        if self.world > 1:
            dist.barrier()          # no rank leaves while another still writes
        return self.model

    # -- logging -----------------------------------------------------------------------
    def _log(self, means: dict[str, Tensor]) -> dict:
        keys = sorted(means)
        values = torch.stack([means[k].float() for k in keys])
        if self.world > 1:
            dist.all_reduce(values)
            values /= self.world
        row = {"step": self.step, **dict(zip(keys, values.tolist()))}
        if not np.isfinite(row["loss"]):
            raise FloatingPointError(f"non-finite loss at step {self.step}: {row['loss']}")
        self.history.append(row)
        if self.rank == 0:
            path = self.out / "log.csv"
            fields = ["step", "loss", *[k for k in keys if k != "loss"]]
            new = not path.exists()
            with open(path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields if new else self._csv_fields(),
                                        extrasaction="ignore", restval="")
                if new:
                    writer.writeheader()
                writer.writerow(row)
        return row

    def _csv_fields(self) -> list[str]:
        with open(self.out / "log.csv", newline="") as f:
            return next(csv.reader(f))

    def _load_log(self) -> None:
        """Reload ``log.csv`` into ``history``, dropping rows past the checkpoint."""
        path = self.out / "log.csv"
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
        self.history = [{k: (int(v) if k == "step" else float(v)) for k, v in r.items()
                         if v != ""} for r in rows]
        if self.rank == 0 and rows:
            with atomic_writer(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
