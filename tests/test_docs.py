"""Docs that tests keep honest: every error code, setting and CLI command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click

from fieldsync.api.errors import HTTP_CODES
from fieldsync.cli import cli
from fieldsync.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
CODE_PATTERNS = [
    re.compile(r'code = "([a-z_]+)"'),
    re.compile(r'Rejected\(\s*"([a-z_]+)"'),
    re.compile(r'CaseRejection\(\s*"([a-z_]+)"'),
    re.compile(r'reason="([a-z_]+)"'),
]


def source_codes() -> set[str]:
    codes = set(HTTP_CODES.values()) | {"http_error", "internal_error"}
    for path in (ROOT / "fieldsync").rglob("*.py"):
        text = path.read_text()
        for pattern in CODE_PATTERNS:
            codes.update(pattern.findall(text))
    return codes


def test_every_error_code_is_documented() -> None:
    documented = set(re.findall(r"`([a-z_]+)`", (ROOT / "docs" / "errors.md").read_text()))
    missing = sorted(source_codes() - documented)
    assert missing == []


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [s.key for s in SETTINGS if f"`FIELDSYNC_{s.key}`" not in text]
    assert missing == []


def command_paths(group: click.Group, prefix: str = "") -> list[str]:
    paths = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, path + " "))
        else:
            paths.append(path)
    return paths


def test_every_cli_command_is_documented() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    missing = [p for p in command_paths(cli) if f"fieldsync {p}" not in text]
    assert missing == []
