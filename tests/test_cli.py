"""The `sideman` command line, run as a user would run it."""
import json
import subprocess
import sys
from pathlib import Path

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
    assert "guitar.wav: not an audio file" in proc.stdout


def test_pairs_write_and_clear_errors(tmp_path):
    for i in range(2):
        write(tmp_path / "data" / f"s{i}" / "bass.wav", tone(60, 4.0))
        write(tmp_path / "data" / f"s{i}" / "keys.wav", tone(400, 4.0))
    proc = sideman("pairs", "write", "--data", tmp_path / "data", "--out", tmp_path / "out",
                   "--count", 3, "--seconds", 1, "--clap-seconds", 1, "--split", "all")
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "out").glob("pair_*/pair.json"))) == 3
    bad = sideman("corpus", "render", "--songs", 0, "--out", tmp_path / "c")
    assert bad.returncode == 2 and "--songs must be within 1..1000000, got 0" in bad.stderr
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
    assert "carries no measured figures" in proc.stdout  # a fresh export has none
    _check_demo_output(tmp_path / "out", proc.stdout)


def test_the_main_job_runs_on_the_embedded_default_bundle(tmp_path):
    """README command 1 after the install: `sideman demo` with nothing else."""
    from sideman.defaults import EMBEDDED_BUNDLE

    assert (EMBEDDED_BUNDLE / "manifest.json").is_file()
    proc = sideman("demo", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert str(EMBEDDED_BUNDLE) in proc.stdout
    _check_demo_output(tmp_path, proc.stdout)
    # What a user should expect of it, from its manifest's held-out figures.
    assert "What to expect" in proc.stdout and "note-seconds per 10 s (real parts" in proc.stdout


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


# ---------------------------------------------------------------- generate and serve (issue 17)

@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    from bundle_fixture import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", check=False)


def test_generate_refuses_bad_input_and_output_before_the_model_loads(tmp_path):
    """Every refusal comes before the bundle is opened: the bundle named here does not exist,
    so an error about it would mean the compute had started."""
    context = write(tmp_path / "ctx.wav", tone(220, 1.0))
    original = context.read_bytes()
    bad = tone(220, 1.0)
    bad[100, 0] = np.nan
    sf.write(tmp_path / "nan.wav", bad, 48000, subtype="FLOAT")
    bad[100, 0] = np.inf
    sf.write(tmp_path / "inf.wav", bad, 48000, subtype="FLOAT")
    existing = write(tmp_path / "existing.wav", tone(440, 0.5))
    kept = existing.read_bytes()
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "folder").mkdir()
    cases = [
        (["--context", tmp_path / "nan.wav", "-o", tmp_path / "o.wav"], "holds NaN or infinite samples"),
        (["--context", tmp_path / "inf.wav", "-o", tmp_path / "o.wav"], "holds NaN or infinite samples"),
        (["--context", context, "-o", context], "refusing to overwrite an input"),
        (["--context", context, "-o", context, "--force"], "refusing to overwrite an input"),
        (["--context", context, "--style-audio", existing, "-o", existing, "--force"], "refusing to overwrite an input"),
        (["--context", context, "-o", existing], "already exists; pass --force"),
        (["--context", context, "-o", tmp_path / "folder"], "is a folder"),
        (["--context", context, "-o", tmp_path / "o.xyz"], "the extension must be one of"),
        (["--context", context, "-o", tmp_path / "o"], "the extension must be one of"),
        (["--context", context, "-o", tmp_path / "a-file" / "o.wav"], "is not a writable folder"),
        (["--context", tmp_path / "missing.wav", "-o", tmp_path / "o.wav"], "no such file"),
        (["--context", context, "-o", tmp_path / "o.wav", "--seconds", "nan"], "must be a finite number"),
        (["--context", context, "-o", tmp_path / "o.wav", "--seconds", "-1"], "--seconds must be above 0 and at most 3600 s, got -1"),
        (["--context", context, "-o", tmp_path / "o.wav", "--guidance", "inf", "1"], "must be a finite number"),
        (["--context", context, "-o", tmp_path / "o.wav", "--strength", "2"], "--strength must be within"),
        (["--context", context, "-o", tmp_path / "o.wav", "--seed", "-1"], "--seed must be at least 0"),
    ]
    for argv, fragment in cases:
        proc = sideman("generate", "--bundle", tmp_path / "no-bundle", *argv)
        assert proc.returncode == 2 and fragment in proc.stderr, (argv, proc.stderr[-600:])
        assert "Traceback" not in proc.stderr and "no-bundle" not in proc.stderr, proc.stderr[-600:]
    assert context.read_bytes() == original and existing.read_bytes() == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "ctx.wav", "existing.wav", "folder",
                                                          "inf.wav", "nan.wav"]


