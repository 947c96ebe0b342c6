"""DiT training data in latent space and the EDM -> consistency training chain, end to end."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from audio_fixtures import tone, write
from bundle_fixture import perturb
from sideman.training.stages import DiTStage
from sideman.export.bundle import export_bundle
from sideman.models.autoencoder import PRESETS as AE, Autoencoder
from sideman.models.clap_house import PRESETS as CLAP, HouseClap, HouseClapEmbedder
from sideman.models.consistency import ConsistencyPrecond
from sideman.models.dit_checkpoint import load_dit
from sideman.models.edm import EDMPrecond
from sideman.plugin_host.engine import OnnxEngine
from sideman.plugin_host.engine_api import GenerationSettings
from sideman.training.dit_data import LatentPairs, build_pair_latents
from sideman.training.train_dit import train_dit

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("songs")
    for i in range(3):
        write(root / f"s{i}" / "bass.wav", tone(60 + 10 * i, 4.0))
        write(root / f"s{i}" / "keys.wav", tone(440 + 20 * i, 4.0))
        write(root / f"s{i}" / "vocals.wav", tone(300, 4.0))
    return root


@pytest.fixture(scope="module")
def ae():
    torch.manual_seed(0)
    return perturb(Autoencoder(AE["tiny"]), seed=1)


def test_pairs_from_the_spectral_codec(songs, tmp_path):
    """The DiT's pairs can come from either codec: the spectral codec's latents are
    (channels, seconds * 48000 / 4096) and scaled like the autoencoder's."""
    from sideman.models.spectral_codec import CODEC_PRESETS, SpectralCodec
    from sideman.training.codec_training import load_codec_file

    torch.manual_seed(0)
    codec = SpectralCodec(CODEC_PRESETS["tiny"]).eval()
    embedder = HouseClapEmbedder(perturb(HouseClap(CLAP["tiny"])))
    out = build_pair_latents(codec, embedder, songs, tmp_path / "pairs", pairs=3, seconds=1.0,
                             clap_seconds=1.0, split="all", progress=False)
    data = LatentPairs(out)
    assert data[0]["target"].shape == (codec.latent_channels, 12)  # 1.0 s -> whole 4096-sample hops
    assert abs(float(torch.stack([data[i]["target"] for i in range(len(data))]).pow(2).mean().sqrt()) - 0.5) < 0.02
    codec_file = tmp_path / "codec.pt"
    torch.save({"ema": codec.state_dict(), "codec": codec.describe()}, codec_file)
    assert isinstance(load_codec_file(codec_file), SpectralCodec)
    ae_file = tmp_path / "ae.pt"
    from sideman.models.autoencoder import save_autoencoder
    save_autoencoder(Autoencoder(AE["tiny"]), ae_file)
    assert isinstance(load_codec_file(ae_file), Autoencoder)


def test_pairs_are_encoded_scaled_and_resumable(songs, ae, tmp_path):
    embedder = HouseClapEmbedder(perturb(HouseClap(CLAP["tiny"])))
    out = build_pair_latents(ae, embedder, songs, tmp_path / "pairs", pairs=6, seconds=1.0,
                             clap_seconds=1.0, split="all", shard_size=4, progress=False)
    data = LatentPairs(out)
    assert len(data) == 6 and data[0]["target"].shape == data[0]["context"].shape == (64, 12)
    assert data[0]["clap"].shape == (512,)
    rms = float(torch.stack([data[i]["target"] for i in range(len(data))]).pow(2).mean().sqrt())
    assert abs(rms - 0.5) < 0.02  # scaled to sigma_data (float16 storage)
    first = (out / "shard_00000.npz").read_bytes()
    (out / "shard_00001.npz").unlink()
    build_pair_latents(ae, embedder, songs, out, pairs=6, seconds=1.0, clap_seconds=1.0,
                       split="all", shard_size=4, progress=False)
    assert (out / "shard_00000.npz").read_bytes() == first and len(LatentPairs(out)) == 6


