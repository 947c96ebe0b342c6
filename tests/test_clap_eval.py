"""CLAP evaluation: the paraphrase generator, window pairs, and `evaluate_clap` end to end."""
import csv
import json
import re

import numpy as np
import torch

from sideman.training.stages import BridgeStage
from sideman.data.layouts import read_multitrack
from sideman.models.clap_house import PRESETS as CLAP_PRESETS
from sideman.models.clap_house import HouseClap
from sideman.evaluation.clap_eval import (evaluate_clap, instrument_family, paraphrase, parse_tags,
                                        window_pairs)
from sideman.training.train_bridge import train_bridge
from test_train_clap import STEMS, HashText, make_folder_corpus

torch.set_num_threads(1)

CORPUS_TAGS = [
    ["picked electric bass", "76 bpm", "syncopated", "C minor", "moody", "intimate", "ballad", "slow", "low",
     "3/4 time", "bass"],
    ["standard drum kit", "slow", "acoustic", "ballad", "76 bpm", "half-time groove", "kit", "C minor", "drums"],
    ["rhodes electric piano", "warm", "upbeat", "comping", "electric piano", "D major", "mid", "funk", "groovy"],
    ["distortion guitar", "fast", "power chords", "E minor", "rock", "heavy", "raw"],
    ["alto sax", "jazzy", "smooth", "legato melody", "Bb major", "140 bpm", "jazz"],
    ["halo pad", "ambient", "ethereal", "drone"],
    ["harmonica"],
]


def test_parse_tags_reads_the_slots():
    s = parse_tags(CORPUS_TAGS[0])
    assert (s.instrument, s.family, s.register, s.tempo, s.bpm) == ("picked electric bass", "bass", "low", "slow", 76)
    assert (s.key, s.genre, s.meter) == (("C", "minor"), "ballad", "3/4 time")
    assert s.styles == ["syncopated"] and s.words == ["moody", "intimate"]


def test_paraphrases_are_deterministic_varied_and_unlike_the_tags():
    hit_fractions = []
    for tags in CORPUS_TAGS + list(STEMS.values()):
        prompts = [paraphrase(tags, v) for v in range(4)]
        assert prompts == [paraphrase(list(tags), v) for v in range(4)]          # deterministic
        assert len(set(prompts)) >= (2 if len(tags) > 1 else 1)
        caption = ", ".join(tags)
        for p in prompts:
            assert p and p != caption and caption not in p
            assert not set(p.split(", ")) <= set(tags)                     # not a list of the tags
            rest = tags[1:]
            hits = [t for t in rest if re.search(r"(?<![\w-])" + re.escape(t) + r"(?![\w-])", p)]
            hit_fractions.append(len(hits) / max(1, len(rest)))
    assert np.mean(hit_fractions) < 0.35       # most tags are reworded, not copied
    assert "beats per minute" in " ".join(paraphrase(CORPUS_TAGS[4], v) for v in range(8))
    assert paraphrase(["picked electric bass"]) in ("a bass guitar played with a pick", "a pick bass")


def test_family_and_window_pairs(tmp_path):
    data = read_multitrack(make_folder_corpus(tmp_path, train=1, val=0, seconds=6.0))
    song = data.songs[0]
    families = {s.name: instrument_family(s) for s in song.stems}
    assert families == {"bass": "bass", "drums": "drums", "lead": "woodwind", "pads": "synth pad"}
    bass = next(s for s in song.stems if s.name == "bass")
    pairs = window_pairs(bass, song.frames, 48_000, 5, np.random.default_rng(0))
    assert len(pairs) == 5
    for ref, other in pairs:
        assert abs(ref - other) >= 48_000 - 4096 and ref % 4096 == 0 and other % 4096 == 0
    assert pairs == window_pairs(bass, song.frames, 48_000, 5, np.random.default_rng(0))


def test_evaluate_clap_end_to_end(tmp_path):
    corpus = make_folder_corpus(tmp_path / "data", train=3, val=2, seconds=5.0)
    torch.manual_seed(0)
    HouseClap(CLAP_PRESETS["tiny"]).save(tmp_path / "clap.pt")
    common = dict(validation_fraction=0.5, cache_dir=tmp_path / "cache", text_encoder=HashText())
    stage = BridgeStage(preset="tiny", steps=30, batch_size=32, lr=2e-3, warmup=5, log_every=10, ckpt_every=30,
                        segments_per_stem=4, caption_variants_per_stem=2, validation_fraction=0.5)
    bridge = train_bridge(tmp_path / "clap.pt", corpus, tmp_path / "bridge", stage, progress=False,
                          cache_dir=common["cache_dir"], text_encoder=common["text_encoder"])
    out = tmp_path / "eval"
    res = evaluate_clap(tmp_path / "clap.pt", bridge, corpus, out, pairs_per_stem=3, steps=8, **common)
    for name in ("report.md", "gap.csv", "retrieval.csv", "prompts.csv", "gap_pca.png", "results.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "results.json").read_text())["info"]["stems"] == 8
    gap = {r["set"]: r for r in res["gap"]}
    a, b, c = gap["(a) text, paraphrase"], gap["(b) bridge, paraphrase"], gap["(c) audio, other windows"]
    assert a["n"] == b["n"] == c["n"] == gap["bridge, paraphrase, guidance 2"]["n"] == 8 * 3
    # Even from an untrained CLAP, the bridge lands in the audio region, which raw text does not.
    assert b["mean_cosine"] > a["mean_cosine"] and b["fad"] < a["fad"]
    rows = list(csv.DictReader(open(out / "retrieval.csv")))
    queries = ("text", "bridge", "bridge, guidance 2")
    assert {(r["query"], r["relevance"]) for r in rows} == {(q, k) for q in queries for k in ("family", "role", "stem")}
    for r in res["retrieval"]:
        assert 0.0 <= r["R@1"] <= r["R@10"] <= 1.0
    family_r10 = {r["query"]: r["R@10"] for r in res["retrieval"] if r["relevance"] == "family"}
    assert family_r10 == {q: 1.0 for q in queries}          # 8 items, 4 families: top 10 holds all
    report = (out / "report.md").read_text()
    assert "R@1" in report and "(b) bridge, paraphrase" in report
