"""MSD_musicnn's 200-d penultimate layer as an audio embedding, in torch, without TensorFlow.

musicnn (Jordi Pons and Xavier Serra, ISMIR 2019 late-breaking demo; ISC licence) is a
tagger whose front end has musically motivated filters: tall timbral ones (7 frames x 38 or
67 mel bands) and long temporal ones (128, 64, 32 frames x 1 band). MSD_musicnn was trained
on 3-s patches of the Million Song Dataset's 50 top tags. Its TensorFlow 1 checkpoint ships
inside the PyPI wheel ``musicnn==0.1.0`` (installed with ``--no-deps``: its code imports
TensorFlow, so we never import it; we only read the checkpoint files, with
:mod:`sideman.evaluation.tf_checkpoint`) and the network is rebuilt here layer by layer.
`scripts/musicnn_reference.py` checks it against musicnn's own TensorFlow graph.

The input pipeline is that of musicnn's extractor (``batch_data``), on arrays:

1. the clip (48 kHz, (S,) or (C, S)) is downmixed by the channel mean and resampled to 16 kHz
   with soxr at quality 'HQ', then cut or zero-padded to ceil(S / 3) samples: exactly what
   ``librosa.load(path, sr=16000)`` does to a float WAV (res_type 'soxr_hq', then fix_length);
2. mel power spectrogram by ``librosa.feature.melspectrogram`` (512-point FFT, hop 256, 96
   Slaney mel bands, centred frames; librosa >= 0.10 pads the signal's ends with zeros where
   older versions reflected it), rounded to float16 as musicnn does, then log10(10000 x + 1)
   in float32. Under numpy 1 (musicnn's era), ``10000 * float16_array`` was promoted to
   float32; numpy 2 (NEP 50) keeps it in float16, which overflows to inf above x = 6.55 and
   turns musicnn's output into NaN. Such mel powers are common in ordinary mixes, so we keep
   numpy 1's float32 arithmetic;
3. patches of 187 frames (3 s: ``time_to_frames(3) + 1``) back to back, without overlap; the
   frames after the last whole patch are dropped (a 10-s clip gives 3 patches and loses its
   last 1.0 s). A clip shorter than one patch, on which musicnn's extractor fails, has its
   log-mel repeated until it fills one, as the checkpoint's training config says
   ('pad_short': 'repeat-pad');
4. the embedding is the mean over patches of the 'penultimate' output (the batch-normalised
   ReLU output of the 200-unit dense layer). musicnn 0.1.0's extractor returns the first
   patch's penultimate for every patch (a bug reported upstream, jordipons/musicnn issues
   #2 and #20); we use each patch's own.

    emb = MusicnnEmbedder()
    e = emb.embed_audio(clips)          # N clips at 48 kHz -> (N, 200) float32
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from sideman.evaluation.tf_checkpoint import read_checkpoint
from sideman.models.clap import as_clips, downmix

SAMPLE_RATE = 48_000  # what callers give
MUSICNN_RATE = 16_000
N_FFT, HOP, N_MELS = 512, 256, 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default epsilon
MODEL = "MSD_musicnn"
INSTALL_HINT = "musicnn's checkpoint is not installed: pip install --no-deps musicnn==0.1.0"


# --------------------------------------------------------------------------- network
def same_padding(kernel: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding at stride 1: an even kernel's extra row goes after."""
    return (kernel - 1) // 2, kernel // 2


class FrontEndBranch(nn.Module):
    """One front-end filter shape: conv -> ReLU -> batch norm -> max over frequency.

    (B, 1, T, 96) -> (B, C, T). Time is padded 'same' (zeros), frequency is 'valid', so a
    timbral filter (7 x 38) leaves 59 bands to pool over and a temporal one (128 x 1) 96.
    (musicnn pads the timbral input by 3 frames and convolves 'valid', and the temporal
    ones 'same', whose frequency padding is nil for a 1-band kernel: both are this.)
    """

    def __init__(self, channels: int, kernel: tuple[int, int]):
        super().__init__()
        self.pad = same_padding(kernel[0])
        self.conv = nn.Conv2d(1, channels, kernel)
        self.bn = nn.BatchNorm2d(channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, *self.pad))
        return self.bn(F.relu(self.conv(x))).amax(dim=3)


