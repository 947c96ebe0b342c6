"""The REAPER import action, run by lua5.4 against a fake `reaper` API (tests/lua/), and the
host-side link that writes its request file and asks REAPER to run it."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from sideman.plugin_host import osc_protocol as osc
from sideman.plugin_host.daw import REAPER_CONFIG_SCRIPT, REAPER_PATTERN, REAPER_SCRIPT
from sideman.plugin_host.daw.reaper_link import ReaperLink, action_message, request_path, request_text
from sideman.plugin_host.takes import Take

LUA = shutil.which("lua5.4")
RUNNER = Path(__file__).parent / "lua" / "run_reaper_script.lua"
needs_lua = pytest.mark.skipif(LUA is None, reason="lua5.4 is not installed (apt-get install lua5.4)")


def run_script(script: Path, *options: str, env: dict | None = None) -> dict:
    """Run a ReaScript on the fake API; returns its calls and the project afterwards."""
    proc = subprocess.run([LUA, str(RUNNER), str(script), *options], capture_output=True, text=True,
                          timeout=30, env={**os.environ, **(env or {})})
    result = {"calls": [], "tracks": [], "ext": {}, "error": None}
    for line in proc.stdout.splitlines():
        kind, *fields = line.split("\t")
        if kind == "CALL":
            result["calls"].append((fields[0], *fields[1:]))
        elif kind == "TRACK":
            items = [item.split("@", 1) for item in fields[2].split(";") if item]
            result["tracks"].append((fields[1], [(float(pos), path) for pos, path in items]))
        elif kind == "CURSOR":
            result["cursor"] = float(fields[0])
        elif kind == "UNDO_DEPTH":
            result["undo_depth"] = int(fields[0])
        elif kind == "EXT":
            result["ext"][fields[0]] = fields[1]
        elif kind == "ERROR":
            result["error"] = fields[0]
    assert proc.returncode == 0 and result["error"] is None, proc.stdout + proc.stderr
    return result


def names(result: dict) -> list[str]:
    return [call[0] for call in result["calls"]]


def make_take(session: Path, anchor: float = 12.0, prompt: str = "warm upright bass", seed: int = 42) -> Take:
    wav = session / "takes" / "take-00112233aabbccdd.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    wav.write_bytes(b"RIFF")
    return Take("take-00112233aabbccdd", "bass-1", wav, 48000, anchor, {"prompt": prompt, "seed": seed})


def write_request(session: Path, take: Take) -> Path:
    path = request_path(session)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(request_text(take), encoding="utf-8")
    return path


# A tempo map where the naive 120 bpm conversion is wrong past quarter note 8:
# 120 bpm for QN 0-8 (4 s), then 60 bpm, so QN 12 is at 4 + 4 = 8 s (not 6 s).
TEMPO = "tempo=0:120,8:60"


@needs_lua
def test_import_inserts_a_named_track_at_the_tempo_mapped_anchor(tmp_path):
    session = tmp_path / "session"
    take = make_take(session)
    request = write_request(session, take)
    result = run_script(REAPER_SCRIPT, TEMPO, "cursor=3.5", "tracks=2", env={"SIDEMAN_SESSION": str(session)})

    assert ("TimeMap2_QNToTime", "0", "12") in result["calls"]
    expected = ["Undo_BeginBlock", "InsertTrackAtIndex", "GetSetMediaTrackInfo_String", "SetOnlyTrackSelected",
                "Main_OnCommand", "SetEditCurPos", "InsertMedia", "SetEditCurPos", "Undo_EndBlock"]
    assert [n for n in names(result) if n in expected] == expected
    assert ("Main_OnCommand", "40914", "0") in result["calls"]  # the new track becomes InsertMedia's target
    calls = dict((c[0], c[1:]) for c in result["calls"] if c[0] != "SetEditCurPos")
    assert calls["InsertTrackAtIndex"] == ("2", "true")  # a new track after the existing two
    assert calls["GetSetMediaTrackInfo_String"] == ("track#3", "P_NAME", "warm upright bass (seed 42)", "true")
    assert calls["InsertMedia"] == (str(take.path.resolve()), "0")
    assert calls["Undo_EndBlock"] == ("Sideman: import take warm upright bass (seed 42)", "-1")
    cursor_moves = [c[1] for c in result["calls"] if c[0] == "SetEditCurPos"]
    assert cursor_moves == ["8", "3.5"]  # to the anchor, then back where the user had it
    # the project: the take sits on the new track at 8 s, the cursor is restored, undo closed
    assert result["tracks"][2] == ("warm upright bass (seed 42)", [(8.0, str(take.path.resolve()))])
    assert result["cursor"] == 3.5 and result["undo_depth"] == 0
    assert not request.exists() and request.with_name(request.name + ".done").exists()

    again = run_script(REAPER_SCRIPT, TEMPO, env={"SIDEMAN_SESSION": str(session)})  # never twice
    assert "InsertTrackAtIndex" not in names(again)
    assert any(c[0] == "ShowMessageBox" and "No take to import" in c[1] for c in again["calls"])


@needs_lua
def test_missing_take_file_is_reported_and_nothing_changes(tmp_path):
    session = tmp_path / "session"
    take = make_take(session)
    request = write_request(session, take)
    take.path.unlink()
    result = run_script(REAPER_SCRIPT, TEMPO, env={"SIDEMAN_SESSION": str(session)})
    boxes = [c for c in result["calls"] if c[0] == "ShowMessageBox"]
    assert len(boxes) == 1 and "is missing" in boxes[0][1] and str(take.path.resolve()) in boxes[0][1]
    assert boxes[0][2:] == ("Sideman", "0")
    assert any(c[0] == "ShowConsoleMsg" and "is missing" in c[1] for c in result["calls"])
    assert not {"InsertTrackAtIndex", "InsertMedia", "Undo_BeginBlock"} & set(names(result))
    assert result["tracks"] == [] and request.exists()  # kept, so it can be retried


@needs_lua
def test_missing_request_and_bad_requests_are_reported(tmp_path):
    home = tmp_path / "home"  # the default location: ~/.local/share/sideman/session/daw/
    result = run_script(REAPER_SCRIPT, env={"HOME": str(home), "SIDEMAN_SESSION": ""})
    box = next(c for c in result["calls"] if c[0] == "ShowMessageBox")
    assert str(home / ".local/share/sideman/session/daw/reaper-request.txt") in box[1]
    assert "does not exist" in box[1] and "InsertTrackAtIndex" not in names(result)

    bad = tmp_path / "bad.txt"
    for content, reason in (("anchor_ppq=1\n", "no path="), ("path=/x.wav\nanchor_ppq=soon\n", "anchor_ppq")):
        bad.write_text(content)
        result = run_script(REAPER_SCRIPT, f"ext.sideman/request_file={bad}")
        box = next(c for c in result["calls"] if c[0] == "ShowMessageBox")
        assert reason in box[1] and "InsertTrackAtIndex" not in names(result)


@needs_lua
def test_extstate_and_windows_profile_choose_the_request_file(tmp_path):
    session = tmp_path / "elsewhere"
    take = make_take(session, anchor=2.0)
    request = write_request(session, take)
    result = run_script(REAPER_SCRIPT, f"ext.sideman/request_file={request}",
                        env={"SIDEMAN_SESSION": str(tmp_path / "not-here")})
    assert result["tracks"] == [("warm upright bass (seed 42)", [(1.0, str(take.path.resolve()))])]

    profile = tmp_path / "profile"  # on Windows the host's ~ is %USERPROFILE%
    take = make_take(profile / ".local/share/sideman/session")
    write_request(profile / ".local/share/sideman/session", take)
    result = run_script(REAPER_SCRIPT, "os=Win64", env={"USERPROFILE": str(profile), "HOME": str(tmp_path),
                                                        "SIDEMAN_SESSION": ""})
    assert len(result["tracks"]) == 1 and result["tracks"][0][1][0][0] == 6.0  # 12 QN at 120 bpm


@needs_lua
def test_a_failed_import_removes_the_empty_track_inside_the_undo_block(tmp_path):
    session = tmp_path / "session"
    request = write_request(session, make_take(session))
    result = run_script(REAPER_SCRIPT, "insert_fails=1", "cursor=1.25", env={"SIDEMAN_SESSION": str(session)})
    sequence = names(result)
    assert sequence.index("Undo_BeginBlock") < sequence.index("DeleteTrack") < sequence.index("Undo_EndBlock")
    assert result["tracks"] == [] and result["cursor"] == 1.25 and result["undo_depth"] == 0
    assert any(c[0] == "ShowMessageBox" and "could not import" in c[1] for c in result["calls"])
    assert request.exists()


@needs_lua
def test_set_request_file_script_stores_a_persistent_extstate(tmp_path):
    result = run_script(REAPER_CONFIG_SCRIPT, f"user_input={tmp_path}/session/ ")
    assert result["ext"] == {"sideman/request_file": f"{tmp_path}/session/daw/reaper-request.txt"}
    assert ("SetExtState", "sideman", "request_file", f"{tmp_path}/session/daw/reaper-request.txt",
            "true") in result["calls"]
    cleared = run_script(REAPER_CONFIG_SCRIPT, "user_input=", "ext.sideman/request_file=/old.txt")
    assert cleared["ext"] == {} and ("DeleteExtState", "sideman", "request_file", "true") in cleared["calls"]
    cancelled = run_script(REAPER_CONFIG_SCRIPT, "ext.sideman/request_file=/old.txt")
    assert cancelled["ext"] == {"sideman/request_file": "/old.txt"}


def test_action_messages_and_request_text(tmp_path):
    assert osc.parse_datagram(action_message("_RS1a2b3c4d")) == [("/action/str", ["_RS1a2b3c4d"])]
    assert osc.parse_datagram(action_message(" 40001 ")) == [("/action", [40001])]
    assert osc.parse_datagram(action_message(40001)) == [("/action", [40001])]
    with pytest.raises(ValueError):
        action_message("  ")
    take = make_take(tmp_path, anchor=3, prompt="a\nmulti-line  = prompt", seed=-5)
    lines = request_text(take).splitlines()
    assert lines[0].startswith("#")
    fields = dict(line.split("=", 1) for line in lines[1:])
    assert fields == {"path": str(take.path.resolve()), "anchor_ppq": "3.0",
                      "name": "a multi-line = prompt (seed -5)", "instance": "bass-1",
                      "take_id": "take-00112233aabbccdd", "seed": "-5", "prompt": "a multi-line  = prompt"}


def test_link_writes_the_request_even_when_reaper_is_away(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reaper:
        reaper.bind(("127.0.0.1", 0))
        reaper.settimeout(5)
        link = ReaperLink(tmp_path, 40001, reaper.getsockname())
        link("bass-1", make_take(tmp_path))
        assert osc.parse_datagram(reaper.recv(1024)) == [("/action", [40001])]
    unreachable = ReaperLink(tmp_path, "_RSx", ("256.0.0.1", 8000))  # not an address: logged
    unreachable("bass-1", make_take(tmp_path, anchor=5.0))
    assert "anchor_ppq=5.0" in request_path(tmp_path).read_text()


def test_pattern_file_maps_both_action_forms():
    text = REAPER_PATTERN.read_text()
    lines = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == [["ACTION", "i/action", "s/action/str", "t/action/@"]]
