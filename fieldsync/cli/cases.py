"""``fieldsync cases ...`` and ``fieldsync conflicts ...`` for operators.

Reads and changes made here are audited like the review API's, with ``via = cli`` and the
operator named by ``--as`` (default: the ``admin`` user).
"""

from __future__ import annotations

import json
from typing import Any

import click

from fieldsync.cli.base import CliContext, pass_cli
from fieldsync.errors import InvalidInput, NotFound
from fieldsync.services import casestore, review
from fieldsync.services.users import get_user

as_option = click.option("--as", "operator", default="admin", show_default=True,
                         help="Staff user the action is recorded under in the audit log.")


def cli_actor(operator: str) -> review.Actor:
    try:
        user = get_user(operator)
    except NotFound:
        raise InvalidInput(f"no user {operator!r} to record this under: pass --as USER "
                           "(a reviewer or admin)") from None
    if user.role not in ("reviewer", "admin"):
        raise InvalidInput(f"{operator} is a {user.role}; use a reviewer or admin with --as")
    return review.Actor(user, None, "cli")


def dump(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


@click.group("cases")
def cases_group() -> None:
    """Inspect and rebuild cases."""


@cases_group.command("show")
@click.argument("case_id")
@click.option("--json", "as_json", is_flag=True, help="Print the full case as JSON.")
@as_option
@pass_cli
def show(ctx: CliContext, case_id: str, as_json: bool, operator: str) -> None:
    """Show a case: its properties with provenance, conflicts and history."""
    with ctx.app.app_context():
        detail = review.case_detail(cli_actor(operator), case_id)
    if as_json:
        dump(detail)
        return
    click.echo(f"case {detail['case_number']} ({detail['case_id']})  {detail['name']}")
    click.echo(f"status {detail['status']}, owner {detail['owner_officer']} "
               f"({detail['owner_service']}), site {detail['site'] or '-'}, "
               f"revision {detail['revision']}")
    for name, prop in detail["state"]["properties"].items():
        value = prop["value"]
        if prop["policy"] == "append":
            value = f"{prop['count']} entries"
        flag = "  CONFLICT " + prop["conflict_id"] if prop.get("conflict_id") else ""
        click.echo(f"  {name:28} {json.dumps(value, ensure_ascii=False)[:60]:60} "
                   f"[{prop['policy']}] by {prop['provenance']['user_id']}{flag}")
    held = detail["state"]["held"]
    if held:
        click.echo(f"{len(held)} operation(s) recorded but not applied:")
        for item in held:
            click.echo(f"  {item['event_id']}#{item['op_index']}: {item['reason']}")
    click.echo(f"history: {len(detail['history'])} event(s)")
    for event in detail["history"]:
        click.echo(f"  #{event['seq']} {event['hlc']} {event['user']} "
                   f"{event['form'] or 'staff action'}")


@cases_group.command("rebuild")
@click.argument("case_ids", nargs=-1)
@click.option("--apply", is_flag=True, help="Rewrite differing cases from the log.")
@pass_cli
def rebuild(ctx: CliContext, case_ids: tuple[str, ...], apply: bool) -> None:
    """Re-derive cases from the event log and report any difference from the stored view."""

    def progress(done: int, total: int) -> None:
        click.echo(f"checked {done}/{total}", err=True)

    with ctx.app.app_context():
        report = casestore.rebuild(list(case_ids) or None, apply=apply, progress=progress)
    for case_id, paths in report.differences.items():
        click.echo(f"{case_id}: differs at {', '.join(paths)}")
    verdict = "rewritten" if apply else "differ"
    click.echo(f"{report.checked} case(s) checked, {len(report.differences)} {verdict}")
    if report.differences and not apply:
        raise click.exceptions.Exit(1)


@click.group("conflicts")
def conflicts_group() -> None:
    """List and resolve conflicts on manual properties."""


@conflicts_group.command("list")
@click.option("--status", default="open", show_default=True,
              type=click.Choice(["open", "resolved", "superseded"]))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_option
@pass_cli
def conflicts_list(ctx: CliContext, status: str, as_json: bool, operator: str) -> None:
    """List conflicts (open ones by default)."""
    with ctx.app.app_context():
        rows = review.list_conflicts(cli_actor(operator), status)
    if as_json:
        dump(rows)
        return
    if not rows:
        click.echo(f"no {status} conflicts")
        return
    for row in rows:
        values = " | ".join(
            f"{json.dumps(c['value'], ensure_ascii=False)} ({c['provenance']['user_id']})"
            for c in row["candidates"])
        click.echo(f"{row['conflict_id']}  case {row['case_id']}  {row['property']}: {values}")


@conflicts_group.command("resolve")
@click.argument("conflict_id")
@click.option("--value", "value_json", required=True, help="The chosen value, as JSON.")
@click.option("--reason", required=True, help="Why (kept in the log and the audit trail).")
@as_option
@pass_cli
def conflicts_resolve(ctx: CliContext, conflict_id: str, value_json: str, reason: str,
                      operator: str) -> None:
    """Resolve a conflict with a chosen or new value."""
    try:
        value = json.loads(value_json)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--value is not JSON ({exc.msg}); quote strings: '\"high\"'") from None
    with ctx.app.app_context():
        result = review.resolve_conflict(cli_actor(operator), conflict_id, value, reason)
    click.echo(f"conflict {conflict_id} resolved: {result['property']} = "
               f"{json.dumps(value, ensure_ascii=False)} (event {result['event_id']})")


COMMANDS = [cases_group, conflicts_group]
