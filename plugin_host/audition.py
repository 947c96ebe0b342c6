"""`sideman audition CONTEXT TAKE`: hear a take over its context through the sound card (pyo)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import soundfile as sf

os.environ.setdefault("PYO_GUI_WX", "0")
import pyo  # noqa: E402


def audition(context: Path, take: Path, take_gain_db: float = 0.0, audio: str = "portaudio",
             loop: bool = False) -> None:
    """Play context and take together until the longer ends (or forever with `loop`).

    `audio` is the pyo backend: 'portaudio' or 'jack'. Ctrl-C stops playback.
    """
    for path in (context, take):
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such audio file: {path}")
    rate = sf.info(str(take)).samplerate
    seconds = max(sf.info(str(context)).duration, sf.info(str(take)).duration)
    server = pyo.Server(sr=rate, nchnls=2, duplex=0, audio=audio)
    server.setVerbosity(1)
    server.boot()
    if not server.getIsBooted():
        raise RuntimeError(f"could not open the sound card with pyo's '{audio}' backend")
    try:
        ctx = pyo.SfPlayer(str(context), loop=loop).out()
        tk = pyo.SfPlayer(str(take), loop=loop, mul=10 ** (take_gain_db / 20)).out()
        server.start()
        print(f"playing {context} + {take} ({seconds:.1f} s); Ctrl-C stops")
        deadline = time.monotonic() + seconds + 0.2
        while loop or time.monotonic() < deadline:
            time.sleep(0.1)
        del ctx, tk
    finally:
        server.stop()
        server.shutdown()