def test_edm_then_consistency_then_bundle(songs, ae, tmp_path):
    clap = perturb(HouseClap(CLAP["tiny"]))
    pairs = build_pair_latents(ae, HouseClapEmbedder(clap), songs, tmp_path / "pairs", pairs=4,
                               seconds=1.0, clap_seconds=1.0, split="all", progress=False)
    stage = DiTStage(preset="tiny", edm_steps=6, consistency_steps=4, batch_size=4, warmup=2, log_every=2,
                     ckpt_every=3)
    edm_file = train_dit(pairs, tmp_path / "run", "edm", stage, progress=False)
    edm = load_dit(edm_file)
    assert isinstance(edm, EDMPrecond) and edm.latent_scale == pytest.approx(LatentPairs(pairs).latent_scale)
    cm_file = train_dit(pairs, tmp_path / "run", "consistency", replace(stage, warmup=1, ckpt_every=2),
                        init=edm_file, progress=False)
    cdit = load_dit(cm_file)
    assert isinstance(cdit, ConsistencyPrecond)
    assert (tmp_path / "run" / "edm" / "log.csv").is_file() and (tmp_path / "run" / "consistency" / "loss.png").is_file()
    bundle = export_bundle(tmp_path / "bundle", ae, cdit, clap, None)
    engine = OnnxEngine(bundle, intra_threads=1)
    assert engine.latent_scale == pytest.approx(cdit.latent_scale)
    stem = engine.generate(np.zeros((2, 48000), np.float32), 1.0, GenerationSettings(seed=1, steps=2))
    assert stem.shape == (2, 48000) and np.isfinite(stem).all()
    with pytest.raises(ValueError, match="starts from an EDM model"):
        train_dit(pairs, tmp_path / "run2", "consistency", stage)


def test_a_dit_fits_band_codec_pairs_and_its_held_out_loss_is_measured(songs, tmp_path):
    """Pairs from the band codec (a torch-free codec behind NumpyCodec) give a DiT with as
    many channels; the held-out EDM loss is reproducible for a seed, falls with training,
    and refuses pairs of another width."""
    from sideman.evaluation.dit_loss import held_out_edm_loss
    from sideman.numerics.band_codec import BandCodec
    from sideman.training.dit_data import NumpyCodec

    band = BandCodec()
    codec = NumpyCodec(band, band.cfg.latent_hop, band.latent_dim)
    embedder = HouseClapEmbedder(perturb(HouseClap(CLAP["tiny"])))
    pairs = build_pair_latents(codec, embedder, songs, tmp_path / "pairs", pairs=4, seconds=1.0,
                               clap_seconds=1.0, split="all", progress=False)
    data = LatentPairs(pairs)
    assert data.channels == band.latent_dim and data[0]["target"].shape == (band.latent_dim, 24)  # 1.0 s -> whole 2048-sample hops
    stage = DiTStage(preset="tiny", edm_steps=40, batch_size=4, warmup=1, ckpt_every=1000, log_every=10)
    untrained = train_dit(pairs, tmp_path / "d0", "edm", replace(stage, edm_steps=1), progress=False)
    trained = train_dit(pairs, tmp_path / "d1", "edm", stage, progress=False)
    assert load_dit(trained).net.cfg.latent_channels == band.latent_dim
    first = held_out_edm_loss(trained, pairs, repeats=2, seed=3)
    assert first == held_out_edm_loss(trained, pairs, repeats=2, seed=3) and first["pairs"] == 4
    assert first["loss"] < held_out_edm_loss(untrained, pairs, repeats=2, seed=3)["loss"]
    ae_pairs = build_pair_latents(perturb(Autoencoder(AE["tiny"]), seed=1), embedder, songs, tmp_path / "ae",
                                  pairs=2, seconds=1.0, clap_seconds=1.0, split="all", progress=False)
    with pytest.raises(ValueError, match="64-channel latents"):
        held_out_edm_loss(trained, ae_pairs)


def test_dit_pairs_command_checks_its_codec_and_clap(songs, tmp_path):
    import subprocess
    import sys

    run = lambda *a: subprocess.run([sys.executable, "-m", "sideman.cli", "-q", "dit-pairs", "--data", str(songs),  # noqa: E731
                                     "--out", str(tmp_path / "p"), *a], capture_output=True, text=True, timeout=300)
    bad = run("--autoencoder", "band:x", "--clap-bundle", "nowhere")
    assert bad.returncode == 2 and "whole number of frames" in bad.stderr
    neither = run("--autoencoder", "band")
    assert neither.returncode == 2 and "give one of --clap" in neither.stderr
    assert not (tmp_path / "p").exists()


