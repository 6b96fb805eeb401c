"""``fieldsync devices ...`` and ``fieldsync keys ...``"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import click
import segno

from fieldsync.cli.base import CliContext, pass_cli
from fieldsync.errors import InvalidInput
from fieldsync.services import devices as devices_service
from fieldsync.services import keyring

DURATION = re.compile(r"^(\d+)\s*([smhd])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    match = DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"invalid duration {text!r}: use a number and a unit, e.g. 30m, 24h, 7d")
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


@click.group("devices")
def devices_group() -> None:
    """Enrol, list and revoke tablets."""


@devices_group.command("enroll-code")
@click.option("--user", "username", required=True, help="Officer or supervisor the tablet is for.")
@click.option("--expires", default="24h", show_default=True, help="Lifetime: 30m, 24h, 7d ...")
@click.option("--server", "server_url", default="http://127.0.0.1:8000", show_default=True,
              help="Server address put in the QR code.")
@click.option("--qr", "qr_path", type=click.Path(dir_okay=False), help="Where to write the QR "
              "code PNG. Default: enrolment-<user>-<time>.png in the data directory.")
@pass_cli
def enroll_code(ctx: CliContext, username: str, expires: str, server_url: str,
                qr_path: str | None) -> None:
    """Issue a one-time enrolment code for USER's tablet and write it as a QR code."""
    ttl = parse_duration(expires)
    with ctx.app.app_context():
        issued = devices_service.issue_code(username, ttl)
        data_dir = Path(ctx.app.config["DATA_DIR"])
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = Path(qr_path) if qr_path else data_dir / f"enrolment-{username}-{stamp}.png"
    payload = f"fieldsync:enroll?server={server_url}&code={issued.code}"
    segno.make(payload, error="m").save(str(target), scale=6)
    target.chmod(0o600)
    click.echo(f"enrolment code for {username}: {issued.code}")
    click.echo(f"expires: {issued.expires_at.isoformat(timespec='seconds')}")
    click.echo(f"QR code: {target}")


@devices_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def list_(ctx: CliContext, as_json: bool) -> None:
    """List enrolled devices."""
    with ctx.app.app_context():
        rows = [devices_service.describe(d) for d in devices_service.list_devices()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no devices")
        return
    click.echo(f"{'DEVICE':36} {'USER':16} {'SUITE':15} STATE")
    for r in rows:
        state = f"revoked {r['revoked_at'][:19]}" if r["revoked_at"] else "active"
        click.echo(f"{r['device_id']:36} {r['user']:16} {r['suite']:15} {state}")


@devices_group.command("revoke")
@click.argument("device_id")
@pass_cli
def revoke(ctx: CliContext, device_id: str) -> None:
    """Revoke a device: its token stops working on its next request."""
    with ctx.app.app_context():
        device = devices_service.revoke(device_id)
        click.echo(f"device {device.id} ({device.user.username}) revoked")


@click.group("keys")
def keys_group() -> None:
    """Manage the server's encryption keys (kept in the data directory, never the database)."""


@keys_group.command("list")
@pass_cli
def keys_list(ctx: CliContext) -> None:
    """List key ids that can decrypt, marking the current one per suite."""
    ring = keyring.get(ctx.app)
    current = {k["key_id"]: k["suite"] for k in ring.current_public_keys()}
    for key_id in ring.key_ids():
        mark = f"current {current[key_id]}" if key_id in current else "decrypt only"
        click.echo(f"{key_id}  {ring.private_key(key_id).suite:15} {mark}")


@keys_group.command("rotate")
@click.option("--suite", default="mlkem768x25519", show_default=True,
              type=click.Choice(["mlkem768x25519", "x25519"]))
@pass_cli
def keys_rotate(ctx: CliContext, suite: str) -> None:
    """Make a new current key; older keys keep decrypting envelopes still in outboxes."""
    key_id = keyring.rotate(ctx.app, suite)
    click.echo(f"new current {suite} key: {key_id} (older keys still decrypt until retired)")


@keys_group.command("retire")
@click.argument("key_id")
@pass_cli
def keys_retire(ctx: CliContext, key_id: str) -> None:
    """Destroy an old private key. Envelopes sealed to it can no longer be opened."""
    keyring.retire(ctx.app, key_id)
    click.echo(f"key {key_id} retired")


COMMANDS = [devices_group, keys_group]
