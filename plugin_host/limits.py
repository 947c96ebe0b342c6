"""What the host allows (`sideman serve --max-...`; docs/osc.md, "Limits"). Kept apart from
the host so that the command line reads the defaults without loading the server."""
from __future__ import annotations

import math
from dataclasses import dataclass

MAX_SECONDS = 600.0


@dataclass(frozen=True)
class Limits:
    max_instances: int = 256  # instances the session keeps (each is a file)
    max_queued: int = 32  # jobs waiting, all instances together
    max_queued_per_instance: int = 1  # jobs waiting per instance; a newer one supersedes the oldest
    max_messages: int = 16  # messages in one datagram (a bundle), so replies per datagram
    max_take_seconds: float = MAX_SECONDS  # a take's length after rounding to whole bars
    max_input_seconds: float = 2 * MAX_SECONDS  # context and style files

    def __post_init__(self):
        for name in ("max_instances", "max_queued", "max_queued_per_instance", "max_messages"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("max_take_seconds", "max_input_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 1.0):
                raise ValueError(f"{name} must be a finite number of seconds >= 1, got {value!r}")
