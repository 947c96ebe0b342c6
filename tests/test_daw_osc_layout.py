"""The Open Stage Control layout (docs/open-stage-control/sideman.json) against the host.

Every widget is walked and the messages it would send are built the way Open Stage Control
builds them (@{id} resolved from the other widgets, preArgs then the value, typeTags), then
checked by the host's own parser and finally sent to a real host, so the layout can never
drift from the OSC address space.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from sideman.plugin_host import osc_protocol as osc
from sideman.plugin_host.host import Host
from test_host import Client

LAYOUT = Path(__file__).resolve().parents[1] / "docs" / "open-stage-control" / "sideman.json"
SENDING = {"input", "button", "fader", "knob", "switch", "dropdown"}
SILENT = {"root", "panel", "text"}  # containers and labels: never sent from
REFERENCE = re.compile(r"@\{([^{}.]+)\}")


def walk(widget: dict):
    yield widget
    for child in widget.get("widgets", []) + widget.get("tabs", []):
        yield from walk(child)


def load_widgets() -> dict[str, dict]:
    session = json.loads(LAYOUT.read_text())
    assert session["type"] == "session" and session["content"]["type"] == "root"
    widgets = {}
    for widget in walk(session["content"]):
        assert widget["id"] not in widgets, f"duplicate id {widget['id']}"
        widgets[widget["id"]] = widget
    return widgets


def resolve(value, values: dict):
    """A property as Open Stage Control resolves it: @{id} is that widget's value, and a
    string that then reads as JSON becomes that JSON value; arrays element by element."""
    if isinstance(value, list):
        return [resolve(v, values) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match):
        assert match.group(1) in values, f"@{{{match.group(1)}}} names no widget"
        found = values[match.group(1)]
        return found if isinstance(found, str) else json.dumps(found)

    text = REFERENCE.sub(substitute, value)
    try:
        return json.loads(text)
    except ValueError:
        return text


def coerce(value, tag: str):
    """What the OSC sender does with a value under a type tag (osc.js: ToInt32, Number, String)."""
    if tag == "i":
        return int(float(value))
    if tag == "f":
        return float(value)
    assert tag == "s", f"type tag {tag!r}: the host only takes i, f and s from a surface"
    return str(value)


def messages(widget: dict, values: dict) -> list[tuple[str, str, list]]:
    """(address, type tags, args) for every message a user gesture on `widget` sends."""
    if widget["type"] in SILENT or widget.get("bypass"):
        return []
    assert widget["type"] in SENDING, f"unknown widget type {widget['type']} ({widget['id']})"
    pre = resolve(widget.get("preArgs", ""), values)
    pre = [] if pre == "" else pre if isinstance(pre, list) else [pre]
    if widget["type"] == "button":
        mode = widget.get("mode", "toggle")
        finals = {"momentary": [[]], "tap": [[widget.get("on", 1)]]}.get(
            mode, [[widget.get("on", 1)], [widget.get("off", 0)]])
    else:
        finals = [[values[widget["id"]]]]
    address = resolve(widget["address"], values)
    tags = widget["typeTags"]
    out = []
    for final in finals:
        args = pre + final
        assert len(tags) == len(args), f"{widget['id']}: typeTags {tags!r} for {len(args)} arguments"
        out.append((address, tags, [coerce(a, t) for a, t in zip(args, tags)]))
    return out


def initial_values(widgets: dict) -> dict:
    return {wid: w.get("default", w.get("value", "")) for wid, w in widgets.items()}


def parse(address: str, tags: str, args: list) -> osc.Request:
    """Through the wire and the host's parser, exactly as the host will see it."""
    builder = OscMessageBuilder(address)
    for value, tag in zip(args, tags):
        builder.add_arg(value, tag)
    [(address, params)] = osc.parse_datagram(builder.build().dgram)
    return osc.parse_request(address, params)


def check(widget: dict, values: dict) -> list[str]:
    """The verbs a widget sends; fails on anything the host would refuse or read differently."""
    verbs = []
    for address, tags, args in messages(widget, values):
        request = parse(address, tags, args)
        assert request.instance == values["instance"] and request.req == 0
        kinds = "".join(kind for _, kind in osc.INSTANCE_VERBS[request.verb])
        assert tags == kinds, f"{widget['id']}: sends {tags}, {request.verb} takes {kinds}"
        assert resolve(widget["target"], values) == values["host"] and widget.get("ignoreDefaults")
        verbs.append(request.verb)
    return verbs


@pytest.mark.parametrize("instance", ["bass-1", "keys_2.b"])
def test_every_widget_sends_a_valid_request_for_the_chosen_instance(instance):
    widgets = load_widgets()
    values = dict(initial_values(widgets), instance=instance, prompt="warm upright bass",
                  take="take-0123456789abcdef")
    verbs = [verb for widget in widgets.values() for verb in check(widget, values)]
    assert sorted(verbs) == sorted(["prompt", "seed", "steps", "guidance", "generate", "cancel",
                                    "take/select", "status", "loop", "clap_mix", "vary", "inpaint",
                                    "take/list", "take/rename", "take/star", "take/delete", "take/restore",
                                    "models", "model"])
    assert re.fullmatch(widgets["instance"]["validation"], instance)


