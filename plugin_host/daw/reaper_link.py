"""REAPER link: each finished take becomes a new track, through a ReaScript action.

The host cannot call REAPER's API, but REAPER's OSC control surface can run any action.
So the link writes what the action needs into a small request file, then asks REAPER to
run `reaper/sideman_import_take.lua` (installed in the Action list; docs/daw.md):

    SESSION/daw/reaper-request.txt     key=value lines, UTF-8, written atomically:
        path        the take (absolute path of its WAV)
        anchor_ppq  where it starts, in quarter notes from the project start
        name        the track name (prompt and seed)
        instance, take_id, seed, prompt

    OSC to REAPER:  /action/str s:"_RS..."  (a script's named command id), or
                    /action i:40001         (a numeric command id)

The script converts anchor_ppq to seconds with REAPER's own tempo map, imports the file on
a new track in one undo step and renames the request to `.done`, so a repeated OSC message
never imports twice. The latest take wins: a request not yet handled is replaced.
"""
from __future__ import annotations

import logging
import socket
from pathlib import Path

from sideman.data.files import atomic_write
from sideman.plugin_host import osc_protocol as osc
from sideman.plugin_host.takes import Take
from sideman.plugin_host.daw import REAPER_DEFAULT, take_name

log = logging.getLogger("sideman.daw")
REQUEST_NAME = "reaper-request.txt"


def request_path(session: Path) -> Path:
    """Where the request goes; the script's default is the default session's copy."""
    return Path(session) / "daw" / REQUEST_NAME


def _one_line(value) -> str:
    return " ".join(str(value).splitlines()).strip()


def request_text(take: Take) -> str:
    """The request file's content for a take (one key=value per line)."""
    fields = {
        "path": str(Path(take.path).resolve()),
        "anchor_ppq": repr(float(take.anchor_ppq)),
        "name": take_name(take),
        "instance": take.instance,
        "take_id": take.take_id,
        "seed": int(take.meta.get("seed", 0)),
        "prompt": take.meta.get("prompt", ""),
    }
    lines = ["# Sideman take for REAPER: read by sideman_import_take.lua, renamed .done once imported"]
    lines += [f"{key}={_one_line(value)}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


def action_message(command: str | int) -> bytes:
    """The OSC datagram that runs `command`: /action i:<id> or /action/str s:<named id>."""
    text = str(command).strip()
    if text.isdigit():
        return osc.encode("/action", int(text))
    if not text:
        raise ValueError("empty REAPER command id")
    return osc.encode("/action/str", text)


class ReaperLink:
    """Take listener: write the request file, then ask REAPER to run the import action."""

    def __init__(self, session: Path, command: str | int,
                 reaper: tuple[str, int] = REAPER_DEFAULT):
        self.request = request_path(session)
        self.message = action_message(command)  # fails early on an empty id
        self.reaper = reaper
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def __call__(self, instance: str, take: Take) -> None:
        self.request.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.request, request_text(take).encode("utf-8"), durable=False)
        try:
            self.sock.sendto(self.message, self.reaper)
        except OSError as exc:  # REAPER not running: the request waits for a manual run
            log.warning("cannot reach REAPER at %s:%d (%s); run the Sideman import action by hand",
                        *self.reaper, exc)
            return
        log.info("asked REAPER to import %s for %s", take.take_id, instance)

    def __repr__(self) -> str:
        return f"ReaperLink({self.reaper[0]}:{self.reaper[1]})"
