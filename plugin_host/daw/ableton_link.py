"""Ableton Live link: tell the `Sideman` remote script that a take is ready.

The remote script (ableton/Sideman, installed in Live's Remote Scripts folder and chosen as
a Control Surface) listens on UDP 127.0.0.1:9061. For each finished take the host sends

    /sideman/take_ready  s:path  f:anchor_beats  s:name

and the script creates a new audio track named `name` with an arrangement clip of `path`
at `anchor_beats` (quarter notes; Live 12.0.5+). UDP needs no connection: when Live is not
running the message is simply lost and the take stays in the plugin.
"""
from __future__ import annotations

import logging
import socket
from pathlib import Path

from sideman.plugin_host import osc_protocol as osc
from sideman.plugin_host.takes import Take
from sideman.plugin_host.daw import ABLETON_DEFAULT, take_name

log = logging.getLogger("sideman.daw")
ADDRESS = "/sideman/take_ready"


def take_ready_message(take: Take) -> bytes:
    return osc.encode(ADDRESS, str(Path(take.path).resolve()), float(take.anchor_ppq), take_name(take))


class AbletonLink:
    """Take listener: send /sideman/take_ready to the remote script in Live."""

    def __init__(self, live: tuple[str, int] = ABLETON_DEFAULT):
        self.live = live
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def __call__(self, instance: str, take: Take) -> None:
        try:
            self.sock.sendto(take_ready_message(take), self.live)
        except OSError as exc:
            log.warning("cannot reach Live at %s:%d: %s", *self.live, exc)
            return
        log.info("sent %s of %s to Live", take.take_id, instance)

    def __repr__(self) -> str:
        return f"AbletonLink({self.live[0]}:{self.live[1]})"
