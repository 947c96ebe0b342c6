"""Every numeric setting of a training stage has limits, checked where the stage is built and
where its command-line option is parsed, with one wording."""
from dataclasses import fields

import pytest

from sideman.cli import build_parser
from sideman.training import stages

STAGES = [stages.AutoencoderStage, stages.CodecStage, stages.ClapStage, stages.BridgeStage,
          stages.PairsStage, stages.DiTStage]


@pytest.mark.parametrize("kind", STAGES, ids=lambda k: k.__name__)
def test_every_number_of_a_stage_has_limits(kind):
    for f in fields(kind):
        type_name = f.type if isinstance(f.type, str) else f.type.__name__
        if type_name.split(" |")[0] in ("int", "float"):
            assert {"low", "high"} & set(f.metadata), f"{kind.__name__}.{f.name} has no limits"


@pytest.mark.parametrize("field,value,message", [
    ("batch_size", 0, "batch_size must be at least 1, got 0"),
    ("edm_lr", 0.0, "edm_lr must be above 0, got 0"),
    ("ema_decay", 1.5, "ema_decay must be within 0..1, got 1.5"),
    ("cpu_minutes", float("nan"), "cpu_minutes must be a finite number, got nan"),
    ("warmup", -1, "warmup must be at least 0, got -1"),
])
def test_a_stage_refuses_a_number_out_of_its_limits(field, value, message):
    with pytest.raises(ValueError, match=message):
        stages.DiTStage(**{field: value})
    assert getattr(stages.DiTStage(**{field: 1 if field != "ema_decay" else 0.5}), field) is not None


def test_none_passes_an_optional_setting():
    assert stages.BridgeStage(text_dropout=None).text_dropout is None
    with pytest.raises(ValueError, match="text_dropout must be within 0..1"):
        stages.BridgeStage(text_dropout=2.0)


@pytest.mark.parametrize("argv,message", [
    (["train", "dit", "--pairs", "p", "--out", "o", "--edm-steps", "0"], "--edm-steps must be at least 1, got 0"),
    (["train", "dit", "--pairs", "p", "--out", "o", "--ema-decay", "inf"], "--ema-decay must be a finite number"),
    (["dit-pairs", "--autoencoder", "band", "--data", "d", "--out", "o", "--count", "-5"],
     "--count must be at least 1, got -5"),
    (["dit-pairs", "--autoencoder", "band", "--data", "d", "--out", "o", "--jobs", "0"],
     "--jobs must be within 1..64, got 0"),
    (["train", "bridge", "--data", "d", "--clap", "c", "--out", "o", "--text-dropout", "-0.1"],
     "--text-dropout must be within 0..1, got -0.1"),
])
def test_the_command_line_refuses_it_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_limits_are_in_the_help_text(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "dit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "EDM optimiser steps (default: 1500) [at least 1]" in text
