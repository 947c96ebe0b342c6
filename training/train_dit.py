"""Training the DiT as the paper does: EDM first, then consistency training from the EDM
weights (C-DiT), both on stored latent pairs (training.dit_data) with the shared trainer.

    train_dit(pairs, out, kind="edm")                         -> out/dit_edm.pt
    train_dit(pairs, out, kind="consistency", init=EDM_FILE)  -> out/dit_consistency.pt

Training runs in chunks of ``val_every`` steps. After each chunk, given validation pairs, the
EMA model's held-out EDM loss is appended to ``out/<kind>/val.csv`` (with the process CPU
hours spent training so far) and drawn in ``val.png``; ``budget.json`` keeps the CPU time
across resumes, and ``cpu_minutes`` stops a run once it has used that much. Files are
written by models.dit_checkpoint.save_dit (EMA weights, latent scale included).
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from sideman.data.files import atomic_write
from sideman.models.consistency import ConsistencyLoss, ConsistencyPrecond, DiTConsistencyObjective
from sideman.models.dit import PRESETS, DiT
from sideman.models.dit_checkpoint import load_dit, save_dit
from sideman.models.edm import DiTEDMObjective, EDMPrecond
from sideman.training.dit_data import LatentPairs
from sideman.training.dit_validation import edm_validation_loss
from sideman.training.stages import DiTStage
from sideman.training.trainer import TrainConfig, Trainer, make_loader


def _model(kind: str, stage: DiTStage, channels: int, init) -> tuple:
    """(model, objective) for `kind`."""
    steps = stage.edm_steps if kind == "edm" else stage.consistency_steps
    if kind == "edm":
        net = DiT(replace(PRESETS[stage.preset], latent_channels=channels))
        return EDMPrecond(net), DiTEDMObjective()
    if kind == "consistency":
        if init is None:
            raise ValueError("consistency training starts from an EDM model: pass init=EDM_FILE")
        edm = load_dit(init)
        if not isinstance(edm, EDMPrecond):
            raise ValueError(f"{init} is not an EDM model")
        return ConsistencyPrecond.from_edm(edm), DiTConsistencyObjective(ConsistencyLoss(total_steps=steps))
    raise ValueError(f"kind must be 'edm' or 'consistency', not '{kind}'")


class _Ledger:
    """val.csv rows and the CPU seconds spent training, both cut back to a resumed step."""

    def __init__(self, folder: Path, step: int) -> None:
        self.val_path, self.budget_path = folder / "val.csv", folder / "budget.json"
        self.rows: list[dict] = []
        if self.val_path.exists():
            with open(self.val_path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        self.cpu_s = 0.0
        if self.budget_path.exists():
            saved = json.loads(self.budget_path.read_text())
            if saved["step"] == step:
                self.cpu_s = float(saved["cpu_s"])
            elif self.rows:  # budget.json is not at the checkpoint's step: the last val row,
                last = self.rows[-1]  # plus its pace for any steps checkpointed after it
                row_step, row_s = int(last["step"]), float(last["cpu_hours"]) * 3600
                self.cpu_s = row_s + (step - row_step) * row_s / max(row_step, 1)

    def behind(self, step: int) -> bool:
        """True when the checkpoint at `step` was written after the last held-out row (the
        run stopped between a checkpoint and its validation)."""
        return step > 0 and (not self.rows or int(self.rows[-1]["step"]) < step)

    def record(self, step: int, cpu_s: float, val: dict | None) -> None:
        self.cpu_s += cpu_s
        atomic_write(self.budget_path, json.dumps({"step": step, "cpu_s": self.cpu_s}))
        if val is None:
            return
        row = {"step": step, "cpu_hours": f"{self.cpu_s / 3600:.5f}", "loss": f"{val['loss']:.6f}",
               "sem": f"{val['sem']:.6f}"}
        row.update({f"loss_sigma_{k}": f"{v:.6f}" for k, v in val["by_sigma"].items()})
        self.rows.append(row)
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        lines = [",".join(columns)] + [",".join(str(r.get(c, "")) for c in columns) for r in self.rows]
        atomic_write(self.val_path, "\n".join(lines) + "\n")
        plot_validation(self.rows, self.val_path.with_suffix(".png"))


def plot_validation(rows: list[dict], path: str | os.PathLike) -> None:
    """Held-out EDM loss against steps and against CPU hours (log y)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sideman.data.files import atomic_writer

    loss = [float(r["loss"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, key, label in ((axes[0], "step", "step"), (axes[1], "cpu_hours", "CPU hours")):
        ax.plot([float(r[key]) for r in rows], loss, marker=".", lw=1)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out EDM loss")
    axes[0].set_yscale("log")
    fig.tight_layout()
    with atomic_writer(path, durable=False) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def train_dit(pairs_dir: str | os.PathLike, out_dir: str | os.PathLike, kind: str = "edm",
              stage: DiTStage = DiTStage(), *, init: str | os.PathLike | None = None, seed: int = 0,
              val_pairs: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Train and write the DiT file with the settings of `stage` (its edm_* or
    consistency_* steps and learning rate, by `kind`); resumes from out_dir/<kind>/last.pt.
    `val_pairs` (EDM only): held-out pairs whose loss is logged every stage.val_every steps."""
    data = LatentPairs(pairs_dir)
    torch.manual_seed(seed)  # the initial weights are the seed's, whatever ran before
    model, objective = _model(kind, stage, data.channels, init)
    val = None
    if val_pairs is not None and kind == "edm":
        val = LatentPairs(val_pairs)
        if val.channels != data.channels:
            raise ValueError(f"{val_pairs} holds {val.channels}-channel latents; {pairs_dir} holds {data.channels}")
    steps = stage.edm_steps if kind == "edm" else stage.consistency_steps
    lr = stage.edm_lr if kind == "edm" else stage.consistency_lr
    out = Path(out_dir)
    cfg = TrainConfig(out_dir=str(out / kind), total_steps=steps, lr=lr, warmup_steps=stage.warmup,
                      ema_decay=stage.ema_decay, log_every=stage.log_every, ckpt_every=stage.ckpt_every,
                      seed=seed, progress=progress, cpu_bf16=stage.bf16)
    loader = make_loader(data, min(stage.batch_size, len(data)), seed=seed)
    trainer = Trainer(model.train(), objective, loader, cfg)
    ledger = _Ledger(trainer.out, trainer.step)
    budget_s = stage.cpu_minutes * 60 if stage.cpu_minutes > 0 else math.inf
    chunk = max(1, stage.val_every)
    if val is not None and (trainer.step % chunk == 0 or trainer.step == steps) and ledger.behind(trainer.step):
        ledger.record(trainer.step, 0.0, edm_validation_loss(trainer.ema.module, val, repeats=1, seed=seed))
    while trainer.step < steps and ledger.cpu_s < budget_s:
        t0 = time.process_time()
        trainer.fit(until=min(steps, (trainer.step // chunk + 1) * chunk))
        spent = time.process_time() - t0
        result = edm_validation_loss(trainer.ema.module, val, repeats=1, seed=seed) if val is not None else None
        ledger.record(trainer.step, spent, result)
    return save_dit(trainer.ema.module.eval(), out / f"dit_{kind}.pt", data.latent_scale)
