"""Writing songs as Standard MIDI Files (mido): a conductor track plus one track per role."""
from __future__ import annotations

from pathlib import Path

import mido

from sideman.data.arrangement import Part, Song
from sideman.data.instruments import DRUM_CHANNEL, ROLES

TICKS_PER_BEAT = 480


def _channel(role: str) -> int:
    """Drums on the GM percussion channel; the other roles on channels 0.. in role order."""
    if role == "drums":
        return DRUM_CHANNEL
    return [r for r in ROLES if r != "drums"].index(role)


def _conductor(song: Song, end_tick: int) -> mido.MidiTrack:
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=song.song_id, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(song.tempo), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=song.beats_per_bar, denominator=4, time=0))
    track.append(mido.MetaMessage("key_signature", key=_mido_key(song), time=0))
    track.append(mido.MetaMessage("end_of_track", time=end_tick))
    return track


def _mido_key(song: Song) -> str:
    names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
    return names[song.key.tonic] + ("m" if song.key.mode == "minor" else "")


def _part_track(part: Part, end_tick: int) -> mido.MidiTrack:
    """Program, volume, pan and reverb set at tick 0, then the notes; ends at `end_tick`."""
    ch = _channel(part.role)
    setup = [
        mido.Message("program_change", channel=ch, program=part.program.program),
        mido.Message("control_change", channel=ch, control=7, value=part.volume),
        mido.Message("control_change", channel=ch, control=10, value=int(round(64 + 63 * part.pan))),
        mido.Message("control_change", channel=ch, control=91, value=part.reverb),
    ]
    events = []  # (tick, order, message): note-offs sort before note-ons at one tick
    for n in part.notes:
        on = int(round(n.start * TICKS_PER_BEAT))
        off = max(on + 1, int(round((n.start + n.duration) * TICKS_PER_BEAT)))
        if on >= end_tick:
            continue
        events.append((on, 1, mido.Message("note_on", channel=ch, note=n.pitch, velocity=n.velocity)))
        events.append((min(off, end_tick), 0, mido.Message("note_off", channel=ch, note=n.pitch, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=part.role, time=0), *setup])
    tick = 0
    for t, _, msg in events:
        track.append(msg.copy(time=t - tick))
        tick = t
    track.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - tick)))
    return track


def song_end_tick(song: Song) -> int:
    return song.total_bars * song.beats_per_bar * TICKS_PER_BEAT


def write_midi(song: Song, path: Path, roles: tuple[str, ...] | None = None) -> Path:
    """Write the song (or only `roles`) as a type-1 MIDI file; returns `path`."""
    end = song_end_tick(song)
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(_conductor(song, end))
    for role in roles or tuple(song.parts):
        mid.tracks.append(_part_track(song.parts[role], end))
    mid.save(str(path))
    return Path(path)
