"""The `sideman` command line: one entry point, one subcommand per pipeline stage.

    sideman demo                      the README's main job: generate a part for an example song
    sideman corpus render ...         compose and render the synthetic multitrack corpus
    sideman corpus demo               render one song and write training pairs from it
    sideman data check DIR            read a multitrack data set and report its problems
    sideman pairs write ...           write training pairs as WAV files for listening
    sideman presets                   every model preset with its parameter count
    sideman train all --preset demo   train the whole stack and export the default bundle
    sideman export ...                write a model bundle (ONNX + manifest)
    sideman generate ...              generate a stem from the command line
    sideman serve ...                 the host process the DAW plugin talks to (OSC)
    sideman audition CONTEXT TAKE     hear a take over its context
"""
from __future__ import annotations

import argparse
import sys

from sideman.commands import register_all


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sideman", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    register_all(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-q" in argv or "--quiet" in argv:  # accepted anywhere, e.g. `sideman generate ... -q`
        argv = ["-q"] + [a for a in argv if a not in ("-q", "--quiet")]
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except (ValueError, RuntimeError, OSError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"sideman: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sideman: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
