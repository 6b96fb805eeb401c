"""``fieldsync forms ...``"""

from __future__ import annotations

import json

import click

from fieldsync.cli.base import CliContext, pass_cli
from fieldsync.errors import FieldsyncError
from fieldsync.services import forms as forms_service


@click.group("forms")
def forms_group() -> None:
    """Validate, publish, list and retire form versions."""


@forms_group.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(paths: tuple[str, ...]) -> None:
    """Check form documents without storing them. Lists every problem with its path."""
    failed = 0
    for path in paths:
        try:
            form = forms_service.check(forms_service.read_document(path), path)
        except FieldsyncError as exc:
            failed += 1
            click.echo(exc.detail, err=True)
            for error in exc.errors or []:
                click.echo(f"  {path}: {error['path']}: {error['message']}", err=True)
            continue
        click.echo(f"{path}: ok ({form.form_id} v{form.version}, {form.content_hash[:19]}...)")
    if failed:
        raise click.exceptions.Exit(1)


@forms_group.command("publish")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--draft", is_flag=True, help="Store as drafts instead of publishing.")
@pass_cli
def publish(ctx: CliContext, paths: tuple[str, ...], draft: bool) -> None:
    """Publish form documents (all checked first; nothing is stored if one is invalid)."""
    documents = [(path, forms_service.read_document(path)) for path in paths]
    for path, document in documents:
        forms_service.check(document, path)
    with ctx.app.app_context():
        for path, document in documents:
            outcome = forms_service.save(document, publish=not draft, source=path)
            click.echo(outcome.message)


@forms_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def list_(ctx: CliContext, as_json: bool) -> None:
    """List stored form versions with their state and hash."""
    with ctx.app.app_context():
        rows = [forms_service.describe(r) for r in forms_service.list_versions()]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no forms")
        return
    click.echo(f"{'FORM':32} {'VER':>3} {'STATE':9} HASH")
    for r in rows:
        click.echo(f"{r['form_id']:32} {r['version']:>3} {r['state']:9} {r['hash'][:19]}...")


@forms_group.command("retire")
@click.argument("form_id")
@click.argument("version", type=int)
@pass_cli
def retire(ctx: CliContext, form_id: str, version: int) -> None:
    """Retire a published version: devices stop offering it; filled copies are still accepted."""
    with ctx.app.app_context():
        click.echo(forms_service.retire(form_id, version).message)


COMMANDS = [forms_group]