class MidEndLayer(nn.Module):
    """conv over 7 frames across all features ('same' in time) -> ReLU -> batch norm.

    (B, C_in, T) -> (B, 64, T). musicnn writes it as a 2-D conv whose kernel spans the whole
    feature axis, which is a 1-D conv over time.
    """

    def __init__(self, in_channels: int, channels: int = 64):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, channels, 7, padding=3)
        self.bn = nn.BatchNorm1d(channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class Musicnn(nn.Module):
    """musicnn up to its penultimate layer: log-mel patches (B, T, 96) -> (B, 200).

    front end: 204 timbral 7x38 and 7x67 filters, 51 temporal 128x1, 64x1 and 32x1 filters,
    each max-pooled over frequency: 561 features per frame. Mid end: three 64-channel
    layers, the second and third residual; the front end and all three are concatenated
    (753 per frame). Back end: max and mean over time, batch norm, dense 200 + ReLU, batch
    norm = 'penultimate'. (The 50-tag output layer is not built.)
    """

    def __init__(self):
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=BN_EPS)
        self.frontend = nn.ModuleList([FrontEndBranch(204, (7, 38)), FrontEndBranch(204, (7, 67)),
                                       FrontEndBranch(51, (128, 1)), FrontEndBranch(51, (64, 1)),
                                       FrontEndBranch(51, (32, 1))])
        self.midend = nn.ModuleList([MidEndLayer(561), MidEndLayer(64), MidEndLayer(64)])
        self.pool_bn = nn.BatchNorm1d(2 * 753, eps=BN_EPS)
        self.dense = nn.Linear(2 * 753, 200)
        self.dense_bn = nn.BatchNorm1d(200, eps=BN_EPS)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = self.input_bn(logmel[:, None])                           # (B, 1, T, 96)
        h = torch.cat([branch(x) for branch in self.frontend], 1)    # (B, 561, T)
        features = [h]
        for i, layer in enumerate(self.midend):
            h = layer(h) if i == 0 else layer(h) + h
            features.append(h)
        features = torch.cat(features, 1)                            # (B, 753, T)
        # TF stacks [max, mean] on a last axis and flattens: max_0, mean_0, max_1, ...
        pooled = torch.stack([features.amax(2), features.mean(2)], 2).flatten(1)
        return self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))


# Our modules and the TF variable scopes that hold their weights. tf.compat.v1.layers names
# each layer after its kind and creation order (conv2d, conv2d_1, ...), and musicnn creates
# them in this order: input norm, front end (timbral 38, 67, temporal 128, 64, 32), mid end,
# back end. The checkpoint also holds Adam's slots and the tag layer (dense_1), unused here.
TF_SCOPES = {
    "input_bn": "batch_normalization",
    "frontend.0.conv": "conv2d", "frontend.0.bn": "batch_normalization_1",      # timbral 7 x 38
    "frontend.1.conv": "conv2d_1", "frontend.1.bn": "batch_normalization_2",    # timbral 7 x 67
    "frontend.2.conv": "conv2d_2", "frontend.2.bn": "batch_normalization_3",    # temporal 128 x 1
    "frontend.3.conv": "conv2d_3", "frontend.3.bn": "batch_normalization_4",    # temporal 64 x 1
    "frontend.4.conv": "conv2d_4", "frontend.4.bn": "batch_normalization_5",    # temporal 32 x 1
    "midend.0.conv": "conv2d_5", "midend.0.bn": "batch_normalization_6",
    "midend.1.conv": "conv2d_6", "midend.1.bn": "batch_normalization_7",
    "midend.2.conv": "conv2d_7", "midend.2.bn": "batch_normalization_8",
    "pool_bn": "batch_normalization_9",
    "dense": "dense", "dense_bn": "batch_normalization_10",
}


