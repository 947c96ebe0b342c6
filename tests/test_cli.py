"""The `sideman` command line, run as a user would run it."""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from audio_fixtures import tone, write
from conftest import needs_fluidsynth


def sideman(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "sideman.cli", "-q", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@needs_fluidsynth
def test_corpus_demo_writes_a_song_its_pairs_and_a_picture(tmp_path):
    proc = sideman("corpus", "demo", "--out", tmp_path, "--seconds", 24, "--pairs", 2)
    assert proc.returncode == 0, proc.stderr
    assert str(tmp_path) in proc.stdout
    song = tmp_path / "song" / "song_00000"
    assert (song / "mix.flac").is_file() and len(list((song / "stems").glob("*.flac"))) == 6
    for i in range(2):
        folder = tmp_path / "pairs" / f"pair_{i:04d}"
        meta = json.loads((folder / "pair.json").read_text())
        assert meta["caption"] and meta["target_stem"] not in meta["context_stems"]
        info = sf.info(str(folder / "target.wav"))
        assert info.samplerate == 48000 and info.channels == 2
    assert (tmp_path / "pair_0000.png").read_bytes()[:4] == b"\x89PNG"


def test_data_check_names_bad_files(tmp_path):
    write(tmp_path / "s1" / "bass.wav", tone(60, 1.0))
    write(tmp_path / "s1" / "keys.wav", tone(400, 1.0))
    (tmp_path / "s1" / "guitar.wav").write_bytes(b"not audio")
    proc = sideman("data", "check", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "layout 'folder', 1 usable songs, 2 stems" in proc.stdout
    assert "guitar.wav" in proc.stdout and "cannot read" in proc.stdout


def test_pairs_write_and_clear_errors(tmp_path):
    for i in range(2):
        write(tmp_path / "data" / f"s{i}" / "bass.wav", tone(60, 4.0))
        write(tmp_path / "data" / f"s{i}" / "keys.wav", tone(400, 4.0))
    proc = sideman("pairs", "write", "--data", tmp_path / "data", "--out", tmp_path / "out",
                   "--count", 3, "--seconds", 1, "--clap-seconds", 1, "--split", "all")
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "out").glob("pair_*/pair.json"))) == 3
    bad = sideman("corpus", "render", "--songs", 0, "--out", tmp_path / "c")
    assert bad.returncode == 2 and "sideman: error: need songs >= 1" in bad.stderr
    missing = sideman("data", "check", tmp_path / "nowhere")
    assert missing.returncode == 2 and "not a folder" in missing.stderr


def test_autoencoder_commands_chain(tmp_path):
    for i in range(3):
        write(tmp_path / "data" / f"s{i}" / "bass.wav", tone(60 + 5 * i, 3.0))
        write(tmp_path / "data" / f"s{i}" / "keys.wav", tone(400 + 9 * i, 3.0))
    run = tmp_path / "ae"
    proc = sideman("ae", "train", "--data", tmp_path / "data", "--out", run, "--preset", "tiny",
                   "--steps", 2, "--batch-size", 2, "--warmup", 1)
    assert proc.returncode == 0, proc.stderr[-2000:]
    model = run / "autoencoder.pt"
    assert model.is_file()
    proc = sideman("encode", model, "--data", tmp_path / "data", "--out", tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-2000:]
    song = sorted((tmp_path / "cache" / "latents").glob("*.npy"))[0]
    proc = sideman("decode", model, song, "-o", tmp_path / "mix.wav")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sf.info(str(tmp_path / "mix.wav")).samplerate == 48000
    proc = sideman("ae", "eval", model, "--data", tmp_path / "data", "--out", tmp_path / "eval",
                   "--clips", 2, "--seconds", 1, "--split", "all")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list((tmp_path / "eval").glob("*.md")) and list((tmp_path / "eval").glob("*.png"))