def test_generate_writes_a_new_file_and_overwrites_only_with_force(tmp_path, tiny_bundle):
    context = write(tmp_path / "ctx.wav", tone(220, 1.0))
    out = tmp_path / "out" / "stem.flac"
    proc = sideman("generate", "--bundle", tiny_bundle, "--context", context, "-o", out, "--threads", 1)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = sf.info(str(out))
    assert info.format == "FLAC" and info.subtype == "PCM_24" and info.frames == 48000
    first = out.read_bytes()
    again = sideman("generate", "--bundle", tiny_bundle, "--context", context, "-o", out, "--seed", 3,
                    "--threads", 1)
    assert again.returncode == 2 and "already exists" in again.stderr and out.read_bytes() == first
    forced = sideman("generate", "--bundle", tiny_bundle, "--context", context, "-o", out, "--seed", 3,
                     "--threads", 1, "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert out.read_bytes() != first and not [p for p in out.parent.iterdir() if p.name != "stem.flac"]


def test_serve_beyond_loopback_warns_and_limits_are_options(tmp_path, tiny_bundle):
    import socket

    from pythonosc.osc_message_builder import OscMessageBuilder

    bad = sideman("serve", "--bundle", tmp_path / "no-bundle", "--max-queued", 0)
    assert bad.returncode == 2 and "--max-queued must be at least 1, got 0" in bad.stderr
    proc = subprocess.Popen([sys.executable, "-m", "sideman.cli", "serve", "--bundle", tiny_bundle,
                             "--host", "0.0.0.0", "--port", "0", "--threads", "1", "--max-instances", "1",
                             "--session", tmp_path / "session", "--cache", tmp_path / "cache"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on udp://0.0.0.0:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(line.split("udp://0.0.0.0:")[1].split()[0])
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(30)

        def ask(address, *args):
            builder = OscMessageBuilder(address)
            for a in args:
                builder.add_arg(a)
            sock.sendto(builder.build().dgram, ("127.0.0.1", port))
            from sideman.plugin_host import osc_protocol as osc
            return osc.parse_datagram(sock.recvfrom(65535)[0])[0]

        assert ask("/sideman/hello", 1, "one")[0] == "/sideman/one/welcome"
        address, (_, reason) = ask("/sideman/hello", 2, "two")
        assert address == "/sideman/error" and "at most 1 instances" in reason
        assert ask("/sideman/quit", 3) == ("/sideman/bye", [3])
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "no authentication" in proc.stderr.read()


# ---------------------------------------------------------------- messages (issue 18)

def test_each_kind_of_input_failure_has_one_wording(tmp_path):
    """Missing, not audio, unreadable and too many channels read the same in `generate`,
    `demo` and the host's reads (serve), each naming the file; none reaches the model."""
    from sideman.plugin_host.paths import FolderPolicy

    missing, text, folder = tmp_path / "missing.wav", tmp_path / "notes.wav", tmp_path / "folder.wav"
    text.write_text("these are words, not samples")
    folder.mkdir()
    six = write(tmp_path / "six.wav", tone(200, 0.5, channels=6))
    wording = {missing: "no such file", text: "not an audio file (WAV, FLAC, AIFF, OGG or MP3)",
               folder: "cannot read it (it is a folder)",
               six: "has 6 channels; Sideman reads mono or stereo"}
    for path, words in wording.items():
        for command in (["generate", "-o", tmp_path / "out.wav"], ["demo", "--out", tmp_path / "demo"]):
            proc = sideman(*command, "--context", path, "--bundle", tmp_path / "no-bundle")
            assert proc.returncode == 2, proc.stderr[-600:]
            assert f"sideman: error: --context {path}: {words}" in proc.stderr, proc.stderr[-600:]
            assert "Traceback" not in proc.stderr and "System error" not in proc.stderr
    policy = FolderPolicy(tmp_path)
    for path in (missing, text, six):
        with pytest.raises(ValueError) as info:
            policy.read_audio(path, 48000, 60.0)
        assert str(info.value) == f"{path}: {wording[path]}" or str(info.value).startswith(
            f"{path}: {wording[path]}"), str(info.value)
    assert not (tmp_path / "out.wav").exists() and not (tmp_path / "demo").exists()


def test_numeric_options_state_their_range(tmp_path):
    """--steps 0, -3 and 9 are refused alike with the bundle's range; every other number with
    its range; nothing runs."""
    context = write(tmp_path / "ctx.wav", tone(220, 1.0))
    for steps in ("0", "-3", "9"):
        for command in (["generate", "--context", context, "-o", tmp_path / "o.wav"], ["demo", "--out", tmp_path / "d"]):
            proc = sideman(*command, "--steps", steps)
            assert proc.returncode == 2 and f"--steps must be within 1..8, got {steps}" in proc.stderr, proc.stderr
    cases = [(["generate", "--context", context, "-o", tmp_path / "o.wav", "--clap-mix", "1.5"],
              "--clap-mix must be within 0..1, got 1.5"),
             (["generate", "--context", context, "-o", tmp_path / "o.wav", "--threads", "-1"],
              "--threads must be at least 0, got -1"),
             (["generate", "--context", context, "-o", tmp_path / "o.wav", "--loudness", "3"],
              "within -70..0 LUFS"),
             (["generate", "--context", context, "-o", tmp_path / "o.wav", "--loudness", "loud"],
              "takes 'context', 'off' or a loudness in LUFS"),
             (["demo", "--seed", "-2"], "--seed must be at least 0, got -2"),
             (["serve", "--port", "70000"], "--port must be within 0..65535, got 70000"),
             (["serve", "--max-seconds", "inf"], "--max-seconds must be a finite number"),
             (["audition", context, context, "--take-gain", "40"], "--take-gain must be within -60..24 dB, got 40")]
    for argv, fragment in cases:
        proc = sideman(*argv)
        assert proc.returncode == 2 and fragment in proc.stderr, (argv, proc.stderr[-600:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx.wav"]


@pytest.mark.slow
def test_generate_and_demo_write_the_same_loudness(tmp_path):
    """Both match the context (3 LU under it) by default, the same stem for the same seed;
    --loudness sets LUFS or keeps the model's level; the progress bar counts the real steps."""
    from sideman.numerics.loudness import integrated_loudness

    example = Path(__file__).resolve().parents[1] / "sideman" / "examples" / "context.flac"
    demo = sideman("demo", "--out", tmp_path / "demo", "--steps", 3, timeout=600)
    assert demo.returncode == 0, demo.stderr[-2000:]
    runs = {}
    for name, extra in (("context", []), ("lufs", ["--loudness", "-20"]), ("off", ["--loudness", "off"])):
        proc = subprocess.run([sys.executable, "-m", "sideman.cli", "generate", "--context", str(example),
                               "--prompt", "bass line", "--steps", "3", "-o", str(tmp_path / f"{name}.wav"), *extra],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[name] = sf.read(tmp_path / f"{name}.wav", always_2d=True)[0].T
        assert "3/3" in proc.stderr and "4/4" not in proc.stderr, proc.stderr[-500:]
    stem = sf.read(tmp_path / "demo" / "stem.wav", always_2d=True)[0].T
    context = sf.read(tmp_path / "demo" / "context.wav", always_2d=True)[0].T
    level = {k: integrated_loudness(v, 48000) for k, v in runs.items()}
    assert abs(integrated_loudness(stem, 48000) - level["context"]) < 0.01
    if np.abs(runs["context"]).max() < 0.989:  # not held back by the peak limit
        assert abs(level["context"] - (integrated_loudness(context, 48000) - 3.0)) < 0.05
    if np.abs(runs["lufs"]).max() < 0.989:
        assert abs(level["lufs"] + 20.0) < 0.05
    assert np.abs(runs["context"]).max() <= 0.99 + 1e-6 and np.abs(runs["lufs"]).max() <= 0.99 + 1e-6
    off_gain = np.sqrt(np.mean(runs["context"] ** 2) / np.mean(runs["off"] ** 2))
    assert np.allclose(runs["context"], runs["off"] * off_gain, atol=1e-4)