def load_tf_weights(model: Musicnn, tensors: dict[str, np.ndarray]) -> Musicnn:
    """Copy a musicnn checkpoint's tensors into `model`, converting TF's layouts:
    conv kernels (kh, kw, in, out) -> (out, in, kh, kw), dense kernels (in, out) -> (out, in)."""
    def get(name):
        if name not in tensors:
            raise KeyError(f"the checkpoint has no variable {name!r}: is it MSD_musicnn?")
        return torch.from_numpy(np.array(tensors[name], dtype=np.float32))

    state = {}
    for ours, scope in TF_SCOPES.items():
        module = model.get_submodule(ours)
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            for p, tf_name in (("weight", "gamma"), ("bias", "beta"),
                               ("running_mean", "moving_mean"), ("running_var", "moving_variance")):
                state[f"{ours}.{p}"] = get(f"{scope}/{tf_name}")
            continue
        kernel = get(f"{scope}/kernel")
        if isinstance(module, nn.Conv2d):
            kernel = kernel.permute(3, 2, 0, 1)
        elif isinstance(module, nn.Conv1d):  # (7, C, 1, 64): the conv spans the feature axis
            kernel = kernel[:, :, 0, :].permute(2, 1, 0)
        else:
            kernel = kernel.T
        state[f"{ours}.weight"] = kernel
        state[f"{ours}.bias"] = get(f"{scope}/bias")
    own = model.state_dict()
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise ValueError(f"{k}: checkpoint shape {tuple(v.shape)}, model shape {tuple(own[k].shape)}")
    missing = model.load_state_dict(state, strict=False).missing_keys
    if any(not k.endswith("num_batches_tracked") for k in missing):  # that counter is training-only
        raise KeyError(f"no checkpoint weights for {missing}")
    return model


# --------------------------------------------------------------------------- input pipeline
def checkpoint_prefix(model: str = MODEL) -> str:
    """The installed wheel's checkpoint prefix ('.../musicnn/MSD_musicnn/', files .index and
    .data-00000-of-00001), found without importing musicnn (which imports TensorFlow)."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(INSTALL_HINT)
    folder = Path(spec.submodule_search_locations[0]) / model
    if not (folder / ".index").is_file():
        raise FileNotFoundError(f"{folder}/.index is missing: reinstall musicnn==0.1.0 (--no-deps)")
    return f"{folder}/"


def checkpoint_sha256(prefix: str) -> str:
    """SHA-256 over the checkpoint's .index then .data-00000-of-00001 file."""
    h = hashlib.sha256()
    for suffix in (".index", ".data-00000-of-00001"):
        h.update(Path(prefix + suffix).read_bytes())
    return h.hexdigest()


def resample_16k(mono: np.ndarray) -> np.ndarray:
    """(S,) float32 at 48 kHz -> (ceil(S / 3),) float32 at 16 kHz, as librosa.load does."""
    import soxr

    y = soxr.resample(mono, SAMPLE_RATE, MUSICNN_RATE, quality="soxr_hq")
    n = -(-len(mono) * MUSICNN_RATE // SAMPLE_RATE)
    return np.pad(y[:n], (0, max(0, n - len(y)))).astype(np.float32)


def log_mel(y: np.ndarray) -> np.ndarray:
    """(S,) float32 at 16 kHz -> (1 + S // 256, 96) float32: log10(10000 x + 1) of the mel
    power rounded to float16 (musicnn's rounding), computed in float32 (numpy 1's promotion)."""
    import librosa

    mel = librosa.feature.melspectrogram(y=y, sr=MUSICNN_RATE, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS).T
    return np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)


