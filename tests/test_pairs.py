"""The training-pair sampler's rules (paper section 4.1/4.3) on a small folder data set."""
import numpy as np
import pytest
import torch

from audio_fixtures import tone, write
from sideman.data.audio import load_audio, rms_db
from sideman.data.layouts import read_multitrack
from sideman.data.pairs import PairConfig, PairSampler, song_split, sounding_starts
from sideman.data.torch_dataset import PairDataset, pair_loader

CFG = PairConfig(seconds=2.0, clap_seconds=1.0, validation_fraction=0.3, seed=11)
N_SONGS = 10


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("songs")
    rng = np.random.default_rng(0)
    for i in range(N_SONGS):
        song = root / f"song{i:02d}"
        write(song / "vocals.wav", tone(300 + i, 6.0))
        write(song / "bass.wav", tone(55 + i, 6.0))
        # keys are silent for the first 3 seconds: no target window may start there
        write(song / "keys.wav", tone(440 + i, 6.0, silent_from=0.0, silent_to=3.0))
        write(song / "drums.wav", (0.1 * rng.standard_normal((6 * 48000, 2))).astype(np.float32))
    return read_multitrack(root, layout="folder")


@pytest.fixture(scope="module")
def sampler(data):
    return PairSampler(data, CFG, split="all")


def test_shapes_and_caption(sampler):
    pair = sampler.sample(0)
    assert pair.target.shape == pair.context.shape == (2, 2 * 48000 // 4096 * 4096)
    assert pair.clap_audio.shape == (2, round(48000 / 4096) * 4096)
    assert pair.caption == ", ".join(pair.tags) and pair.target_start % 4096 == 0


def test_rules_hold_for_many_pairs(sampler, data):
    stems = {(s.song_id, st.name): st for s in data.songs for st in s.stems}
    window, clap_len = CFG.window_blocks * 4096, CFG.clap_blocks * 4096
    targets = set()
    for i in range(200):
        pair = sampler.sample(i)
        targets.add(pair.target_stem)
        assert pair.target_stem != "vocals"
        assert pair.context_stems and pair.target_stem not in pair.context_stems
        t0, c0 = pair.target_start, pair.clap_start
        assert c0 + clap_len <= t0 or c0 >= t0 + window, "CLAP segment overlaps the target window"
        assert rms_db(pair.target) > CFG.silence_db
        if pair.target_stem == "keys":
            assert t0 + window > 3 * 48000 + 0.25 * window
        expected = sum(load_audio(stems[(pair.song_id, n)].path, t0, window) for n in pair.context_stems)
        assert np.allclose(pair.context, expected, atol=1e-6)
        clap = load_audio(stems[(pair.song_id, pair.target_stem)].path, c0, clap_len)
        assert np.array_equal(pair.clap_audio, clap)
    assert targets == {"bass", "keys", "drums"}


def test_context_subsets_vary_in_size(sampler):
    sizes = {len(sampler.sample(i).context_stems) for i in range(100)}
    assert sizes == {1, 2, 3}


def test_deterministic_for_a_seed(data, sampler):
    again = PairSampler(data, CFG, split="all")
    for i in (0, 5, 17):
        a, b = sampler.sample(i, epoch=2), again.sample(i, epoch=2)
        assert a.describe() == b.describe() and np.array_equal(a.target, b.target)
    other = PairSampler(data, PairConfig(**{**CFG.__dict__, "seed": 12}), split="all")
    assert [sampler.sample(i).describe() for i in range(10)] != [other.sample(i).describe() for i in range(10)]
    assert [sampler.sample(i, 0).describe() for i in range(10)] != [sampler.sample(i, 1).describe() for i in range(10)]


def test_split_is_by_song(data):
    train = PairSampler(data, CFG, split="train")
    val = PairSampler(data, CFG, split="validation")
    assert train.song_ids and val.song_ids
    assert not set(train.song_ids) & set(val.song_ids)
    assert sorted(train.song_ids + val.song_ids) == sorted(s.song_id for s in data.songs)
    assert {train.sample(i).song_id for i in range(30)} <= set(train.song_ids)
    assert all(song_split(s, 0.3) == "validation" for s in val.song_ids)
    assert song_split("x", 0.0) == "train" and song_split("x", 1.0) == "validation"


def test_sounding_starts_on_known_activity():
    loud, quiet = 1e-2, 1e-9  # -20 dB and -90 dB blocks
    activity = np.array([quiet] * 10 + [loud] * 10)
    starts = sounding_starts(activity, 4, silence_db=-45, min_active=0.5)
    assert starts.tolist() == list(range(8, 17))


def test_no_usable_pairs_is_a_clear_error(data):
    with pytest.raises(ValueError, match="no usable training pairs"):
        PairSampler(data, PairConfig(seconds=5.0, clap_seconds=5.0), split="all")
    with pytest.raises(ValueError, match="split must be"):
        PairSampler(data, CFG, split="test")


def test_dataloader_with_workers_matches_in_process(sampler):
    dataset = PairDataset(sampler, length=8, epoch=3)
    serial = list(pair_loader(dataset, batch_size=4, workers=0))
    parallel = list(pair_loader(dataset, batch_size=4, workers=2))
    assert len(serial) == 2
    for a, b in zip(serial, parallel):
        assert a["target"].shape == (4, 2, 2 * 48000 // 4096 * 4096) and a["target"].dtype == torch.float32
        assert torch.equal(a["target"], b["target"]) and torch.equal(a["context"], b["context"])
        assert a["caption"] == b["caption"] and a["song_id"] == b["song_id"]
