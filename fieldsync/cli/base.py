"""The ``fieldsync`` command group, its context object, and the one place errors are mapped."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from fieldsync.errors import FieldsyncError


class CliContext:
    """Creates the application once, on first use, so ``--help`` needs no database."""

    def __init__(self) -> None:
        self._app: Flask | None = None

    @property
    def app(self) -> Flask:
        if self._app is None:
            from fieldsync import create_app

            self._app = create_app()
        return self._app

    def close(self) -> None:
        """Release the database connections (the CLI may run inside a longer process)."""
        if self._app is not None:
            from fieldsync.extensions import db

            with self._app.app_context():
                db.session.remove()
                db.engine.dispose()


class FieldsyncGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FieldsyncError as exc:
            raise click.ClickException(exc.detail) from None
        except SQLAlchemyError as exc:
            from fieldsync.database import first_line

            raise click.ClickException(f"database error: {first_line(exc)}") from None


pass_cli = click.make_pass_decorator(CliContext, ensure=True)


@click.group(cls=FieldsyncGroup)
@click.version_option(package_name="fieldsync")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """FieldSync server: set up, serve, and administer."""
    ctx.call_on_close(ctx.ensure_object(CliContext).close)


