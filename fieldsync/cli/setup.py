"""``fieldsync init`` and ``fieldsync serve``."""

from __future__ import annotations

import click

from fieldsync.cli.base import CliContext, pass_cli
from fieldsync.services import setup as setup_service
from fieldsync.services.setup import InitReport


def print_report(report: InitReport) -> None:
    for line in report.lines:
        click.echo(line)


@click.command("init")
@click.option("--demo", is_flag=True, help="Also load the demo services, sites, users and cases.")
@pass_cli
def init(ctx: CliContext, demo: bool) -> None:
    """Create or upgrade the database schema and publish the form library."""
    print_report(setup_service.initialise(ctx.app, demo=demo))


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64))
@click.option("--demo", is_flag=True, help="Initialise with demo data if the database is new, "
              "and print the demo logins and a fresh enrolment code.")
@pass_cli
def serve(ctx: CliContext, host: str, port: int, threads: int, demo: bool) -> None:
    """Serve the API with waitress (runs ``init`` first if the database is new)."""
    from waitress.server import create_server

    from fieldsync.services import startup

    app = ctx.app
    try:  # bind first: the logins and the enrolment code are printed only for a live server
        server = create_server(app, host=host, port=port, threads=threads, ident="fieldsync")
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; is another server running "
            "there? Stop it or choose another --port") from None
    if demo or setup_service.is_new(app):
        print_report(setup_service.initialise(app, demo=demo))
    base_url = f"http://{host}:{port}"
    for line in startup.banner(app, base_url, demo=demo):
        click.echo(line)
    for line in startup.start_background_jobs(app):
        click.echo(line)
    server.run()


COMMANDS = [init, serve]
