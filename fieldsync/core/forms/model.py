"""The loaded form: immutable objects built from a validated document.

Build them with :func:`fieldsync.core.forms.load_form`, never directly: loading checks the
document and compiles every expression once, and the objects keep the compiled programs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from fieldsync.core.canonical import content_hash
from fieldsync.core.forms.expressions import Expression

NUMERIC_TYPES = frozenset({"integer", "decimal"})
CONTAINER_TYPES = frozenset({"group", "repeat"})
SELECT_TYPES = frozenset({"select_one", "select_multiple"})


@dataclass(frozen=True, eq=False)
class Choice:
    value: str
    label: Mapping[str, str]


@dataclass(frozen=True, eq=False)
class Field:
    """One field (or group, or repeat) of a form."""

    name: str
    type: str
    label: Mapping[str, str]
    path: str
    """Where the field sits in the document, e.g. ``fields[3].fields[0]``."""
    hint: Mapping[str, str] | None = None
    required: bool | Expression = False
    relevant: Expression | None = None
    calculate: Expression | None = None
    constraint: Expression | None = None
    constraint_message: Mapping[str, str] | None = None
    min: Any = None
    max: Any = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    choices: tuple[Choice, ...] = ()
    kind: str | None = None
    fields: tuple[Field, ...] = ()
    min_count: int | None = None
    max_count: int | None = None
    case_property: str | None = None
    policy: str = "lww"
    sensitivity: str = "restricted"
    parent: str | None = None
    """Name of the enclosing group or repeat, if any."""
    repeat: str | None = None
    """Name of the enclosing repeat, if any (a field inside a repeat has one value per row)."""

    @property
    def choice_values(self) -> tuple[str, ...]:
        return tuple(choice.value for choice in self.choices)

    @property
    def is_container(self) -> bool:
        return self.type in CONTAINER_TYPES

    def expressions(self) -> Iterator[tuple[str, Expression]]:
        """``(key, expression)`` for every expression the field carries."""
        for key in ("required", "relevant", "calculate", "constraint"):
            value = getattr(self, key)
            if isinstance(value, Expression):
                yield key, value

    def walk(self) -> Iterator[Field]:
        """This field, then its descendants in document order."""
        return iter(self._walked)

    @cached_property
    def _walked(self) -> tuple[Field, ...]:  # a loaded form never changes: walk it once
        return (self, *(item for child in self.fields for item in child.walk()))


@dataclass(frozen=True, eq=False)
class CaseBlock:
    mode: str
    roles: tuple[str, ...] = ("officer",)
    close_when: Expression | None = None
    close_reason: str | None = None
    close_date: str | None = None
    transfer_when: Expression | None = None
    transfer_to: str | None = None
    transfer_reason: str | None = None


@dataclass(frozen=True, eq=False)
class Plan:
    """The order in which values are resolved (dependencies first)."""

    top: tuple[str, ...]
    """Fields outside repeats (groups and repeats included), in evaluation order."""
    rows: Mapping[str, tuple[str, ...]]
    """For each repeat, its descendants in the order a row is evaluated."""


@dataclass(frozen=True, eq=False)
class FormDefinition:
    """A loaded, checked form version. Treat as immutable; share freely between threads."""

    form_id: str
    version: int
    title: Mapping[str, str]
    description: Mapping[str, str] | None
    case: CaseBlock
    fields: tuple[Field, ...]
    settings: Mapping[str, Any]
    """Declared settings and their defaults."""
    document: Mapping[str, Any]
    """The document as given (a JSON-compatible mapping); what is stored and hashed."""
    by_name: Mapping[str, Field] = field(repr=False)
    plan: Plan = field(repr=False)

    @property
    def key(self) -> tuple[str, int]:
        return (self.form_id, self.version)

    @cached_property
    def content_hash(self) -> str:
        """``sha256:<hex>`` of the canonical JSON of :attr:`document`."""
        return content_hash(self.document)

    def walk(self) -> Iterator[Field]:
        """Every field, group and repeat in document order."""
        return iter(self._walked)

    @cached_property
    def _walked(self) -> tuple[Field, ...]:
        return tuple(item for top in self.fields for item in top.walk())

    @cached_property
    def order(self) -> tuple[str, ...]:
        """Every field's name in document order."""
        return tuple(item.name for item in self._walked)

    @cached_property
    def top_names(self) -> frozenset[str]:
        """The names an answers object may have at its top level (not groups, not the
        fields inside repeats)."""
        return frozenset(item.name for item in self._walked
                         if item.repeat is None and item.type != "group")
