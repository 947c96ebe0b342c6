"""One rule for numeric settings, one wording for its messages: "--steps must be within
1..8, got 0". Used by the command line (sideman.commands.options) and by the stage
dataclasses (training.stages), which check their fields at construction."""
from __future__ import annotations

import math

__all__ = ["range_rule", "check_number"]


def range_rule(low=None, high=None, above: bool = False, unit: str = "") -> str:
    """'within 0..1', 'at least 1', 'above 0 s', ... as the messages and help texts say it."""
    u = f" {unit}" if unit else ""
    low, high = _text(low), _text(high)
    if low is not None and high is not None:
        return f"within {low}..{high}{u}" if not above else f"above {low} and at most {high}{u}"
    if low is not None:
        return f"{'above' if above else 'at least'} {low}{u}"
    return f"at most {high}{u}" if high is not None else "a finite number"


def _text(value) -> str | None:
    """1000000 for an int, 0.5 for a float (never 1e+06 for a count)."""
    if value is None:
        return None
    return str(value) if isinstance(value, int) else f"{value:g}"


def check_number(name: str, value, low=None, high=None, above: bool = False, unit: str = "",
                 fail=None) -> None:
    """Calls fail(message), by default raising ValueError, unless `value` is finite and in range."""
    def error(message: str):
        if fail is None:
            raise ValueError(message)
        fail(message)

    if isinstance(value, float) and not math.isfinite(value):
        error(f"{name} must be a finite number, got {value}")
    elif ((low is not None and (value <= low if above else value < low))
          or (high is not None and value > high)):
        error(f"{name} must be {range_rule(low, high, above, unit)}, got {_text(value)}")
