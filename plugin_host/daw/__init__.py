"""DAW links: put each finished take on a new track of the DAW, next to the plugin.

A link is a take listener (`Host.take_listeners`): the host calls it with the instance id
and the Take after every `done` reply, on the job worker thread. Links only send one small
UDP datagram (and, for REAPER, write one small file), so they never hold up the queue.

    ReaperLink   writes SESSION/daw/reaper-request.txt, then runs the ReaScript action
                 `reaper/sideman_import_take.lua` through REAPER's OSC control surface
    AbletonLink  sends /sideman/take_ready to the `ableton/Sideman` remote script in Live

Resource files shipped with this package (see docs/daw.md for where they go):
`reaper/sideman_import_take.lua`, `reaper/sideman_set_request_file.lua`,
`reaper/Sideman.ReaperOSC` and the Live remote script folder `ableton/Sideman/`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # kept light: `sideman --help` imports this module for its options
    from sideman.plugin_host.takes import Take

RESOURCES = Path(__file__).resolve().parent
REAPER_SCRIPT = RESOURCES / "reaper" / "sideman_import_take.lua"
REAPER_CONFIG_SCRIPT = RESOURCES / "reaper" / "sideman_set_request_file.lua"
REAPER_PATTERN = RESOURCES / "reaper" / "Sideman.ReaperOSC"
ABLETON_SCRIPT = RESOURCES / "ableton" / "Sideman"
MAX_NAME = 120
REAPER_DEFAULT = ("127.0.0.1", 8000)  # REAPER's usual OSC listen port
ABLETON_DEFAULT = ("127.0.0.1", 9061)  # where the remote script listens


def take_name(take: Take) -> str:
    """The track name for a take: its prompt and seed, e.g. 'warm upright bass (seed 42)'."""
    prompt = " ".join(str(take.meta.get("prompt", "")).split()) or "Sideman take"
    if len(prompt) > MAX_NAME:
        prompt = prompt[:MAX_NAME - 3].rstrip() + "..."
    return f"{prompt} (seed {take.meta.get('seed', 0)})"


def parse_endpoint(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """'HOST:PORT' or 'PORT' -> (host, port)."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not HOST:PORT or PORT") from None
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError(f"port {number} is out of range")
    return host or default_host, number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `sideman serve` options that attach DAW links."""
    group = parser.add_argument_group("DAW links (put each take on a new track; docs/daw.md)")
    group.add_argument("--reaper", type=parse_endpoint, nargs="?", const=REAPER_DEFAULT, metavar="HOST:PORT",
                       help="REAPER's OSC control surface (default 127.0.0.1:8000, its usual listen port)")
    group.add_argument("--reaper-action", metavar="ID",
                       help="command id of sideman_import_take.lua from REAPER's Action list "
                            "('_RS...' or a number); required with --reaper")
    group.add_argument("--ableton", type=parse_endpoint, nargs="?", const=ABLETON_DEFAULT, metavar="HOST:PORT",
                       help="the Sideman remote script in Live (default 127.0.0.1:9061, where it listens)")


def links_from_args(args: argparse.Namespace, session: Path) -> list:
    """The take listeners that `args` ask for (empty when no DAW option is given)."""
    from sideman.plugin_host.daw.ableton_link import AbletonLink
    from sideman.plugin_host.daw.reaper_link import ReaperLink

    links = []
    if args.reaper:
        if not args.reaper_action:
            raise SystemExit("--reaper needs --reaper-action ID (copy it from REAPER's Action list)")
        links.append(ReaperLink(session, args.reaper_action, args.reaper))
    elif args.reaper_action:
        raise SystemExit("--reaper-action needs --reaper HOST:PORT")
    if args.ableton:
        links.append(AbletonLink(args.ableton))
    return links
