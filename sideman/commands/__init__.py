"""Subcommands of `sideman`, one module per pipeline stage; each registers its parsers."""
from sideman.commands import codec, data, demo, evaluate, host, models, train

MODULES = (demo, data, models, train, codec, host, evaluate)


def register_all(sub) -> None:
    for module in MODULES:
        module.register(sub)