def test_pairs_built_in_parts_are_the_pairs_of_one_pass(songs, ae, tmp_path):
    """--jobs: processes that each build every n-th shard make the same files as one pass;
    pairs.json appears only once every shard is there."""
    embedder = HouseClapEmbedder(perturb(HouseClap(CLAP["tiny"])))
    kw = dict(pairs=5, seconds=1.0, clap_seconds=1.0, split="all", shard_size=2, progress=False)
    whole = build_pair_latents(ae, embedder, songs, tmp_path / "whole", **kw)
    parts = tmp_path / "parts"
    build_pair_latents(ae, embedder, songs, parts, part=(1, 2), **kw)
    assert sorted(p.name for p in parts.iterdir()) == ["shard_00001.npz"]
    build_pair_latents(ae, embedder, songs, parts, part=(0, 2), **kw)
    for name in ("shard_00000.npz", "shard_00001.npz", "shard_00002.npz"):
        a, b = np.load(whole / name), np.load(parts / name)
        assert all(np.array_equal(a[k], b[k]) for k in a.files)
    assert (parts / "pairs.json").read_text() == (whole / "pairs.json").read_text().replace(
        str(tmp_path / "whole"), str(tmp_path / "parts"))
    with pytest.raises(ValueError, match="part must be"):
        build_pair_latents(ae, embedder, songs, parts, part=(2, 2), **kw)


def _train_and_validation_pairs(songs, ae, tmp_path):
    """4 training pairs and 3 held-out pairs of 1 s (tmp_path/pairs, tmp_path/val)."""
    embedder = HouseClapEmbedder(perturb(HouseClap(CLAP["tiny"])))
    pairs = build_pair_latents(ae, embedder, songs, tmp_path / "pairs", pairs=4, seconds=1.0,
                               clap_seconds=1.0, split="all", progress=False)
    val = build_pair_latents(ae, embedder, songs, tmp_path / "val", pairs=3, seconds=1.0,
                             clap_seconds=1.0, split="all", seed=5, progress=False)
    return pairs, val


