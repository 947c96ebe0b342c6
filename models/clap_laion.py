"""LAION-CLAP (music checkpoint) behind Sideman's `ClapEmbedder` interface.

The model is laion-clap 1.1.7's `CLAP_Module(enable_fusion=False, amodel="HTSAT-base")`
with the music checkpoint `music_audioset_epoch_15_esc_90.14.pt`: 48 kHz mono in,
512-d out. This module never imports `laion_clap` at import time; only
`LaionClapEmbedder.from_checkpoint` does, so everything else runs without it.

What our code does around the model: downmix, deterministic crop or pad to exactly 10 s
(480,000 samples; laion-clap itself would crop a longer clip at a random offset, and it
quantises numpy input to 16 bits on its own), batching, and a final L2 normalisation.
A batch of one text is sent as two copies (laion-clap's tokenizer squeezes the batch
axis of a single text, issue LAION-AI/CLAP#85). We load the checkpoint ourselves
(`laion_state_dict`): with `weights_only=True` unless told to trust the file, without the
DDP 'module.' prefix, and without `text_branch.embeddings.position_ids`, a buffer that
transformers >= 4.31 no longer keeps in the state (issue LAION-AI/CLAP#127).

One-time set-up (needs the network once; afterwards everything runs offline)
---------------------------------------------------------------------------
1. laion-clap pins numpy<2 and pulls librosa, torchlibrosa, transformers, wandb and more,
   so give it its own virtual environment rather than the project's main one::

       python -m venv .venv-clap && . .venv-clap/bin/activate
       pip install torch==2.13.0 -e ".[clap]"       # the extra is laion-clap==1.1.7

2. Download the checkpoint once (from the laion-clap release, Hugging Face repository
   ``lukewys/laion_clap``) and keep its path, e.g.
   ``~/models/music_audioset_epoch_15_esc_90.14.pt``. If torch's safe loader refuses
   the file, pass ``trust_checkpoint=True`` (only for the official file).

3. Importing laion_clap parses ``sys.argv`` and loads the RoBERTa tokenizer, and building
   the model loads ``roberta-base`` (config and weights) through transformers, all from
   the Hugging Face cache. Fill the cache once, with the network, by building the model::

       HF_HUB_OFFLINE=0 python -c "from sideman.models.clap_laion import LaionClapEmbedder as L; \
           L.from_checkpoint('~/models/music_audioset_epoch_15_esc_90.14.pt')"

   Later runs need no network: `from_checkpoint` sets ``HF_HUB_OFFLINE=1`` and
   ``TRANSFORMERS_OFFLINE=1`` unless they are already set, and fails fast if the cache
   (``$HF_HOME``, default ``~/.cache/huggingface``) lacks something.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

import numpy as np
import torch

from sideman.models.clap import ClapEmbedder

CHECKPOINT_NAME = "music_audioset_epoch_15_esc_90.14.pt"
STALE_KEYS = ("text_branch.embeddings.position_ids",)


def laion_state_dict(path: str | os.PathLike, trust_checkpoint: bool = False,
                     expected: set[str] | frozenset[str] = frozenset()) -> dict[str, torch.Tensor]:
    """The CLAP model's weights from a laion-clap training checkpoint.

    Unwraps {'state_dict': ...}, strips the DDP 'module.' prefix and drops the stale
    buffers (STALE_KEYS) unless the model's state has them (`expected`: its key names;
    transformers < 4.31 still keeps position_ids). `trust_checkpoint=True` allows full
    unpickling (only for a file from a trusted source).
    """
    ckpt = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=not trust_checkpoint)
    state = ckpt["state_dict"] if isinstance(ckpt, dict) and "state_dict" in ckpt else ckpt
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    return {k: v for k, v in state.items() if k not in STALE_KEYS or k in expected}


@contextlib.contextmanager
def _bare_argv():
    """laion_clap parses sys.argv at import; give it none of ours."""
    saved = sys.argv
    sys.argv = saved[:1] or ["sideman"]
    try:
        yield
    finally:
        sys.argv = saved


class LaionClapEmbedder(ClapEmbedder):
    """`ClapEmbedder` over a laion-clap `CLAP_Module` (or any object with its two methods).

    model: has `get_audio_embedding_from_data(x: (B, 480000) float32, use_tensor=False)`
    and `get_text_embedding(texts: list[str])`, each returning (B, 512).
    """

    def __init__(self, model, model_id: str = f"laion:{CHECKPOINT_NAME}", **kw):
        kw.setdefault("clip_seconds", 10.0)
        super().__init__(**kw)
        self.model = model
        self._model_id = model_id

    @property
    def model_id(self) -> str:
        return self._model_id

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, device: str = "cpu",
                        trust_checkpoint: bool = False, **kw) -> "LaionClapEmbedder":
        """Build the HTSAT-base CLAP and load `checkpoint` (see the module docstring's set-up)."""
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no laion-clap checkpoint at {path}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            with _bare_argv():
                import laion_clap
        except ImportError as e:
            raise ImportError("laion-clap is not installed: pip install 'sideman[clap]' in its own "
                              "environment (it pins numpy<2); see sideman.models.clap_laion") from e
        with contextlib.redirect_stdout(io.StringIO()):
            module = laion_clap.CLAP_Module(enable_fusion=False, amodel="HTSAT-base", device=device)
        state = laion_state_dict(path, trust_checkpoint, expected=set(module.model.state_dict()))
        module.model.load_state_dict(state, strict=True)
        module.eval()
        model_id = f"laion:{path.name}:{path.stat().st_size}"
        return cls(module, model_id=model_id, **kw)

    @torch.no_grad()
    def _audio_batch(self, x: np.ndarray):
        emb = self.model.get_audio_embedding_from_data(x, use_tensor=False)
        return _numpy(emb)

    @torch.no_grad()
    def _text_batch(self, texts: list[str]):
        if len(texts) == 1:
            return _numpy(self.model.get_text_embedding(texts * 2))[:1]
        return _numpy(self.model.get_text_embedding(texts))


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
