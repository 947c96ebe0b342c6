"""`sideman train all`: recipes, the stage runner end to end at toy sizes, resume."""
import json

import numpy as np
import pytest

from conftest import needs_fluidsynth
from sideman.pipeline.pipeline import STAGES, install_bundle, run_pipeline
from sideman.pipeline.recipes import RECIPES, AutoencoderStage, Recipe


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_survives_json(name):
    recipe = RECIPES[name]
    assert Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe


def test_demo_recipe_uses_the_shipped_sizes():
    from sideman.models.presets import parameter_count

    demo = RECIPES["demo"]
    assert demo.eval.split == "validation"  # held-out songs, never the training split
    assert parameter_count("bridge", demo.bridge.preset) < 5e6  # keeps the bundle under 60 MB


@needs_fluidsynth
@pytest.mark.slow
def test_tiny_recipe_runs_every_stage_then_resumes(tmp_path):
    lines = []
    records = run_pipeline(tmp_path, RECIPES["tiny"], progress=False, log=lines.append)
    assert list(records) == list(STAGES)
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["name"] == "sideman-tiny"
    assert manifest["training"]["recipe"]["autoencoder"]["preset"] == "tiny"
    ae = RECIPES["tiny"].autoencoder
    assert (manifest["autoencoder"]["decode_steps"], manifest["autoencoder"]["decode_mode"]) == \
        (ae.decode_steps, ae.decode_mode)
    for rel in ("autoencoder/eval/summary.md", "autoencoder/eval/spectrograms.png", "autoencoder/autoencoder_eq.pt",
                "autoencoder/autoencoder_eq.png", "eval/report.md",
                "eval/text_control.json", "eval/speed.json", "REPORT.md"):
        assert (tmp_path / rel).is_file(), rel
    report = (tmp_path / "REPORT.md").read_text()
    assert "## Targets" in report and "real-time factor" in report and "ctx+clap_t" in report
    assert "## Output equaliser" in report
    eq = np.load(tmp_path / "autoencoder" / "autoencoder_eq.npz")["eq_db"]
    with np.load(tmp_path / "bundle" / manifest["files"]["decoder_eq"]["path"]) as f:
        assert np.array_equal(f["eq_db"], eq) and np.abs(eq).max() > 0  # the bundle decodes with it
    speed = records["eval"]["summary"]["speed"]
    assert speed["rtf"] == pytest.approx(speed["wall_s"] / speed["seconds"], abs=1e-4)  # both rounded
    control = records["eval"]["summary"]["text_control"]
    assert 0.0 <= control["clap_t"]["accuracy"] <= 1.0 and control["probes"] >= 1
    assert 0.0 <= control["codec"]["accuracy"] <= 1.0 and "| real via codec |" in report
    assert "Notes (basic-pitch" in report and "Per prompted role: transcribed note-seconds" in report
    assert "The same in the musicnn embedding space" in report
    assert "musicnn:apa" in records["eval"]["summary"]["rows"]["ctx"]
    for key in ("real", "codec", "clap_t"):
        assert all(v["note_seconds"] >= 0 for v in control[key]["notes"].values())

    # A rerun skips every stage; a changed recipe is refused, whole or per stage.
    again = []
    run_pipeline(tmp_path, RECIPES["tiny"], progress=False, log=again.append)
    assert sum("done before" in line for line in again) == len(STAGES)
    changed = Recipe.from_dict({**RECIPES["tiny"].to_dict(),
                                "autoencoder": {**RECIPES["tiny"].to_dict()["autoencoder"], "steps": 7}})
    with pytest.raises(ValueError, match="another recipe.*autoencoder"):
        run_pipeline(tmp_path, changed, progress=False, log=lambda _: None)

    target = install_bundle(tmp_path / "bundle", tmp_path / "installed")
    assert json.loads((target / "manifest.json").read_text()) == manifest

    # Export again (a new bundle id): the evaluation starts over instead of resuming the old cache.
    from sideman.plugin_host.bundle import Bundle
    variant_file = tmp_path / "eval" / "cache" / "rows" / "bundle" / "variant.json"
    old_id = json.loads(variant_file.read_text())["bundle_id"]
    for stage in ("export", "eval"):
        (tmp_path / "stages" / f"{stage}.json").unlink()
    records = run_pipeline(tmp_path, RECIPES["tiny"], progress=False, log=lambda _: None)
    new_id = json.loads(variant_file.read_text())["bundle_id"]
    assert new_id == Bundle.open(tmp_path / "bundle").bundle_id != old_id
    assert records["eval"]["summary"]["rows"]


def test_a_stage_with_other_settings_is_refused(tmp_path):
    recipe = RECIPES["tiny"]
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "corpus.json").write_text(json.dumps(
        {"stage": "corpus", "settings": {"corpus": {"songs": 1, "seconds": 1.0, "seed": 0}},
         "seconds": 1.0, "summary": {}}))
    with pytest.raises(ValueError, match="other settings"):
        run_pipeline(tmp_path, recipe, progress=False, log=lambda _: None)


def test_install_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model bundle"):
        install_bundle(tmp_path, tmp_path / "target")


def test_unknown_stop_stage_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown stage"):
        run_pipeline(tmp_path, RECIPES["tiny"], stop_after="nope", log=lambda _: None)
    assert not (tmp_path / "recipe.json").exists()


def test_autoencoder_stage_defaults_are_the_demo_recipe():
    assert RECIPES["demo"].autoencoder == AutoencoderStage()
