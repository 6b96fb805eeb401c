"""``fieldsync-client``: the tablet client on the command line.

Every error is one ``Error: ...`` line on stderr and exit status 1 (``fill`` first lists each
field error); progress goes to stderr, results to stdout, ``--json`` output is stable JSON.
"""

from __future__ import annotations

import json
import os
from typing import IO, Any

import click

from fieldsync.errors import FieldsyncError
from sync_client.client import Client
from sync_client.errors import ClientError, InvalidAnswers, LocalDataError
from sync_client.store import Store
from sync_client.transport import RetryPolicy

PASSPHRASE_ENV = "FIELDSYNC_CLIENT_PASSPHRASE"


class ClientContext:
    """Builds the :class:`Client` on first use, asking for the passphrase only then."""

    def __init__(self, home: str, retry: RetryPolicy, timeout: float, quiet: bool) -> None:
        self.home = os.path.expanduser(home)
        self.retry = retry
        self.timeout = timeout
        self.quiet = quiet
        self._client: Client | None = None

    def passphrase(self, new: bool) -> str:
        value = os.environ.get(PASSPHRASE_ENV)
        if value:
            return value
        return str(click.prompt(
            f"Passphrase for {'the new store in ' if new else ''}{self.home}", hide_input=True,
            confirmation_prompt=new, err=True))

    def progress(self, message: str) -> None:
        if not self.quiet:
            click.echo(message, err=True)

    def client(self, *, new_store_ok: bool = False) -> Client:
        if self._client is None:
            new = new_store_ok and not Store.exists(self.home)
            self._client = Client(self.home, self.passphrase(new), retry=self.retry,
                                  timeout=self.timeout, progress=self.progress)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class ClientGroup(click.Group):
    """The one place where errors become ``Error: ...`` and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidAnswers as exc:
            for path, messages in sorted(exc.errors.items()):
                for message in messages:
                    click.echo(f"{path or '(answers)'}: {message}", err=True)
            raise click.ClickException(str(exc)) from None
        except ClientError as exc:
            raise click.ClickException(str(exc)) from None
        except FieldsyncError as exc:
            raise click.ClickException(exc.detail) from None
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            raise click.ClickException(f"{exc.strerror or exc}{where}") from None


pass_ctx = click.make_pass_decorator(ClientContext)


@click.group(cls=ClientGroup)
@click.option("--home", default="~/.fieldsync-client", show_default=True,
              envvar="FIELDSYNC_CLIENT_HOME", help="Directory of the encrypted local store.")
@click.option("--retries", default=5, show_default=True, type=click.IntRange(1, 50),
              help="Attempts per request before giving up.")
@click.option("--backoff", default=0.5, show_default=True, type=click.FloatRange(0, 60),
              help="First retry delay in seconds; doubles on each retry.")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(0.1, 600),
              help="Seconds to wait for the server on each request.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@click.version_option(package_name="fieldsync")
@click.pass_context
def cli(ctx: click.Context, home: str, retries: int, backoff: float, timeout: float,
        quiet: bool) -> None:
    """FieldSync tablet client: enrol, pull, fill forms offline, push.

    The passphrase of the local store comes from FIELDSYNC_CLIENT_PASSPHRASE or a prompt.
    """
    obj = ClientContext(home, RetryPolicy(attempts=retries, backoff=backoff), timeout, quiet)
    ctx.obj = obj
    ctx.call_on_close(obj.close)


@cli.command()
@click.option("--server", required=True, help="Server address, e.g. https://fieldsync.example.")
@click.option("--code", required=True, help="The one-time enrolment code.")
@click.option("--label", default="", help="A name for this tablet, shown to administrators.")
@click.option("--suite", default="mlkem768x25519", show_default=True,
              type=click.Choice(["mlkem768x25519", "x25519"]), help="Encryption suite.")
@pass_ctx
def enroll(obj: ClientContext, server: str, code: str, label: str, suite: str) -> None:
    """Enrol this tablet with a one-time code (creates the local store)."""
    device = obj.client(new_store_ok=True).enroll(server, code, label=label, suite=suite)
    user = device["user"]
    click.echo(f"enrolled device {device['device_id']} for {user['username']} "
               f"({user['role']}) at {device['server']}")


@cli.command()
@pass_ctx
def pull(obj: ClientContext) -> None:
    """Download the forms manifest, changed forms and caseload changes."""
    report = obj.client().pull()
    click.echo(f"pulled: {len(report.forms_downloaded)} form version(s) downloaded, "
               f"{report.cases_updated} case(s) updated, {report.cases_removed} removed; "
               f"cursor {report.cursor}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def forms(obj: ClientContext, as_json: bool) -> None:
    """List the form versions on this tablet."""
    rows = obj.client().forms()
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no forms: run 'fieldsync-client pull'")
        return
    click.echo(f"{'FORM':28} {'VERSION':>7}  {'MODE':6}  TITLE")
    for r in rows:
        click.echo(f"{r['form_id']:28} {r['version']:>7}  {r['mode'] or '':6}  {r['title']}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def cases(obj: ClientContext, as_json: bool) -> None:
    """List the cases on this tablet."""
    rows = obj.client().cases()
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no cases: run 'fieldsync-client pull'")
        return
    click.echo(f"{'CASE':36}  {'NUMBER':14} {'STATUS':16} {'REV':>4}  NAME")
    for r in rows:
        name = (r.get("properties", {}).get("name") or {}).get("value") or ""
        number = r.get("case_number") or ("(not synced)" if r.get("provisional") else "")
        click.echo(f"{r['case_id']:36}  {number:14} "
                   f"{r.get('status') or '':16} {r.get('revision', 0):>4}  {name}")


@cli.command()
@click.argument("form_id")
@click.option("--case", "case_id", help="The case the form is about (not for intake forms).")
@click.option("--version", "version", type=click.IntRange(1), help="Form version (default: "
              "the newest on this tablet).")
@click.option("--answers", "answers_file", required=True, type=click.File("rb"),
              help="JSON file with the answers ('-' reads stdin). Nothing is copied from it.")
@pass_ctx
def fill(obj: ClientContext, form_id: str, case_id: str | None, version: int | None,
         answers_file: IO[bytes]) -> None:
    """Validate answers for FORM_ID and seal them into the outbox."""
    name = getattr(answers_file, "name", "answers")
    try:
        answers = json.loads(answers_file.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LocalDataError(f"{name}: not valid JSON: {exc}") from None
    if not isinstance(answers, dict):
        raise LocalDataError(f"{name}: the answers must be a JSON object")
    client = obj.client()
    filled = client.fill(form_id, answers, case_id=case_id, version=version)
    waiting = client.store.outbox_size()
    click.echo(f"sealed submission {filled.submission_id} ({filled.form_id} "
               f"v{filled.form_version}, case {filled.case_id}); {waiting} in the outbox")


@cli.command()
@pass_ctx
def push(obj: ClientContext) -> None:
    """Send the outbox; keep rejected items (see 'status')."""
    report = obj.client().push()
    click.echo(f"pushed {report.total}: {len(report.accepted)} accepted, "
               f"{len(report.duplicate)} duplicate, {len(report.rejected)} rejected, "
               f"{report.remaining} still in the outbox")
    for item in report.rejected:
        click.echo(f"rejected {item['submission_id']}: {item['code']}: {item['detail']}",
                   err=True)
    for sid in report.quarantined:
        click.echo(f"held for review {sid}: kept in the outbox", err=True)
    for item in report.unverified:
        click.echo(f"kept {item['submission_id']}: {item['reason']}", err=True)
    problems = len(report.rejected) + len(report.unverified)
    if problems:
        raise click.ClickException(f"{len(report.rejected)} submission(s) rejected, "
                                   f"{len(report.unverified)} kept without a verified receipt: "
                                   "see 'fieldsync-client status'")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def status(obj: ClientContext, as_json: bool) -> None:
    """Outbox size, rejected items with their reasons, last sync, cursor."""
    state = obj.client().status()
    if as_json:
        _echo_json(state)
        return
    user = state["user"]
    lines = [
        f"device:    {state['device_id']} ({user['username']}, {user['role']})",
        f"server:    {state['server']}",
        f"outbox:    {len(state['outbox'])} waiting",
        f"rejected:  {len(state['rejected'])}",
        f"last pull: {state['last_pull'] or 'never'}",
        f"last push: {state['last_push'] or 'never'}",
        f"cursor:    {state['cursor']}",
        f"forms:     {state['forms']}   cases: {state['cases']}",
    ]
    for line in lines:
        click.echo(line)
    for item in state["rejected"]:
        click.echo(f"  {item['submission_id']} {item['form_id']} v{item['form_version']}: "
                   f"{item['code']}: {item['detail']}")
        errors = item["errors"] if isinstance(item["errors"], dict) else {}
        for path, messages in sorted(errors.items()):
            for message in messages if isinstance(messages, list) else [messages]:
                click.echo(f"    {path}: {message}")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def main() -> None:
    cli(prog_name="fieldsync-client")
