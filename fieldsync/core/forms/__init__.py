"""The form engine: load form definitions, validate answers, derive case operations.

Pure: no Flask, no database, no network. The tablet client imports it unchanged, so the tablet
(before sealing a submission) and the server (after opening it) reach the same verdict.

Typical use::

    form = load_form_file("forms/home_visit.v1.yaml")
    result = validate(form, answers, settings={"max_hours_per_day": 8})
    if result.ok:
        apply(result.operations)

The language is described in ``docs/forms.md``.
"""

from fieldsync.core.forms.definition import RESERVED_PROPERTIES, load_form
from fieldsync.core.forms.engine import ValidationResult, resolve_settings, validate
from fieldsync.core.forms.errors import FormDefinitionError, SettingsError
from fieldsync.core.forms.expressions import Expression, find_references
from fieldsync.core.forms.functions import HELPERS
from fieldsync.core.forms.library import load_form_file, load_library, parse_yaml
from fieldsync.core.forms.model import CaseBlock, Choice, Field, FormDefinition
from fieldsync.core.forms.schema import (
    ATTACHMENT_KINDS,
    CASE_MODES,
    DOCUMENT_KEYS,
    FIELD_TYPES,
    POLICIES,
    SENSITIVITIES,
)

__all__ = [
    "ATTACHMENT_KINDS",
    "CASE_MODES",
    "DOCUMENT_KEYS",
    "FIELD_TYPES",
    "HELPERS",
    "POLICIES",
    "RESERVED_PROPERTIES",
    "SENSITIVITIES",
    "CaseBlock",
    "Choice",
    "Expression",
    "Field",
    "FormDefinition",
    "FormDefinitionError",
    "SettingsError",
    "ValidationResult",
    "find_references",
    "load_form",
    "load_form_file",
    "load_library",
    "parse_yaml",
    "resolve_settings",
    "validate",
]
