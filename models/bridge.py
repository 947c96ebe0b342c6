"""The CLAP bridge: a diffusion model over audio CLAP embeddings conditioned on text CLAP.

Paper, section 4.2 ("Bridging the Modality Gap"): text and audio CLAP embeddings lie on
disjoint parts of the sphere, so an MLP diffusion model learns to sample audio-derived
embeddings given a text-derived one: 1024 hidden units, eight residual dense blocks whose
adaptive layer norm takes the text embedding. Run without text it samples audio CLAP
embeddings unconditionally (CLAP_A* in the paper's Table 1).

Here:
- data: audio CLAP embeddings (B, 512) on the unit sphere, centred on the training mean
  and scaled so that their coordinates have RMS `sigma_data` (0.5, EDM's assumption);
- network: x -> Linear -> `blocks` x `DenseBlock` -> AdaLN -> Linear -> (B, 512). Each block
  is h + gate * MLP(LN(h) * (1 + scale) + shift) with (shift, scale, gate) a zero-initialised
  linear map of SiLU(c), c = noise-level embedding + text embedding (AdaLN-Zero, as DiT);
- EDM preconditioning, loss and Heun sampler from `sideman.models.edm`;
- condition dropout: a learned null vector replaces the text embedding for a fraction of
  training examples, so `sample(None, ...)` draws unconditional audio embeddings, and
  classifier-free guidance is available;
- samples are mapped back to CLAP units and re-normalised onto the unit sphere.

Identity at initialisation: every gate and the output layer start at zero, so each block
returns its input unchanged and the network output F is exactly 0. The preconditioned
denoiser is then D(x; sigma) = c_skip(sigma) x = sigma_d^2 / (sigma^2 + sigma_d^2) x (in
normalised units, for any text): it passes the noisy input through, shrunk by c_skip, which
is the exact posterior mean for data distributed N(0, sigma_d^2 I), i.e. for embeddings
distributed like the normalisation statistics say. Training starts from that estimate.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sideman.models.checkpoint_io import atomic_torch_save
from sideman.models.edm import EDMPrecond
from sideman.numerics.guidance import karras_levels
from sideman.numerics.sampler import heun


@dataclasses.dataclass
class BridgeConfig:
    """Sizes of the bridge MLP and its diffusion settings (noise levels in normalised units)."""

    dim: int = 512              # CLAP embedding size (text in, audio out)
    hidden: int = 1024          # width of the residual stream
    blocks: int = 8             # residual dense blocks
    mlp_ratio: int = 1          # hidden units of a block's MLP = mlp_ratio * hidden
    noise_features: int = 256   # sinusoidal features of c_noise = ln(sigma) / 4
    sigma_data: float = 0.5
    text_dropout: float = 0.1   # training fraction with the text replaced by the null vector
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    # The paper's bridge: 1024 hidden units, 8 residual dense blocks: 48.0 M parameters
    # (per block 2.1 M in the MLP and 3.1 M in the AdaLN modulation).
    "paper": BridgeConfig(),
    # 7.2 M parameters: trains in minutes on a CPU.
    "small": BridgeConfig(hidden=512, blocks=4),
    # The default bundle's bridge (keeps the bundle under 60 MB): 4.24 M parameters.
    "compact": BridgeConfig(hidden=384, blocks=4),
    # For tests: 0.18 M parameters.
    "tiny": BridgeConfig(hidden=64, blocks=2, noise_features=32, mlp_ratio=2),
}


class NoiseEmbedding(nn.Module):
    """c_noise (B,) -> (B, hidden): cos/sin of c_noise * f, f log-spaced over [1, 1000], then an MLP."""

    def __init__(self, features: int, hidden: int):
        super().__init__()
        half = features // 2
        self.register_buffer("freqs", torch.exp(-math.log(1000.0) * torch.arange(half) / half),
                             persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * half, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, c_noise: Tensor) -> Tensor:
        angle = c_noise.float()[:, None] * 1000.0 * self.freqs[None]
        return self.mlp(torch.cat([angle.cos(), angle.sin()], dim=-1))


class DenseBlock(nn.Module):
    """Residual dense block with AdaLN-Zero: (B, hidden), cond (B, hidden) -> (B, hidden).

    h + gate * MLP(LN(h) * (1 + scale) + shift); shift, scale and gate come from a
    zero-initialised linear map of SiLU(cond), so the block starts as the identity.
    """

    def __init__(self, hidden: int, mlp_ratio: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(hidden, mlp_ratio * hidden), nn.SiLU(),
                                 nn.Linear(mlp_ratio * hidden, hidden))
        self.modulation = nn.Linear(hidden, 3 * hidden)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: Tensor, cond: Tensor) -> Tensor:
        shift, scale, gate = self.modulation(F.silu(cond)).chunk(3, dim=-1)
        return h + gate * self.mlp(self.norm(h) * (1 + scale) + shift)


class BridgeMLP(nn.Module):
    """The bridge network F(x_in (B, dim), c_noise (B,), text (B, dim), keep (B,)) -> (B, dim).

    text: unit-norm text CLAP embeddings (scaled by sqrt(dim) inside so their coordinates
    are O(1)), or None for all-unconditional; keep: bool, False rows use the null vector.
    """

    def __init__(self, cfg: BridgeConfig):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(cfg.dim, cfg.hidden)
        self.noise = NoiseEmbedding(cfg.noise_features, cfg.hidden)
        self.null_text = nn.Parameter(torch.zeros(cfg.dim))
        self.text = nn.Sequential(nn.Linear(cfg.dim, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, cfg.hidden))
        self.blocks = nn.ModuleList(DenseBlock(cfg.hidden, cfg.mlp_ratio) for _ in range(cfg.blocks))
        self.final_norm = nn.LayerNorm(cfg.hidden, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Linear(cfg.hidden, 2 * cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.dim)
        for layer in (self.final_modulation, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def condition(self, batch: int, text: Tensor | None, keep: Tensor | None) -> Tensor:
        """(B, dim) text input after dropout: text where keep, the learned null vector elsewhere."""
        null = self.null_text.expand(batch, -1)
        if text is None:
            return null
        text = text * math.sqrt(self.cfg.dim)
        return text if keep is None else torch.where(keep[:, None], text, null)

    def forward(self, x: Tensor, c_noise: Tensor, text: Tensor | None = None,
                keep: Tensor | None = None) -> Tensor:
        cond = self.noise(c_noise) + self.text(self.condition(x.shape[0], text, keep))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, cond)
        shift, scale = self.final_modulation(F.silu(cond)).chunk(2, dim=-1)
        return self.out(self.final_norm(h) * (1 + scale) + shift)


class ClapBridge(nn.Module):
    """Text CLAP -> audio CLAP diffusion model: normalisation, EDM denoiser, sampler, files.

    `forward(x, sigma, text, keep)` is the EDM denoiser D in normalised units
    ((B, dim), (B,) -> (B, dim)); `normalise`/`denormalise` convert CLAP units;
    `sample` draws unit-norm audio CLAP embeddings.
    """

    def __init__(self, cfg: BridgeConfig):
        super().__init__()
        self.config = cfg
        self.denoiser = EDMPrecond(BridgeMLP(cfg), cfg.sigma_data)
        self.register_buffer("mean", torch.zeros(cfg.dim))
        self.register_buffer("std", torch.tensor(1.0 / math.sqrt(cfg.dim)))

    @torch.no_grad()
    def fit_normalisation(self, audio_emb: Tensor | np.ndarray) -> None:
        """Set the mean (dim,) and the RMS of the centred coordinates from (N, dim) embeddings."""
        x = torch.as_tensor(np.asarray(audio_emb), dtype=torch.float32)
        self.mean.copy_(x.mean(0))
        self.std.copy_((x - self.mean).pow(2).mean().sqrt().clamp(min=1e-6))

    def normalise(self, emb: Tensor) -> Tensor:
        """CLAP units (B, dim) -> diffusion units (coordinates of RMS ~sigma_data)."""
        return (emb - self.mean) * (self.config.sigma_data / self.std)

    def denormalise(self, x: Tensor) -> Tensor:
        """Diffusion units (B, dim) -> CLAP units (not yet re-normalised to the sphere)."""
        return x * (self.std / self.config.sigma_data) + self.mean

    def forward(self, x: Tensor, sigma: Tensor | float, text: Tensor | None = None,
                keep: Tensor | None = None) -> Tensor:
        """Denoised estimate (B, dim) of normalised x (B, dim) at noise level sigma (B,)."""
        return self.denoiser(x, sigma, text=text, keep=keep)

    @torch.no_grad()
    def sample(self, text_emb: Tensor | np.ndarray | None = None, n: int = 1, steps: int = 32,
               seed: int = 0, guidance: float = 1.0) -> np.ndarray:
        """Audio CLAP embeddings, unit norm, float32.

        text_emb: None (unconditional) -> (n, dim); one embedding (dim,) -> (n, dim);
        a batch (B, dim) -> (B, n, dim), n samples per text. `steps` Heun steps from
        sigma_max (2 * steps - 1 network calls); `guidance` w mixes D_uncond + w (D_cond -
        D_uncond) (1: plain conditional). Deterministic in `seed`.
        """
        cfg = self.config
        device = self.mean.device
        single = text_emb is None or np.ndim(text_emb) == 1
        text = None
        if text_emb is not None:
            text = torch.as_tensor(np.asarray(text_emb), dtype=torch.float32, device=device).reshape(-1, cfg.dim)
            text = F.normalize(text, dim=-1).repeat_interleave(n, dim=0)
        rows = n if text is None else text.shape[0]
        levels = karras_levels(steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)

        def denoise(x: np.ndarray, sigma: float) -> np.ndarray:
            x = torch.as_tensor(x, dtype=torch.float32, device=device)
            sigma = torch.full((rows,), float(sigma), device=device)
            if text is None:
                return self(x, sigma).cpu().numpy()
            cond = self(x, sigma, text)
            if guidance != 1.0:
                uncond = self(x, sigma)
                cond = uncond + guidance * (cond - uncond)
            return cond.cpu().numpy()

        was_training = self.training
        self.eval()
        try:  # the engine's draw and sampler (numerics.sampler.heun), so both give one answer per seed
            x = heun(denoise, levels[0] * np.random.default_rng(seed).standard_normal((rows, cfg.dim)), levels)
        finally:
            self.train(was_training)
        x = torch.as_tensor(x, dtype=torch.float32, device=device)
        emb = F.normalize(self.denormalise(x), dim=-1).cpu().numpy().astype(np.float32)
        return emb if single else emb.reshape(-1, n, cfg.dim)

    def save(self, path: str | os.PathLike, **meta) -> None:
        """Config, weights (normalisation included) and `meta` to one file, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"config": self.config.to_dict(), "state_dict": self.state_dict(), "meta": meta}, path)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str = "cpu") -> "ClapBridge":
        """A bridge saved by `save`, in eval mode; its `meta` dict is in `.meta`."""
        saved = torch.load(path, map_location=map_location, weights_only=True)
        model = cls(BridgeConfig(**saved["config"]))
        model.load_state_dict(saved["state_dict"])
        model.meta = saved.get("meta", {})
        return model.eval()
