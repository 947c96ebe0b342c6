"""House CLAP training: windows, captions, cached log-mels, and a tiny end-to-end run with resume."""
import hashlib
import json

import numpy as np
import pytest
import torch

from audio_fixtures import write
from sideman.data.layouts import read_multitrack
from sideman.data.pairs import song_split
from sideman.models.clap_house import PRESETS, HouseClap, LogMel
from sideman.training.stages import ClapStage
from sideman.training.train_clap import (ClapWindows, LogMelStore, caption_variants, prepare_stems,
                                         sounding_block_starts, train_house_clap)

torch.set_num_threads(1)
SR = 48_000
TINY = PRESETS["tiny"]

# Four timbres with corpus instrument names (so tags parse like the corpus's).
STEMS = {
    "bass": ["synth bass", "bass", "low", "sustained"],
    "drums": ["808 drum machine", "drums", "electronic", "four on the floor"],
    "lead": ["flute", "woodwind", "high", "airy", "legato melody"],
    "pads": ["warm pad", "synth pad", "ambient", "long chords"],
}


def stem_audio(kind: str, seconds: float, seed: int) -> np.ndarray:
    """(frames, 2) float32 of a recognisable synthetic timbre."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    if kind == "bass":
        x = np.sin(2 * np.pi * rng.uniform(55, 90) * t)
    elif kind == "drums":
        x = rng.standard_normal(len(t)) * np.exp(-((t * 4) % 1.0) * 30)
    elif kind == "lead":
        x = np.sin(2 * np.pi * rng.uniform(1500, 2500) * t)
    else:
        x = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(300, 600, 3)) / 3
    return np.repeat((0.3 * x)[:, None], 2, axis=1).astype(np.float32)


def song_names(count_train: int, count_val: int, fraction: float = 0.5) -> list[str]:
    """Song ids that `song_split(., fraction)` puts count_train in train, count_val in validation."""
    train, val, i = [], [], 0
    while len(train) < count_train or len(val) < count_val:
        name = f"song_{i:03d}"
        (val if song_split(name, fraction) == "validation" else train).append(name)
        i += 1
    return train[:count_train] + val[:count_val]


def make_folder_corpus(root, train: int = 3, val: int = 2, seconds: float = 4.0):
    """A folder-layout data set: songs of four stems with tags.json; returns root."""
    for s, name in enumerate(song_names(train, val)):
        tags = {}
        for k, (stem, stem_tags) in enumerate(STEMS.items()):
            audio = stem_audio(stem, seconds, seed=100 * s + k)
            if stem == "lead":
                audio[: int(1.5 * SR)] = 0.0       # a silent start: windows must avoid it
            write(root / name / f"{stem}.wav", audio)
            tags[f"{stem}.wav"] = stem_tags
        (root / name / "tags.json").write_text(json.dumps(tags))
    return root


class HashText:
    """Stands in for MiniLM: a fixed random unit vector per string."""

    def encode(self, texts):
        rows = [torch.randn(384, generator=torch.Generator().manual_seed(
            int.from_bytes(hashlib.sha256(t.encode()).digest()[:6], "little"))) for t in texts]
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1) if rows else torch.zeros(0, 384)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_folder_corpus(tmp_path_factory.mktemp("folder"))


def test_caption_variants_are_deterministic_and_keep_the_instrument_first():
    tags = STEMS["lead"]
    v = caption_variants(tags, 6, seed=3)
    assert v == caption_variants(tags, 6, seed=3) and v[0] == ", ".join(tags)
    assert all(c.startswith("flute") for c in v) and len(set(v)) > 2
    assert all(set(c.split(", ")) <= set(tags) for c in v)
    assert caption_variants(tags, 6, seed=4) != v


def test_sounding_windows_avoid_silence(corpus):
    data = read_multitrack(corpus)
    song = data.songs[0]
    lead = next(s for s in song.stems if s.name == "lead")
    starts = sounding_block_starts(lead, song.frames, SR)
    window_end = starts * 4096 + 12 * 4096                 # 12 blocks of 4096 ~ the 1-s clip
    assert len(starts) > 0 and (window_end - 1.5 * SR).min() >= 0.2 * SR   # >= ~25 % of it sounds
    assert (starts * 4096 + SR <= song.frames).all()
    assert len(sounding_block_starts(lead, song.frames, 10 * SR)) == 0       # longer than the song


def test_cached_logmel_slices_match_the_window_features(corpus, tmp_path):
    data = read_multitrack(corpus)
    stem = data.songs[0].stems[0]
    store = LogMelStore(TINY, tmp_path)
    mel = store.get(stem.path)
    assert mel.dtype == np.float16 and len(list(tmp_path.glob("*.npy"))) == 1
    assert np.array_equal(store.get(stem.path), mel)
    wave = torch.from_numpy(stem_audio("bass", 4.0, seed=0).mean(1))
    start = 20 * TINY.hop
    frames = SR // TINY.hop + 1
    direct = LogMel(TINY)(wave[None, start:start + SR])[0].numpy()
    whole = LogMel(TINY)(wave[None])[0].numpy()[20:20 + frames]
    np.testing.assert_allclose(whole[2:-2], direct[2:-2], atol=1e-4)   # interior frames agree


def test_windows_dataset_items_and_groups(corpus, tmp_path):
    data = read_multitrack(corpus)
    stems, captions = prepare_stems(data.songs, TINY, LogMelStore(TINY, tmp_path), 3, 0, progress=False)
    assert len(stems) == 4 * len(data.songs)
    sentences = HashText().encode(captions)
    ds = ClapWindows(stems, sentences, TINY, windows_per_stem=2)
    assert len(ds) == 2 * len(stems)
    item = ds[1]
    assert item["mel"].shape == (SR // TINY.hop + 1, TINY.n_mels) and item["sentence"].shape == (384,)
    assert ds.groups[1] == ds.groups[1 + 4]          # same tags in every song: one group
    assert len(set(ds.groups)) == 4


def test_train_house_clap_end_to_end_and_exact_resume(corpus, tmp_path):
    common = dict(stage=ClapStage(preset="tiny", steps=4, batch_size=8, warmup=2, log_every=1, ckpt_every=2,
                                  validation_fraction=0.5),
                  cache_dir=tmp_path / "cache", text_encoder=HashText(), progress=False)
    path = train_house_clap(corpus, tmp_path / "full", **common)
    model = HouseClap.load(path)
    assert model.config == TINY
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
    assert 0.0 <= summary["validation"]["R@1"] <= 1.0
    for name in ("last.pt", "log.csv", "loss.png"):
        assert (tmp_path / "full" / name).is_file()
    with torch.no_grad():
        emb = model.encode_audio(torch.from_numpy(stem_audio("lead", 1.0, 1).mean(1))[None])
    assert emb.shape == (1, 512) and torch.allclose(emb.norm(dim=-1), torch.ones(1))

    train_house_clap(corpus, tmp_path / "split", until=2, **common)
    assert json.loads((tmp_path / "split" / "summary.json").read_text())["steps"] == 2
    resumed = HouseClap.load(train_house_clap(corpus, tmp_path / "split", **common))
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
