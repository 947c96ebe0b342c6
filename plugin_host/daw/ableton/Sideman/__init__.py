"""Sideman for Ableton Live: a MIDI Remote Script that puts each finished take on a track.

Copy this `Sideman` folder into Live's User Library "Remote Scripts" folder and choose
"Sideman" as a Control Surface (Settings > Link, Tempo & MIDI; no MIDI ports needed). Then
run `sideman serve --ableton`: for each take the host sends /sideman/take_ready and the
script creates a new audio track with the take as an arrangement clip at its anchor
(Live 12.0.5 or later; older versions show a message instead). See docs/daw.md.
"""
from .surface import Sideman


def create_instance(c_instance):
    return Sideman(c_instance)