def test_clap_commands_chain(tmp_path):
    for i in range(4):
        write(tmp_path / "data" / f"s{i}" / "bass.wav", tone(60 + 5 * i, 12.0))
        write(tmp_path / "data" / f"s{i}" / "keys.wav", tone(400 + 9 * i, 12.0))
    proc = sideman("train", "clap", "--data", tmp_path / "data", "--out", tmp_path / "clap",
                   "--preset", "tiny", "--steps", 2, "--batch-size", 4, "--warmup", 1)
    assert proc.returncode == 0, proc.stderr[-2000:]
    clap = tmp_path / "clap" / "house_clap.pt"
    proc = sideman("train", "bridge", "--clap", clap, "--data", tmp_path / "data", "--out", tmp_path / "bridge",
                   "--preset", "tiny", "--steps", 2, "--batch-size", 8, "--warmup", 1)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = sideman("clap-eval", "--clap", clap, "--bridge", tmp_path / "bridge" / "bridge.pt",
                   "--data", tmp_path / "data", "--out", tmp_path / "eval", "--validation-fraction", 0.6)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "eval" / "report.md").is_file()


def _check_demo_output(out, stdout):
    for name in ("stem.wav", "mix.wav", "context.wav"):
        assert str(out / name) in stdout
        info = sf.info(str(out / name))
        assert info.samplerate == 48000 and info.channels == 2
        assert abs(info.duration - 12.0) < 1e-3  # the example song's length
    assert (out / "spectrograms.png").read_bytes()[:4] == b"\x89PNG"
    stem, _ = sf.read(str(out / "stem.wav"))
    assert np.isfinite(stem).all() and np.abs(stem).max() > 0
    from sideman.numerics.loudness import integrated_loudness

    context, _ = sf.read(str(out / "context.wav"))
    # the stem is handed over as the host hands takes to the DAW: 3 LU under the context
    gap = integrated_loudness(stem.T, 48000) - integrated_loudness(context.T, 48000)
    assert abs(gap + 3.0) < 0.5


def test_demo_generates_a_stem_a_mix_and_a_picture(tmp_path):
    from bundle_fixture import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "bundle")
    proc = sideman("demo", "--bundle", bundle, "--out", tmp_path / "out", "--prompt", "guitar part")
    assert proc.returncode == 0, proc.stderr
    assert '"guitar part"' in proc.stdout
    _check_demo_output(tmp_path / "out", proc.stdout)


def test_the_main_job_runs_on_the_embedded_default_bundle(tmp_path):
    """README command 1 after the install: `sideman demo` with nothing else."""
    from sideman.defaults import EMBEDDED_BUNDLE

    assert (EMBEDDED_BUNDLE / "manifest.json").is_file()
    proc = sideman("demo", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert str(EMBEDDED_BUNDLE) in proc.stdout
    _check_demo_output(tmp_path, proc.stdout)


@pytest.mark.parametrize("argv, stage", [
    (["ae", "train", "--data", "d", "--out", "o"], "autoencoder"),
    (["train", "clap", "--data", "d", "--out", "o"], "clap"),
    (["train", "bridge", "--clap", "c", "--data", "d", "--out", "o"], "bridge"),
    (["train", "dit", "--pairs", "p", "--out", "o"], "dit"),
    (["dit-pairs", "--autoencoder", "a", "--clap", "c", "--data", "d", "--out", "o"], "pairs"),
])
def test_trainer_commands_default_to_the_demo_recipe(argv, stage, capsys):
    """One definition per hyperparameter: a trainer command's defaults are the settings the
    demo recipe (`sideman train all`) trains with, and its --help says them."""
    from dataclasses import fields

    from sideman.cli import build_parser
    from sideman.commands.options import from_options
    from sideman.pipeline.recipes import RECIPES
    from sideman.training.stages import option_fields

    recipe_stage = getattr(RECIPES["demo"], stage)
    args = build_parser().parse_args(argv)
    parsed = from_options(type(recipe_stage), args)
    for f in option_fields(type(recipe_stage)):
        assert getattr(parsed, f.name) == getattr(recipe_stage, f.name), f.name
    assert len(option_fields(type(recipe_stage))) >= min(3, len(fields(recipe_stage)))
    with pytest.raises(SystemExit):
        build_parser().parse_args([a for a in argv if a not in ("d", "o", "c", "p", "a")
                                   and not a.startswith("--")] + ["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    first = option_fields(type(recipe_stage))[1]
    assert f"(default: {getattr(recipe_stage, first.name)})" in help_text
