"""Figures in a bundle's manifest: summarised from an evaluation whose numbers are known,
written without touching the model's files or identity, and said by `describe_figures`."""
import json
import shutil

import pytest

from sideman.evaluation.bundle_figures import summarise
from sideman.export.bundle import write_figures
from sideman.plugin_host.bundle import Bundle, describe_figures


def _figure(mean, n=10):
    return {"mean": mean, "low": mean - 0.1, "high": mean + 0.1, "n": n}


def _note_row(inputs, seconds, key, rhythm, pitch):
    return {"inputs": inputs, "overall": {"note_seconds": _figure(seconds), "in_profile": _figure(key),
                                          "rhythm": _figure(rhythm)},
            "roles": {"bass": {"note_seconds": _figure(seconds), "median_pitch": _figure(pitch)}}}


@pytest.fixture
def eval_dir(tmp_path):
    results = {"meta": {"data": "/x/corpus", "songs": ["a", "b", "c"], "config": {"split": "validation"}},
               "rows": [{"inputs": "ctx+clap_b", "metrics": {"musicnn:apa": {"mean": 0.625}}},
                        {"inputs": "ctx", "metrics": {"musicnn:apa": {"mean": 0.1}}}],
               "note_rows": [_note_row("ctx+clap_b", 6.5, 0.9, 0.7, 41),
                             _note_row("real", 14.0, 0.95, 0.8, 43),
                             _note_row("random pairing", 12.0, 0.5, 0.4, 60)]}
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "text_control.json").write_text(json.dumps({"real": {"accuracy": 0.9}, "clap_b": {"accuracy": 0.75}}))
    (tmp_path / "speed.json").write_text(json.dumps({"rtf": 0.08}))
    return tmp_path


def test_summary_takes_the_model_row_with_its_bounds(eval_dir):
    f = summarise(eval_dir, eval_dir / "text_control.json", eval_dir / "speed.json")
    assert f["note_seconds"] == {"model": 6.5, "real": 14.0, "random": 12.0}
    assert f["in_key"] == {"model": 0.9, "real": 0.95, "random": 0.5}
    assert f["rhythm"] == {"model": 0.7, "real": 0.8, "random": 0.4}
    assert f["median_pitch"] == {"bass": {"model": 41.0, "real": 43.0}}
    assert f["apa_musicnn"] == 0.625 and f["text_role_control"] == 0.75 and f["rtf"] == 0.08
    assert f["songs"] == 3 and f["stems"] == 10 and f["data"] == "corpus"
    assert "text_role_control" not in summarise(eval_dir)  # not measured: left out, not guessed
    with pytest.raises(ValueError, match="no note figures for 'ctx'"):
        summarise(eval_dir, inputs="ctx")
    with pytest.raises(FileNotFoundError, match="no results.json"):
        summarise(eval_dir / "nowhere")


def test_figures_go_into_the_manifest_and_leave_the_identity(eval_dir, tmp_path):
    from bundle_fixture import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "bundle")
    before = Bundle.open(bundle).bundle_id
    files = {p.name: p.read_bytes() for p in bundle.iterdir() if p.name != "manifest.json"}
    write_figures(bundle, summarise(eval_dir, eval_dir / "text_control.json", eval_dir / "speed.json"))
    opened = Bundle.open(bundle)
    assert opened.bundle_id == before and opened.manifest["figures"]["apa_musicnn"] == 0.625
    assert {p.name: p.read_bytes() for p in bundle.iterdir() if p.name != "manifest.json"} == files
    text = "\n".join(describe_figures(opened.manifest))
    assert "6.50 note-seconds per 10 s (real parts 14.00, random parts 12.00)" in text
    assert "bass 41/43" in text and "APA (musicnn) 0.62" in text and "75% of stems" in text
    assert "real-time factor 0.080" in text
    with pytest.raises(FileNotFoundError, match="not a bundle"):
        write_figures(tmp_path / "nowhere", {})
    shutil.rmtree(bundle)
