"""ONNX export and the torch-free engine: checker, parity, hashes, generation, controls."""
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
import torch

from bundle_fixture import make_tiny_bundle, tiny_models
from sideman.models.clap_house import HouseClapEmbedder
from sideman.plugin_host.bundle import Bundle, BundleError
from sideman.plugin_host.engine import Controls, OnnxEngine
from sideman.plugin_host.engine_api import GenerationSettings
from sideman.numerics.sampler import GuidedConsistency, SamplerSettings, sample_latents

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models():
    """The tiny models; the autoencoder with an output equaliser (a tilt, -6..+12 dB), so
    every codec parity test covers it."""
    m = tiny_models(seed=0)
    ae = m["autoencoder"]
    ae.eq_db.copy_(torch.linspace(-6.0, 12.0, ae.cfg.bins))
    return m


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, models):
    from sideman.export.bundle import export_bundle
    return export_bundle(tmp_path_factory.mktemp("b") / "tiny", name="tiny-test", **models)


@pytest.fixture(scope="module")
def engine(bundle):
    return OnnxEngine(bundle, intra_threads=1)


def test_every_file_passes_the_checker_and_parity(bundle, models):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["format"] == "sideman-bundle" and manifest["format_version"] == 1
    with np.load(bundle / manifest["files"]["decoder_eq"]["path"]) as f:
        assert np.array_equal(f["eq_db"], models["autoencoder"].eq_db.numpy())
    onnx_parts = [k for k, v in manifest["files"].items() if v["path"].endswith(".onnx")]
    assert set(onnx_parts) == {"encoder", "decoder", "denoiser", "dit_step", "clap_audio",
                               "clap_text", "bridge_step"}
    for part in onnx_parts:
        entry = manifest["files"][part]
        onnx.checker.check_model(str(bundle / entry["path"]), full_check=True)
        assert entry["parity_max_rel_error"] < manifest["parity_tolerance"] == 1e-4
        assert entry["inputs"] and entry["outputs"]
    assert manifest["files"]["dit_step"]["inputs"]["x"]["shape"] == ["batch", 64, "frames"]
    assert manifest["dit"]["guidance"] == {"context": 1.25, "clap": 1.25}
    assert manifest["dit"]["default_steps"] == 5