def patches(logmel: np.ndarray) -> np.ndarray:
    """(T, 96) -> (P, 187, 96): whole patches back to back, P = T // 187 (the rest dropped);
    a log-mel shorter than one patch is repeated to fill one (P = 1)."""
    if len(logmel) == 0:
        raise ValueError("cannot embed an empty clip")
    if len(logmel) < PATCH_FRAMES:
        logmel = np.tile(logmel, (-(-PATCH_FRAMES // len(logmel)), 1))
    n = len(logmel) // PATCH_FRAMES
    return np.ascontiguousarray(logmel[:n * PATCH_FRAMES].reshape(n, PATCH_FRAMES, N_MELS))


# --------------------------------------------------------------------------- embedder
class MusicnnEmbedder:
    """Clips at 48 kHz -> MSD_musicnn's penultimate layer averaged over 3-s patches, (N, 200).

    Runs on the CPU (or `device`), in eval mode without gradients; sets no global torch
    state. `batch_size` is the number of 3-s patches per forward pass (~25 MB of activations
    each) and the default number of clips `embed_audio` prepares at a time.
    """

    sample_rate = SAMPLE_RATE
    dim = 200

    def __init__(self, batch_size: int = 16, device: str = "cpu", checkpoint: str | Path | None = None):
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.batch_size = batch_size
        self.device = torch.device(device)
        if checkpoint is not None and Path(checkpoint).is_dir():
            checkpoint = f"{checkpoint}/"  # the folder holds .index and .data-...: an empty name
        self.checkpoint = str(checkpoint) if checkpoint else checkpoint_prefix()
        self.checkpoint_sha256 = checkpoint_sha256(self.checkpoint)
        model = load_tf_weights(Musicnn(), read_checkpoint(self.checkpoint))
        self.model = model.to(self.device).eval().requires_grad_(False)

    @property
    def model_id(self) -> str:
        """Names the model and its weights: equal ids give equal embeddings."""
        return f"musicnn:{MODEL}:penultimate:{self.checkpoint_sha256[:16]}"

    @property
    def identity(self) -> str:
        """Everything that decides an embedding besides its input (a cache key's prefix)."""
        return (f"{self.model_id}|sr={SAMPLE_RATE}->{MUSICNN_RATE}:soxr_hq|mel={N_FFT}/{HOP}/{N_MELS}:f16"
                f"|patch={PATCH_FRAMES}:mean|short=repeat")

    def prepare(self, clip) -> np.ndarray:
        """One clip, (S,) or (C, S) at 48 kHz, as the mono (S,) float32 the pipeline reads."""
        mono = downmix(clip)
        if len(mono) == 0:
            raise ValueError("cannot embed an empty clip")
        return mono

    def logmel_patches(self, clip) -> np.ndarray:
        """One clip, (S,) or (C, S) at 48 kHz -> its log-mel patches (P, 187, 96) float32."""
        return patches(log_mel(resample_16k(self.prepare(clip))))

    def penultimate(self, logmel_patches) -> np.ndarray:
        """Log-mel patches (P, T, 96) (T = 187 as trained) -> penultimate outputs (P, 200) float32."""
        x = torch.as_tensor(np.asarray(logmel_patches, dtype=np.float32))
        if x.ndim != 3 or x.shape[2] != N_MELS:
            raise ValueError(f"log-mel patches are (P, T, {N_MELS}); got {tuple(x.shape)}")
        out = [torch.zeros(0, self.dim)]
        with torch.inference_mode():
            for i in range(0, len(x), self.batch_size):
                out.append(self.model(x[i:i + self.batch_size].to(self.device)).float().cpu())
        return torch.cat(out).numpy()

    def embed_audio(self, audio, batch_size: int | None = None) -> np.ndarray:
        """Audio (N, C, S), (N, S) or N clips of any lengths at 48 kHz -> (N, 200) float32:
        each clip's patches' penultimate outputs, averaged."""
        clips = as_clips(audio)
        step = batch_size or self.batch_size
        out = np.zeros((len(clips), self.dim), np.float32)
        for i in range(0, len(clips), step):  # `step` clips at a time bounds the memory
            group = [self.logmel_patches(clips[j]) for j in range(i, min(i + step, len(clips)))]
            emb = self.penultimate(np.concatenate(group))
            start = 0
            for k, p in enumerate(group):
                out[i + k] = emb[start:start + len(p)].mean(axis=0)
                start += len(p)
        return out
