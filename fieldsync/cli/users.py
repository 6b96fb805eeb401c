"""``fieldsync users ...``"""

from __future__ import annotations

import json
import sys

import click

from fieldsync.cli.base import CliContext, pass_cli
from fieldsync.models import ROLES
from fieldsync.services import users as users_service


@click.group("users")
def users_group() -> None:
    """Manage user accounts."""


@users_group.command("add")
@click.argument("name")
@click.option("--role", required=True, help=f"One of: {', '.join(ROLES)}.")
@click.option("--service", "service", help="Probation service code (officers need one).")
@click.option("--site", "site", help="Community-work site code (supervisors need one).")
@click.option("--display-name", default="", help="Full name shown to reviewers.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--no-password", is_flag=True, help="Create without a password (device-only "
              "users such as officers enrol with codes).")
@pass_cli
def add(ctx: CliContext, name: str, role: str, service: str | None, site: str | None,
        display_name: str, password_stdin: bool, no_password: bool) -> None:
    """Create user NAME. Prints a generated password unless told otherwise."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    with ctx.app.app_context():
        created = users_service.add_user(
            name, role, service=service, site=site, display_name=display_name,
            password=password, generate_password=not (password_stdin or no_password),
        )
        click.echo(f"created {created.user.role} {created.user.username}")
        if created.password and not password_stdin:
            click.echo(f"password: {created.password}")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def list_(ctx: CliContext, as_json: bool) -> None:
    """List users with their role, service and site."""
    with ctx.app.app_context():
        rows = [
            {
                "username": u.username,
                "role": u.role,
                "service": u.service.code if u.service else None,
                "site": u.site.code if u.site else None,
                "active": u.active,
            }
            for u in users_service.list_users()
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no users")
        return
    click.echo(f"{'USERNAME':20} {'ROLE':11} {'SERVICE':8} {'SITE':10} ACTIVE")
    for r in rows:
        click.echo(f"{r['username']:20} {r['role']:11} {r['service'] or '-':8} "
                   f"{r['site'] or '-':10} {'yes' if r['active'] else 'no'}")


@users_group.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_cli
def passwd(ctx: CliContext, name: str, password_stdin: bool) -> None:
    """Set a new password for NAME (prompted, or read from stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("new password", hide_input=True, confirmation_prompt=True)
    with ctx.app.app_context():
        users_service.set_password(name, password)
    click.echo(f"password changed for {name}")


COMMANDS = [users_group]