def test_corrupted_or_foreign_bundles_are_refused(bundle, tmp_path):
    copy = shutil.copytree(bundle, tmp_path / "copy")
    with open(copy / "dit_step.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(BundleError, match="dit_step.onnx is corrupted"):
        Bundle.open(copy)
    manifest = json.loads((bundle / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(BundleError, match="format version 99"):
        Bundle.open(copy)
    with pytest.raises(BundleError, match="not a Sideman model bundle"):
        Bundle.open(tmp_path)


def nested_cfg(model, x, sigma, ctx, clap, w_ctx, w_clap):
    """D = (1 - w_ctx) D(0, 0) + (w_ctx - w_clap) D(ctx, 0) + w_clap D(ctx, clap), pass by pass."""
    with torch.no_grad():
        d = lambda c, k: model(x, torch.tensor([sigma]), context=c, clap=k)  # noqa: E731
        return ((1 - w_ctx) * d(None, None) + (w_ctx - w_clap) * d(ctx, None) + w_clap * d(ctx, clap)).numpy()


def test_guided_step_matches_pytorch_guidance(engine, models):
    """The exported step with its batched passes against the nested CFG computed pass by pass."""
    g = torch.Generator().manual_seed(5)
    x, ctx = torch.randn(1, 64, 12, generator=g), torch.randn(1, 64, 12, generator=g)
    clap = torch.nn.functional.normalize(torch.randn(1, 512, generator=g), dim=-1)
    for w_ctx, w_clap in ((1.25, 1.25), (2.0, 1.5), (1.0, 1.0)):
        for use_ctx, use_clap in ((True, True), (True, False), (False, True), (False, False)):
            c, k = (ctx if use_ctx else None), (clap if use_clap else None)
            ref = nested_cfg(models["dit"], x, 2.5, c, k, w_ctx, w_clap)
            f = GuidedConsistency(engine._step, None if c is None else c.numpy(),
                                  None if k is None else k.numpy(), w_ctx, w_clap, (64, 12), 512)
            assert np.abs(f(x.numpy(), 2.5) - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


def test_codec_matches_the_pytorch_autoencoder(engine, models):
    """Encoding, and decoding with the same noise (one sampler, numerics.autoencoder): the
    ONNX parts against the torch networks."""
    ae = models["autoencoder"]
    audio = (0.2 * np.random.default_rng(1).standard_normal((1, 2, 20000))).astype(np.float32)
    with torch.no_grad():
        ref = ae.encode(torch.from_numpy(audio)).numpy()
    latents = engine.codec.encode(audio)
    assert latents.shape == ref.shape == (1, 64, ae.latent_frames(20000))
    assert np.abs(latents - ref).max() < 1e-4
    ref_audio = ae.decode(torch.from_numpy(ref), length=20000, rng=np.random.default_rng(2)).numpy()
    ours = engine.codec.decode(ref, length=20000, rng=np.random.default_rng(2))
    assert np.abs(ours - ref_audio).max() < 1e-3 * max(1.0, np.abs(ref_audio).max())


@pytest.mark.parametrize("steps", [1, 2])
def test_parallel_decoding_matches_the_pytorch_autoencoder(engine, models, steps):
    ae = models["autoencoder"]
    latents = np.random.default_rng(4).standard_normal((1, 64, 4 * ae.cfg.chunk_latents)).astype(np.float32)
    ref = ae.decode(torch.from_numpy(latents), steps=steps, mode="parallel", rng=np.random.default_rng(5)).numpy()
    ours = engine.codec.decode(latents, steps=steps, mode="parallel", rng=np.random.default_rng(5))
    assert np.abs(ours - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())


def test_reconstruct_is_the_pytorch_round_trip(engine, models):
    """engine.reconstruct = the torch autoencoder's encode + decode (bundle's steps and mode)
    with the same seeded noise."""
    ae = models["autoencoder"]
    audio = (0.2 * np.random.default_rng(6).standard_normal((2, 30000))).astype(np.float32)
    with torch.no_grad():
        ref = ae.decode(ae.encode(torch.from_numpy(audio[None])), length=30000, steps=engine.decode_steps,
                        mode=engine.decode_mode, rng=np.random.default_rng(11))[0].numpy()
    ours = engine.reconstruct(audio, seed=11)
    assert ours.shape == audio.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())
    assert not np.allclose(engine.reconstruct(audio, seed=12), ours)  # the seed is the noise
    assert np.array_equal(engine.reconstruct(audio[0], seed=11), engine.reconstruct(audio[[0, 0]], seed=11))
    with pytest.raises(ValueError, match="empty"):
        engine.reconstruct(np.zeros((2, 0), np.float32))

def test_clap_towers_match_the_house_embedder(engine, models):
    embedder = HouseClapEmbedder(models["clap"])
    texts = ["warm upright bass", "a bright staccato synth lead"]
    assert np.abs(engine.embed_text(texts) - embedder.embed_text(texts)).max() < 1e-4
    clips = (0.2 * np.random.default_rng(3).standard_normal((2, 2, 48000))).astype(np.float32)
    ours = engine.embed_audio(list(clips))
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert np.abs(ours - embedder.embed_audio(clips)).max() < 1e-4


def test_generation_shapes_seeds_and_progress(engine):
    ctx = (0.1 * np.random.default_rng(0).standard_normal((2, 96000))).astype(np.float32)
    steps = []
    settings = GenerationSettings(prompt="warm upright bass", seed=7, steps=3)
    a = engine.generate(ctx, 1.2, settings, lambda s, n: steps.append((s, n)))
    assert a.shape == (2, 57600) and a.dtype == np.float32 and np.isfinite(a).all()
    assert steps == [(1, 3), (2, 3), (3, 3)]  # the steps sampled, no more
    assert np.array_equal(a, engine.generate(ctx, 1.2, settings))
    assert not np.array_equal(a, engine.generate(ctx, 1.2, GenerationSettings(prompt="warm upright bass", seed=8, steps=3)))
    unconditional = engine.generate(None, 0.3, GenerationSettings(seed=1, steps=1))
    assert unconditional.shape == (2, 14400)
    with pytest.raises(ValueError, match="steps must be"):
        engine.generate(ctx, 1.0, GenerationSettings(steps=99))


def test_controls_in_latent_space(engine):
    f = GuidedConsistency(engine._step, None, None, 1.25, 1.25, (64, 9), 512)
    rng = np.random.default_rng(0)
    take = rng.standard_normal((1, 64, 9)).astype(np.float32)
    keep = np.zeros(9, bool)
    keep[:4] = True
    out = sample_latents(f, (1, 64, 9), SamplerSettings(steps=3), np.random.default_rng(1), take, keep)
    assert np.array_equal(out[..., :4], take[..., :4]) and not np.allclose(out[..., 4:], take[..., 4:])
    same = sample_latents(f, (1, 64, 9), SamplerSettings(strength=0.0), np.random.default_rng(1), take)
    assert np.array_equal(same, take)
    near = sample_latents(f, (1, 64, 9), SamplerSettings(steps=5, strength=0.2), np.random.default_rng(1), take)
    far = sample_latents(f, (1, 64, 9), SamplerSettings(steps=5, strength=0.9), np.random.default_rng(1), take)
    assert np.abs(near - take).mean() < np.abs(far - take).mean()
    looped = sample_latents(f, (1, 64, 9), SamplerSettings(steps=2, loop=True), np.random.default_rng(1))
    assert looped.shape == (1, 64, 9) and np.isfinite(looped).all()


def test_engine_variation_and_inpainting_controls(engine):
    take = (0.1 * np.random.default_rng(4).standard_normal((2, 48000))).astype(np.float32)
    settings = GenerationSettings(seed=2, steps=2)
    unchanged = engine.generate(None, 1.0, settings, controls=Controls(take=take, strength=0.0))
    decoded = engine.codec.decode(engine.codec.encode(take[None]), length=48000, rng=np.random.default_rng(2),
                                  mode=engine.decode_mode)[0]
    assert np.allclose(unchanged, decoded, atol=1e-5)
    kept = engine.generate(None, 1.0, settings, controls=Controls(take=take, keep=((0.0, 0.5),)))
    assert kept.shape == (2, 48000)


def test_bridge_matches_the_pytorch_bridge(engine, models):
    """One sampler (numerics.sampler.heun) and one noise draw: the exported bridge gives the
    torch bridge's embeddings for the same text and seed."""
    text = engine.embed_text(["deep sub bass"])[0]
    ref = models["bridge"].sample(text, 2, steps=4, seed=3)
    out = engine.bridge(text, 2, seed=3, steps=4)
    assert np.abs(out - ref).max() < 1e-4


def test_bridge_samples_are_unit_norm_and_seeded(engine):
    text = engine.embed_text(["deep sub bass"])[0]
    a, b = engine.bridge(text, 3, seed=1, steps=4), engine.bridge(text, 3, seed=1, steps=4)
    assert a.shape == (3, 512) and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, b) and not np.allclose(a[0], a[1])
    assert engine.bridge(None, 2, seed=1, steps=4).shape == (2, 512)


def test_engine_runs_where_torch_cannot_be_imported(bundle, tmp_path):
    script = textwrap.dedent(f"""
        import sys, importlib.abc
        class NoTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
        sys.meta_path.insert(0, NoTorch())
        import numpy as np
        from sideman.plugin_host.engine import OnnxEngine
        from sideman.plugin_host.engine_api import GenerationSettings
        e = OnnxEngine({str(bundle)!r}, intra_threads=1)
        y = e.generate(np.zeros((2, 24000), np.float32), 0.5, GenerationSettings(prompt="bass", seed=1, steps=2))
        assert y.shape == (2, 24000)
        assert "torch" not in sys.modules
        print("ok without torch")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ok without torch" in proc.stdout


def test_export_refuses_an_edm_model(models, tmp_path):
    from sideman.export.bundle import export_bundle
    from sideman.models.edm import EDMPrecond
    with pytest.raises(TypeError, match="consistency model"):
        export_bundle(tmp_path / "b", models["autoencoder"], EDMPrecond(models["dit"].net))


def test_fp16_variants(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "fp16", fp16=True, check=False)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert "dit_step_fp16" in manifest["files"]
    model = onnx.load(str(bundle / manifest["files"]["dit_step_fp16"]["path"]))
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer)
    Bundle.open(bundle)


def test_int8_variants_are_checked_chosen_and_close(tmp_path, models):
    from sideman.export.bundle import HEAVY_PARTS, INT8_PARITY_TOL, export_bundle
    bundle = export_bundle(tmp_path / "int8", name="tiny-int8", int8=True, **models)
    manifest = json.loads((bundle / "manifest.json").read_text())
    for part in HEAVY_PARTS:
        entry = manifest["files"][f"{part}_int8"]
        assert 0 < entry["parity_rel_rms_error"] <= INT8_PARITY_TOL  # quantised: close, not equal
        model = onnx.load(str(bundle / entry["path"]))
        assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear") for n in model.graph.node)
    assert "bridge_step_int8" not in manifest["files"]
    fp32 = Bundle.open(bundle, precision="fp32")
    int8 = Bundle.open(bundle, precision="int8")
    auto = Bundle.open(bundle)  # CPU: fp32 unless asked
    assert fp32.variant("dit_step") == auto.variant("dit_step") == "dit_step"
    assert int8.variant("dit_step") == "dit_step_int8" and int8.variant("bridge_step") == "bridge_step"
    # the engine at int8 generates what the fp32 engine does, up to quantisation error
    settings = GenerationSettings(prompt="bass", seed=3, steps=2)
    ctx = (0.1 * np.random.default_rng(0).standard_normal((2, 48000))).astype(np.float32)
    a = OnnxEngine(bundle, intra_threads=1, precision="fp32").generate(ctx, 1.0, settings)
    b = OnnxEngine(bundle, intra_threads=1, precision="int8").generate(ctx, 1.0, settings)
    assert not np.array_equal(a, b)
    assert np.sqrt(np.mean((a - b) ** 2)) < 0.25 * np.sqrt(np.mean(a ** 2))
    with pytest.raises(BundleError, match="no fp16 variants"):
        Bundle.open(bundle, precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        Bundle.open(bundle, precision="int4")


def test_decode_mode_is_recorded_and_followed(engine, tmp_path):
    assert engine.bundle.manifest["autoencoder"]["decode_mode"] == "sequential" == engine.decode_mode
    parallel = OnnxEngine(make_tiny_bundle(tmp_path / "par", decode_mode="parallel", check=False))
    assert parallel.decode_mode == "parallel"
    take = (0.1 * np.random.default_rng(4).standard_normal((2, 48000))).astype(np.float32)
    settings = GenerationSettings(seed=2, steps=2)
    unchanged = parallel.generate(None, 1.0, settings, controls=Controls(take=take, strength=0.0))
    decoded = parallel.codec.decode(parallel.codec.encode(take[None]), length=48000, rng=np.random.default_rng(2),
                                    mode="parallel")[0]
    assert np.allclose(unchanged, decoded, atol=1e-5)
    with pytest.raises(ValueError, match="decode_mode"):
        make_tiny_bundle(tmp_path / "bad", decode_mode="sideways", check=False)
    assert engine.decode_steps == 2
    one = OnnxEngine(make_tiny_bundle(tmp_path / "one", decode_steps=1, check=False))
    assert one.bundle.manifest["autoencoder"]["decode_steps"] == 1 == one.decode_steps
    with pytest.raises(ValueError, match="decode_steps"):
        make_tiny_bundle(tmp_path / "bad", decode_steps=3, check=False)


def test_a_band_codec_bundle_generates_through_the_engine(tmp_path):
    """A bundle whose codec is the band codec holds no codec networks: its manifest carries
    the codec's settings, the reader asks only for the DiT step, and the engine encodes
    contexts and decodes stems with numerics.band_codec."""
    from dataclasses import replace

    from bundle_fixture import perturb
    from sideman.export.bundle import export_bundle
    from sideman.models.consistency import ConsistencyPrecond
    from sideman.models.dit import PRESETS as DIT_PRESETS, DiT
    from sideman.numerics.band_codec import BandCodec, BandCodecConfig
    from sideman.plugin_host.engine import OnnxEngine
    from sideman.plugin_host.engine_api import GenerationSettings

    codec = BandCodec(BandCodecConfig(pool=4))
    dit = perturb(ConsistencyPrecond(DiT(replace(DIT_PRESETS["tiny"], latent_channels=codec.latent_dim))), seed=5)
    bundle = export_bundle(tmp_path / "band", codec, dit, name="tiny-band", int8=True)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["codec"]["kind"] == "band" and manifest["codec"]["pool"] == 4
    assert "autoencoder" not in manifest and not {"encoder", "decoder", "denoiser"} & set(manifest["files"])
    assert manifest["latent_channels"] == codec.latent_dim == 287 and manifest["hop"] == 2048
    engine = OnnxEngine(bundle)
    assert isinstance(engine.codec, BandCodec) and engine.codec.cfg == codec.cfg
    t = np.arange(3 * 48_000) / 48_000
    context = np.stack([0.2 * np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32)
    stem = engine.generate(context, 3.0, GenerationSettings(seed=1, steps=2))
    assert stem.shape == (2, 3 * 48_000) and np.isfinite(stem).all() and np.abs(stem).max() > 0
    again = engine.generate(context, 3.0, GenerationSettings(seed=1, steps=2))
    assert np.array_equal(stem, again)
    rec = engine.reconstruct(context, seed=0)
    assert np.allclose(rec, codec.decode(codec.encode(context[None]), length=context.shape[-1])[0])
    wrong = perturb(ConsistencyPrecond(DiT(DIT_PRESETS["tiny"])), seed=5)
    with pytest.raises(ValueError, match="latent size 287"):
        export_bundle(tmp_path / "wrong", codec, wrong)


def test_a_bundle_takes_another_bundles_conditioning_and_stores_dit_weights_in_fp16(tmp_path):
    """conditioning_from copies the CLAP towers and bridge (files, hashes, manifest sections)
    of a bundle; dit_fp16_weights halves the DiT step's file and keeps its outputs within
    FP16_WEIGHTS_TOL of PyTorch's."""
    from dataclasses import replace

    from bundle_fixture import make_tiny_bundle, perturb
    from sideman.export.bundle import FP16_WEIGHTS_TOL, export_bundle
    from sideman.models.consistency import ConsistencyPrecond
    from sideman.models.dit import PRESETS as DIT_PRESETS, DiT
    from sideman.numerics.band_codec import BandCodec
    from sideman.plugin_host.bundle import Bundle
    from sideman.plugin_host.engine import OnnxEngine
    from sideman.plugin_host.engine_api import GenerationSettings

    source = make_tiny_bundle(tmp_path / "source")
    codec = BandCodec()
    dit = perturb(ConsistencyPrecond(DiT(replace(DIT_PRESETS["tiny"], latent_channels=codec.latent_dim))), seed=5)
    full = export_bundle(tmp_path / "full", codec, dit, conditioning_from=source)
    half = export_bundle(tmp_path / "half", codec, dit, conditioning_from=source, dit_fp16_weights=True)
    src, man = Bundle.open(source).manifest, json.loads((half / "manifest.json").read_text())
    assert man["clap"] == src["clap"] and man["bridge"] == src["bridge"]
    for part in ("clap_audio", "clap_text", "bridge_step", "bridge_norm"):
        assert man["files"][part]["sha256"] == src["files"][part]["sha256"]
    assert man["conditioning_from"] == Bundle.open(source).bundle_id
    assert (half / "dit_step.onnx").stat().st_size < 0.6 * (full / "dit_step.onnx").stat().st_size
    assert man["files"]["dit_step"]["parity_max_rel_error"] <= FP16_WEIGHTS_TOL
    context = (0.1 * np.random.default_rng(0).standard_normal((2, 48000))).astype(np.float32)
    settings = GenerationSettings(prompt="bass line", seed=1, steps=2)
    a, b = (OnnxEngine(x, intra_threads=1).generate(context, 1.0, settings) for x in (full, half))
    assert np.sqrt(np.mean((a - b) ** 2)) <= 0.05 * np.sqrt(np.mean(a ** 2))
    with pytest.raises(ValueError, match="not both"):
        export_bundle(tmp_path / "x", codec, dit, clap=object(), conditioning_from=source)
    (source / "clap_text.onnx").write_bytes(b"changed")
    with pytest.raises(ValueError, match="does not match its manifest"):
        export_bundle(tmp_path / "y", codec, dit, conditioning_from=source)