@pytest.mark.parametrize("drift", [
    {"typeTags": "isffiii"},                                # bpm sent as int32
    {"address": "/sideman/@{instance}/generat"},            # unknown verb
    {"preArgs": ["", "@{seconds}", "@{anchor_ppq}", "@{bpm}", "@{beats_per_bar}", "@{sample_rate}"]},  # no req id
    {"preArgs": [0, "", "@{seconds}", "@{anchor_ppq}", "@{bpm}", "@{beats_per_bar}"], "typeTags": "isfffi"},
    {"mode": "tap"},                                       # would append its on value
])
def test_a_drifted_widget_is_caught(drift):
    widgets = load_widgets()
    values = dict(initial_values(widgets), instance="bass-1")
    with pytest.raises((AssertionError, osc.ProtocolError)):
        check(dict(widgets["generate"], **drift), values)


def test_layout_reads_its_parameters_from_the_right_widgets():
    widgets = load_widgets()
    values = dict(initial_values(widgets), guidance_context=2.5, guidance_clap=0.75, seconds=6,
                  anchor_ppq=16, bpm=93.5, beats_per_bar=3, sample_rate=44100)
    [(_, tags, args)] = messages(widgets["set_guidance"], values)
    assert parse("/sideman/a/guidance", tags, args).args == {"req": 0, "context": 2.5, "clap": 0.75}
    [(_, tags, args)] = messages(widgets["generate"], values)
    assert parse("/sideman/a/generate", tags, args).args == {
        "req": 0, "context": "", "seconds": 6.0, "anchor_ppq": 16.0, "bpm": 93.5,
        "beats_per_bar": 3, "sample_rate": 44100}


class QuietEngine:
    """A stand-in engine (the layout test is about messages, not the model)."""

    sample_rate, bundle_id, max_steps = 48000, "quiet-engine", 8

    def generate(self, context, seconds, settings, progress, controls=None):
        for step in range(settings.steps):
            progress(step + 1, settings.steps)
        rng = np.random.default_rng(settings.seed)
        return 0.1 * rng.standard_normal((2, int(seconds * self.sample_rate))).astype(np.float32)


def test_the_host_accepts_every_message_of_the_layout(tmp_path):
    host = Host(QuietEngine(), tmp_path / "session", tmp_path / "cache", port=0).start()
    try:
        plugin, surface = Client(host), Client(host)
        plugin.hello("bass-1")  # the plugin registers the instance; the surface only controls it
        widgets = load_widgets()
        values = dict(initial_values(widgets), instance="bass-1", prompt="brushed snare groove",
                      seed=7, steps=3, guidance_context=2.5, guidance_clap=0.5, seconds=2)

        def gesture(widget_id: str) -> list:
            [(address, tags, args)] = messages(widgets[widget_id], values)
            builder = OscMessageBuilder(address)
            for value, tag in zip(args, tags):
                builder.add_arg(value, tag)
            surface.send_raw(builder.build().dgram)
            verb = "done" if widget_id in ("generate", "vary", "inpaint") else "take" if widget_id == "take" else \
                "end" if widget_id in ("take_list", "models") else \
                "status" if widget_id == "status" else "ack"
            replies = surface.until(verb, 0)
            assert not any(a.endswith("/error") for a, _ in replies), (widget_id, replies)
            return replies[-1][1]

        for widget_id in ("prompt", "seed", "steps", "set_guidance"):
            gesture(widget_id)
        state = host.instances.state("bass-1")
        assert (state.prompt, state.seed, state.steps) == ("brushed snare groove", 7, 3)
        assert (state.guidance_context, state.guidance_clap) == (2.5, 0.5)

        _, take_id, path, anchor = gesture("generate")
        assert Path(path).is_file() and anchor == 0.0
        values["take"] = take_id
        assert gesture("take")[1] == take_id
        assert gesture("status")[1:] == ["idle", 0, take_id, 1, 0]
        assert gesture("cancel") == [0, "cancel: nothing to cancel"]
        values.update(loop=1, clap_mix=0.75, strength=0.3)
        gesture("loop")
        gesture("clap_mix")
        assert (host.instances.state("bass-1").loop, host.instances.state("bass-1").clap_mix) == (True, 0.75)
        varied = gesture("vary")[1]
        assert json.loads(Path(host.takes.get(varied).path).with_suffix(".json").read_text())["from_take"] == take_id
        assert gesture("take_list")[1:] == [0, 2]  # take/end: offset, total
        assert gesture("models")[1:] == [1]        # model/end: the default model only
        gesture("model")
        values.update(take=take_id, take_name="first idea")
        gesture("take_rename")
        gesture("take_star")
        assert host.instances.state("bass-1").names == {take_id: "first idea"}
        assert host.instances.state("bass-1").starred == [take_id]
        gesture("take_delete")
        gesture("take_restore")
        values["take"] = varied
        gesture("take")
        inpainted = gesture("inpaint")[1]  # bar 0..1 of the variation, selected again
        assert json.loads(Path(host.takes.get(inpainted).path).with_suffix(".json").read_text())["inpainted_bars"] == [0, 1]
    finally:
        host.stop()
