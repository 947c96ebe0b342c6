"""Training the DiT as the paper does: EDM first, then consistency training from the EDM
weights (C-DiT), both on stored latent pairs (training.dit_data) with the shared trainer.

    train_dit(pairs, out, kind="edm")                         -> out/dit_edm.pt
    train_dit(pairs, out, kind="consistency", init=EDM_FILE)  -> out/dit_consistency.pt

Files are written by models.dit_checkpoint.save_dit (EMA weights, latent scale included).
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from sideman.models.consistency import ConsistencyLoss, ConsistencyPrecond, DiTConsistencyObjective
from sideman.models.dit import PRESETS, DiT
from sideman.models.dit_checkpoint import load_dit, save_dit
from sideman.models.edm import DiTEDMObjective, EDMPrecond
from sideman.training.dit_data import LatentPairs
from sideman.training.stages import DiTStage
from sideman.training.trainer import TrainConfig, Trainer, make_loader


def train_dit(pairs_dir: str | os.PathLike, out_dir: str | os.PathLike, kind: str = "edm",
              stage: DiTStage = DiTStage(), *, init: str | os.PathLike | None = None, seed: int = 0,
              progress: bool = True) -> Path:
    """Train and write the DiT file with the settings of `stage` (its edm_* or
    consistency_* steps and learning rate, by `kind`); resumes from out_dir/<kind>/last.pt."""
    data = LatentPairs(pairs_dir)
    steps = stage.edm_steps if kind == "edm" else stage.consistency_steps
    lr = stage.edm_lr if kind == "edm" else stage.consistency_lr
    if kind == "edm":
        model = EDMPrecond(DiT(replace(PRESETS[stage.preset], latent_channels=data.channels)))
        objective = DiTEDMObjective()
    elif kind == "consistency":
        if init is None:
            raise ValueError("consistency training starts from an EDM model: pass init=EDM_FILE")
        edm = load_dit(init)
        if not isinstance(edm, EDMPrecond):
            raise ValueError(f"{init} is not an EDM model")
        model = ConsistencyPrecond.from_edm(edm)
        objective = DiTConsistencyObjective(ConsistencyLoss(total_steps=steps))
    else:
        raise ValueError(f"kind must be 'edm' or 'consistency', not '{kind}'")
    out = Path(out_dir)
    cfg = TrainConfig(out_dir=str(out / kind), total_steps=steps, lr=lr, warmup_steps=stage.warmup,
                      ema_decay=stage.ema_decay, log_every=stage.log_every, ckpt_every=stage.ckpt_every,
                      seed=seed, progress=progress)
    loader = make_loader(data, min(stage.batch_size, len(data)), seed=seed)
    trainer = Trainer(model.train(), objective, loader, cfg)
    trainer.fit()
    return save_dit(trainer.ema.module.eval(), out / f"dit_{kind}.pt", data.latent_scale)
