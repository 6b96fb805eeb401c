"""The ``fieldsync`` operator CLI. Every error is one line on stderr and a non-zero exit."""

from __future__ import annotations

from fieldsync.cli import cases, devices, forms, setup, users
from fieldsync.cli.base import cli

__all__ = ["cli", "main"]

for module in (setup, users, forms, devices, cases):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    cli(prog_name="fieldsync")
