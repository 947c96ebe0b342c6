"""The `sideman` command line: one entry point, one subcommand per pipeline stage."""
import sys


def main(argv=None) -> int:
    print("sideman", argv or sys.argv[1:])
    return 0
