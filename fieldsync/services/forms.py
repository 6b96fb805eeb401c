"""Form versions on the server: validate, store as drafts, publish, retire, serve a manifest.

A version is keyed by (form_id, version) and identified by the content hash of its canonical
JSON. Once published its content never changes: publishing different content under the same
version is refused; publishing identical content again changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from flask import Flask, current_app
from sqlalchemy import select

from fieldsync.core.canonical import content_hash
from fieldsync.core.forms.definition import load_form
from fieldsync.core.forms.errors import FormDefinitionError
from fieldsync.core.forms.library import parse_yaml
from fieldsync.core.forms.model import FormDefinition
from fieldsync.errors import (
    FormDefinitionInvalid,
    FormVersionImmutable,
    InvalidInput,
    NotFound,
    StateConflict,
)
from fieldsync.extensions import db
from fieldsync.models import FormVersion, utcnow

CACHE = "fieldsync.forms"


def read_document(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON form document; a one-line error names the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        if path.suffix == ".json":
            document = json.loads(text)
        else:
            document = parse_yaml(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        detail = " ".join(str(exc).split())
        raise InvalidInput(f"{path}: not valid {kind}: {detail}") from exc
    if not isinstance(document, dict):
        raise InvalidInput(f"{path}: a form document must be a mapping at the top level")
    return document


def check(document: Mapping[str, Any], source: str = "") -> FormDefinition:
    """Load and check a document; problems become one :class:`FormDefinitionInvalid`."""
    try:
        return load_form(document)
    except FormDefinitionError as exc:
        where = f"{source}: " if source else ""
        first = exc.errors[0]
        summary = f"{first[0]}: {first[1]}" if first[0] else first[1]
        more = f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
        raise FormDefinitionInvalid(
            f"{where}invalid form definition: {summary}{more}",
            errors=[{"path": path, "message": message} for path, message in exc.errors],
        ) from exc


@dataclass(frozen=True)
class Outcome:
    row: FormVersion
    changed: bool
    message: str


def _find(form_id: str, version: int) -> FormVersion | None:
    return db.session.scalar(
        select(FormVersion).where(FormVersion.form_id == form_id, FormVersion.version == version)
    )


def get_version(form_id: str, version: int) -> FormVersion:
    row = _find(form_id, version)
    if row is None:
        raise NotFound(f"no form {form_id} version {version}")
    return row


def save(document: Mapping[str, Any], *, publish: bool, user_id: int | None = None,
         source: str = "") -> Outcome:
    """Store a draft (or publish directly). Identical content is a no-op; different content
    under a published or retired version is refused."""
    form = check(document, source)
    digest = form.content_hash
    row = _find(form.form_id, form.version)
    label = f"{form.form_id} v{form.version}"
    if row is not None and row.state != "draft":
        if row.content_hash != digest:
            raise FormVersionImmutable(
                f"{label} is {row.state} with different content ({row.content_hash[:19]}...); "
                f"publish the change as version {latest_version(form.form_id) + 1}"
            )
        return Outcome(row, False, f"{label} already {row.state}, unchanged")
    if row is None:
        row = FormVersion(form_id=form.form_id, version=form.version, created_by=user_id)
        db.session.add(row)
    row.definition = dict(form.document)
    row.content_hash = digest
    if publish:
        row.state = "published"
        row.published_at = utcnow()
    else:
        row.state = "draft"
    db.session.commit()
    return Outcome(row, True, f"{label} {'published' if publish else 'saved as draft'}")


def publish_existing(form_id: str, version: int) -> Outcome:
    row = get_version(form_id, version)
    if row.state == "published":
        return Outcome(row, False, f"{form_id} v{version} already published")
    if row.state == "retired":
        raise StateConflict(f"{form_id} v{version} is retired; publish a new version instead")
    check(row.definition)
    row.state = "published"
    row.published_at = utcnow()
    db.session.commit()
    return Outcome(row, True, f"{form_id} v{version} published")


def retire(form_id: str, version: int) -> Outcome:
    row = get_version(form_id, version)
    if row.state == "retired":
        return Outcome(row, False, f"{form_id} v{version} already retired")
    if row.state == "draft":
        raise StateConflict(f"{form_id} v{version} is a draft; only published versions retire")
    row.state = "retired"
    row.retired_at = utcnow()
    db.session.commit()
    return Outcome(row, True, f"{form_id} v{version} retired; submissions already filled in "
                   "it are still accepted")


def latest_version(form_id: str) -> int:
    versions = db.session.scalars(select(FormVersion.version).where(FormVersion.form_id == form_id))
    return max(versions, default=0)


def list_versions(states: Iterable[str] | None = None) -> list[FormVersion]:
    query = select(FormVersion).order_by(FormVersion.form_id, FormVersion.version)
    if states is not None:
        query = query.where(FormVersion.state.in_(list(states)))
    return list(db.session.scalars(query))


def describe(row: FormVersion) -> dict[str, Any]:
    return {
        "form_id": row.form_id,
        "version": row.version,
        "state": row.state,
        "hash": row.content_hash,
        "title": row.definition.get("title"),
        "published_at": row.published_at.isoformat() if row.published_at else None,
        "retired_at": row.retired_at.isoformat() if row.retired_at else None,
    }


def form_settings(app: Flask | None = None) -> dict[str, Any]:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    settings = app.config.get("FORM_SETTINGS") or {}
    if not isinstance(settings, dict):
        raise InvalidInput("FORM_SETTINGS must be a JSON object")
    return dict(settings)


def manifest() -> dict[str, Any]:
    """Published versions with their hashes, and the form settings in force; ``hash`` is the
    ETag devices compare to learn whether anything changed."""
    rows = db.session.execute(
        select(FormVersion.form_id, FormVersion.version, FormVersion.content_hash)
        .where(FormVersion.state == "published")
        .order_by(FormVersion.form_id, FormVersion.version)
    )  # the definitions themselves are not read: every pull asks for this
    forms = [{"form_id": f, "version": v, "hash": h} for f, v, h in rows]
    body = {"forms": forms, "settings": form_settings()}
    return {**body, "hash": content_hash(body)}


def compiled(form_id: str, version: int) -> FormDefinition | None:
    """The loaded definition of a published or retired version; None for unknown versions and
    drafts: devices never fill drafts.

    Cached per process by (form id, version) once the version is published: its content can no
    longer change and it never becomes a draft again, so the row need not be read again."""
    cache: dict[Any, FormDefinition] = current_app.extensions.setdefault(CACHE, {})
    form = cache.get((form_id, version))
    if form is not None:
        return form
    row = _find(form_id, version)
    if row is None or row.state == "draft":
        return None
    form = cache.get(row.content_hash)
    if form is None:
        form = load_form(row.definition)
        cache[row.content_hash] = form
    cache[(form_id, version)] = form
    return form


def library_files(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidInput(f"form library {directory} is not a directory")
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


def check_settings() -> None:
    """Refuse a FORM_SETTINGS value of the wrong type for any published form, at start-up
    rather than on the first submission."""
    from fieldsync.core.forms.engine import resolve_settings
    from fieldsync.core.forms.errors import SettingsError

    settings = form_settings()
    for row in list_versions(["published"]):
        form = compiled(row.form_id, row.version)
        if form is None:
            continue
        try:
            resolve_settings(form, settings)
        except SettingsError as exc:
            raise InvalidInput(f"FORM_SETTINGS does not fit form {row.form_id} v{row.version}: "
                               f"{exc}") from exc


def publish_library(directory: str | Path) -> list[str]:
    """Publish every form file in ``directory`` (used by ``fieldsync init``)."""
    lines = [save(read_document(path), publish=True, source=str(path)).message
             for path in library_files(directory)]
    check_settings()
    return lines