def test_validation_curve_cpu_budget_and_exact_resume(songs, ae, tmp_path):
    """With validation pairs the held-out loss goes to val.csv every val_every steps; a CPU
    budget stops the run after a chunk, and resuming it gives the weights and held-out
    losses of an uninterrupted run."""
    import csv

    pairs, val = _train_and_validation_pairs(songs, ae, tmp_path)
    stage = DiTStage(preset="tiny", edm_steps=6, batch_size=2, warmup=1, log_every=2, ckpt_every=100,
                     val_every=2)
    whole = train_dit(pairs, tmp_path / "a", "edm", stage, val_pairs=val, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "a" / "edm" / "val.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4, 6] and all(float(r["loss"]) > 0 for r in rows)
    hours = [float(r["cpu_hours"]) for r in rows]
    assert hours == sorted(hours) and hours[0] > 0 and (tmp_path / "a" / "edm" / "val.png").is_file()
    # A budget below one chunk's CPU time: one chunk, then the file of that point.
    train_dit(pairs, tmp_path / "b", "edm", replace(stage, cpu_minutes=1e-6), val_pairs=val, progress=False)
    assert [int(r["step"]) for r in csv.DictReader(open(tmp_path / "b" / "edm" / "val.csv"))] == [2]
    # Another chunk, then as if killed between its checkpoint and its validation: the row of
    # step 4 and the budget file's step are lost; resuming validates step 4 before going on.
    budget = (tmp_path / "b" / "edm" / "budget.json").read_text()
    (tmp_path / "b" / "edm" / "budget.json").write_text('{"step": 2, "cpu_s": 0.0}')  # one more chunk
    train_dit(pairs, tmp_path / "b", "edm", replace(stage, cpu_minutes=1e-6), val_pairs=val, progress=False)
    lines = open(tmp_path / "b" / "edm" / "val.csv").read().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["2", "4"]
    (tmp_path / "b" / "edm" / "val.csv").write_text("\n".join(lines[:-1]) + "\n")
    (tmp_path / "b" / "edm" / "budget.json").write_text(budget)
    resumed = train_dit(pairs, tmp_path / "b", "edm", stage, val_pairs=val, progress=False)
    a, b = load_dit(whole).state_dict(), load_dit(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    again = list(csv.DictReader(open(tmp_path / "b" / "edm" / "val.csv")))
    assert [r["loss"] for r in again] == [r["loss"] for r in rows]
    hours = [float(r["cpu_hours"]) for r in again]
    assert hours == sorted(hours) and hours[-1] > hours[0]


def test_a_run_killed_after_its_last_checkpoint_validates_it_on_resume(songs, ae, tmp_path):
    """The last step need not be a multiple of val_every: a run stopped between its final
    checkpoint and that step's validation gets the row on the next call, the same loss."""
    import csv

    pairs, val = _train_and_validation_pairs(songs, ae, tmp_path)
    stage = DiTStage(preset="tiny", edm_steps=5, batch_size=2, warmup=1, log_every=5, ckpt_every=100,
                     val_every=2)
    train_dit(pairs, tmp_path / "run", "edm", stage, val_pairs=val, progress=False)
    path = tmp_path / "run" / "edm" / "val.csv"
    rows = list(csv.DictReader(open(path)))
    assert [r["step"] for r in rows] == ["2", "4", "5"]
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    train_dit(pairs, tmp_path / "run", "edm", stage, val_pairs=val, progress=False)
    again = list(csv.DictReader(open(path)))
    assert [(r["step"], r["loss"]) for r in again] == [(r["step"], r["loss"]) for r in rows]


def test_bf16_autocast_trains_on_a_cpu(songs, ae, tmp_path):
    """stage.bf16: the trainer runs the DiT under CPU bf16 autocast and its held-out loss falls."""
    from sideman.evaluation.dit_loss import held_out_edm_loss

    embedder = HouseClapEmbedder(perturb(HouseClap(CLAP["tiny"])))
    pairs = build_pair_latents(ae, embedder, songs, tmp_path / "pairs", pairs=4, seconds=1.0,
                               clap_seconds=1.0, split="all", progress=False)
    stage = DiTStage(preset="tiny", edm_steps=40, batch_size=4, warmup=1, ckpt_every=1000, log_every=10,
                     bf16=True)
    untrained = train_dit(pairs, tmp_path / "d0", "edm", replace(stage, edm_steps=1), progress=False)
    trained = train_dit(pairs, tmp_path / "d1", "edm", stage, progress=False)
    first = held_out_edm_loss(trained, pairs, repeats=2, seed=3)["loss"]
    assert np.isfinite(first) and first < held_out_edm_loss(untrained, pairs, repeats=2, seed=3)["loss"]
    assert load_dit(trained).net.blocks[0].mlp.fc1.weight.dtype == torch.float32  # weights stay fp32


def test_dit_pairs_command_with_jobs_writes_the_pairs_of_one_process(songs, tmp_path):
    """`dit-pairs --jobs 2`: the processes first share the activity cache's first read of
    the songs (each song read by one), then the shards; the files equal one process's."""
    import subprocess
    import sys
    from pathlib import Path

    import sideman

    bundle = Path(sideman.__file__).parent / "default_bundle"
    env = dict(__import__("os").environ, SIDEMAN_CACHE=str(tmp_path / "cache"))

    def run(out, jobs):
        proc = subprocess.run([sys.executable, "-m", "sideman.cli", "-q", "dit-pairs", "--data", str(songs),
                               "--out", str(out), "--autoencoder", "band", "--clap-bundle", str(bundle),
                               "--count", "3", "--seconds", "1", "--clap-seconds", "1", "--split", "all",
                               "--jobs", str(jobs)], capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr
        return np.load(out / "shard_00000.npz")

    two = run(tmp_path / "two", 2)
    assert len(list((tmp_path / "cache" / "activity").glob("*.npy"))) == 9  # 3 songs x 3 stems, read once
    one = run(tmp_path / "one", 1)
    assert all(np.array_equal(one[k], two[k]) for k in one.files) and (tmp_path / "two" / "pairs.json").is_file()


def test_warm_activity_cache_reads_every_nth_song(songs, tmp_path, monkeypatch):
    from sideman.data.layouts import warm_activity_cache

    monkeypatch.setenv("SIDEMAN_CACHE", str(tmp_path))
    assert [warm_activity_cache(songs, (i, 2)) for i in range(2)] == [2, 1]
    assert len(list((tmp_path / "activity").glob("*.npy"))) == 9
