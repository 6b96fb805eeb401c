"""Reading form documents from YAML and JSON files, and the default library in ``forms/``.

YAML is read with the safe loader restricted to JSON's types: ``2024-01-01`` stays a string
(not a date object) and only ``true``/``false`` are booleans (``yes``, ``no``, ``on`` and
``off`` stay strings), so the document hashes the same as its JSON form.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from fieldsync.core.forms.definition import load_form
from fieldsync.core.forms.errors import FormDefinitionError
from fieldsync.core.forms.model import FormDefinition

FILE_NAME = re.compile(r"(?P<form_id>[a-z][a-z0-9_-]{1,62})\.v(?P<version>[1-9][0-9]*)\.yaml")
"""Library file names: ``<form_id>.v<version>.yaml``."""


class _JsonLikeLoader(yaml.SafeLoader):
    """SafeLoader without timestamps and YAML 1.1 yes/no/on/off booleans."""


_JsonLikeLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers
            if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}  # fmt: skip
_JsonLikeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
)


def parse_yaml(text: str) -> Any:
    """Decode a YAML document to JSON-compatible values (see the module docstring)."""
    return yaml.load(text, Loader=_JsonLikeLoader)  # noqa: S506 - a SafeLoader subclass


def load_form_file(path: str | Path) -> FormDefinition:
    """Load a ``.yaml``/``.yml`` or ``.json`` form file; errors name the file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text) if path.suffix == ".json" else parse_yaml(text)
    except (yaml.YAMLError, ValueError) as error:
        raise FormDefinitionError([(path.name, f"not valid YAML/JSON: {error}")]) from None
    try:
        return load_form(document)
    except FormDefinitionError as error:
        raise FormDefinitionError(
            [(f"{path.name}: {p}" if p else path.name, m) for p, m in error.errors]
        ) from None


def load_library(directory: str | Path) -> dict[tuple[str, int], FormDefinition]:
    """Every ``<form_id>.v<version>.yaml`` in ``directory``, keyed by (form_id, version).

    The file name must match the document's ``form_id`` and ``version``.
    """
    forms: dict[tuple[str, int], FormDefinition] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        named = FILE_NAME.fullmatch(path.name)
        if named is None:
            raise FormDefinitionError([(path.name, "expected a name like case_intake.v1.yaml")])
        form = load_form_file(path)
        if form.key != (named["form_id"], int(named["version"])):
            raise FormDefinitionError(
                [(path.name, f"file name does not match form_id '{form.form_id}' "
                  f"version {form.version}")]
            )  # fmt: skip
        forms[form.key] = form
    return forms
