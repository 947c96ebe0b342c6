"""Subcommands of `sideman`, one module per pipeline stage; each registers its parsers."""
from . import data, host, models, train

MODULES = (data, models, train, host)


def register_all(sub) -> None:
    for module in MODULES:
        module.register(sub)
