"""FieldSync: offline-first field data collection server for probation services.

Importing this package runs nothing and imports no web framework, so that the pure modules in
``fieldsync.core`` can be used by the tablet client on their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["create_app"]


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask application (see :mod:`fieldsync.app`)."""
    from fieldsync.app import build_app

    return build_app(config)
