"""Host commands: the OSC server for DAW plugins, and auditioning a take."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sideman.commands.options import add_number
from sideman.plugin_host.bundle import PRECISION_HELP, PRECISIONS
from sideman.plugin_host.daw import add_arguments as add_daw_arguments


def _serve(args: argparse.Namespace) -> int:
    from sideman.defaults import default_bundle, host_cache_dir, models_dir, session_dir
    from sideman.plugin_host.engine import OnnxEngine
    from sideman.plugin_host.daw import links_from_args
    from sideman.plugin_host.host import Host
    from sideman.plugin_host.limits import Limits
    from sideman.plugin_host.models import ModelShelf

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    session = args.session or session_dir()
    links = links_from_args(args, session)  # option mistakes surface before the model loads
    limits = Limits(max_instances=args.max_instances, max_queued=args.max_queued,
                    max_queued_per_instance=args.max_queued_per_instance, max_messages=args.max_bundle,
                    max_take_seconds=args.max_seconds, max_input_seconds=args.max_input_seconds)
    bundle = args.bundle or default_bundle()
    engine = OnnxEngine(bundle, intra_threads=args.threads, precision=args.precision)
    shelf = ModelShelf(engine, args.models or models_dir(),
                       loader=lambda path: OnnxEngine(path, intra_threads=args.threads, precision=args.precision))
    host = Host(engine, session, args.cache or host_cache_dir(), host=args.host, port=args.port,
                bundle_name=engine.bundle.manifest.get("name", ""), limits=limits, models=shelf)
    host.take_listeners += links
    address = f"{host.address[0]}:{host.address[1]}"
    print(f"sideman host listening on udp://{address} (bundle {bundle})", flush=True)
    print(f"session folder: {host.session.resolve()}; context cache: {host.cache.resolve()}", flush=True)
    print(f"models: {', '.join(shelf.names())} (bundles in {shelf.models_dir})", flush=True)
    for link in links:
        print(f"DAW link: {link!r}", flush=True)
    host.start()
    try:
        host.wait()
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        host.stop()
    return 0


def _audition(args: argparse.Namespace) -> int:
    from sideman.plugin_host.audition import audition

    audition(args.context, args.take, args.take_gain, args.audio, args.loop)
    return 0


def register(sub) -> None:
    from sideman.plugin_host.limits import Limits

    defaults = Limits()
    serve = sub.add_parser("serve", help="serve DAW plugins over OSC (UDP)")
    serve.add_argument("--bundle", type=Path, help="model bundle (default: the embedded one)")
    serve.add_argument("--models", type=Path, help="folder of more bundles, one folder each, that plugins "
                                                   "can switch to (default: $SIDEMAN_MODELS or "
                                                   "~/.local/share/sideman/models)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: loopback; any other address is warned "
                            "about: the host has no authentication)")
    add_number(serve, "--port", low=0, high=65535, default=9050,
               help="UDP port to listen on; 0 picks a free one (default: 9050, the plugin's)")
    serve.add_argument("--session", type=Path, help="session folder (takes, instances)")
    serve.add_argument("--cache", type=Path, help="folder plugins write context files into")
    add_number(serve, "--threads", low=0, default=0, help="onnxruntime threads (0: all cores)")
    serve.add_argument("--precision", default="auto", choices=PRECISIONS,
                       help=PRECISION_HELP)
    limits = serve.add_argument_group("limits (docs/osc.md)")
    add_number(limits, "--max-instances", low=1, default=defaults.max_instances,
                        help=f"plugin instances the session keeps (default {defaults.max_instances})")
    add_number(limits, "--max-queued", low=1, default=defaults.max_queued,
                        help=f"generation jobs waiting, all instances together (default {defaults.max_queued})")
    add_number(limits, "--max-queued-per-instance", low=1, default=defaults.max_queued_per_instance,
                        help="jobs waiting per instance; a newer request supersedes the oldest "
                             f"(default {defaults.max_queued_per_instance})")
    add_number(limits, "--max-bundle", low=1, default=defaults.max_messages,
                        help="messages in one datagram, so replies per datagram; a larger bundle is "
                             f"refused whole with one error (default {defaults.max_messages})")
    add_number(limits, "--max-seconds", kind=float, low=1, unit="s", default=defaults.max_take_seconds,
                        help=f"a take's length after rounding to whole bars (default {defaults.max_take_seconds:g})")
    add_number(limits, "--max-input-seconds", kind=float, low=1, unit="s", default=defaults.max_input_seconds,
                        help=f"length of context and style files (default {defaults.max_input_seconds:g})")
    add_daw_arguments(serve)
    serve.set_defaults(func=_serve)

    aud = sub.add_parser("audition", help="play a take over its context on the sound card (pyo)")
    aud.add_argument("context", type=Path, help="the song (an audio file)")
    aud.add_argument("take", type=Path, help="the generated take to play over it")
    add_number(aud, "--take-gain", kind=float, low=-60, high=24, unit="dB", default=0.0,
               help="gain of the take against the context")
    aud.add_argument("--audio", default="portaudio", choices=("portaudio", "jack"),
                     help="the sound card's driver (default: portaudio)")
    aud.add_argument("--loop", action="store_true", help="play until interrupted")
    aud.set_defaults(func=_audition)
