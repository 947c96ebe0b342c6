"""The `sideman` command line: one entry point, one subcommand per pipeline stage.

Start with `sideman demo` (the README's main job). `sideman COMMAND --help` shows each
command's options; the README's "Commands" table lists them all.
"""
from __future__ import annotations

import argparse
import sys

from sideman.commands import register_all

# What the `train` extra adds to the runtime (pyproject.toml): training, export, evaluation.
TRAIN_EXTRA_MODULES = {"torch", "transformers", "onnx", "sentence_transformers"}


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
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAIN_EXTRA_MODULES:
            raise
        print(f"sideman: error: `sideman {args.command}` needs {exc.name}, which comes with the training "
              f"extra: pip install '.[train]' in Sideman's source folder (the runtime alone has no torch)",
              file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, OSError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"sideman: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sideman: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
