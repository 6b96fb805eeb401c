"""CEL expressions in form definitions: compile once, find what they reference, evaluate.

The CEL library compiles and runs expressions but exposes no syntax tree, so the names an
expression refers to are found by a small lexer over its source: string literals and comments
are skipped; an identifier after ``.`` is a member or method, one before ``(`` is a function;
keywords, ``settings`` and the variables bound by the comprehension macros
(``list.all(x, ...)``, ``exists``, ``exists_one``, ``map``, ``filter``) are not field references.
``settings.NAME`` is recorded as a reference to the setting ``NAME``.

Evaluation never raises: an expression that fails at run time (most often because an operand
is ``null``: ``null < 3`` has no overload in CEL) evaluates to ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cel

from fieldsync.core.forms.functions import HELPERS

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
KEYWORDS = frozenset({"true", "false", "null", "in"})
RESERVED = frozenset(
    {
        "as", "break", "const", "continue", "else", "for", "function", "if", "import", "let",
        "loop", "package", "namespace", "return", "var", "void", "while",
    }
)  # fmt: skip
"""CEL reserved words: they may not be used as identifiers (and so not as field names)."""

SETTINGS = "settings"

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>
        (?:[bB]?[rR]|[rR][bB])(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"[^"\n]*"|'[^'\n]*')
      | [bB]?(?:\"\"\"(?:\\[\s\S]|[^\\])*?\"\"\"|'''(?:\\[\s\S]|[^\\])*?'''
              |"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')
    )
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[uU]?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<other>[\s\S])
    """,
    re.VERBOSE,
)


class ExpressionSyntaxError(ValueError):
    """The source is not a valid CEL expression; the message says where and why."""


@dataclass(frozen=True)
class References:
    """What an expression's source refers to."""

    names: frozenset[str]
    """Variables: field names (and repeat names) the expression reads."""
    settings: frozenset[str]
    """Setting names read as ``settings.NAME``."""
    functions: frozenset[str]
    """Global functions called as ``f(...)`` (methods such as ``x.size()`` are not listed)."""
    uses_settings: bool
    """Whether ``settings`` appears at all (also as ``settings["x"]``)."""


def _tokens(source: str) -> list[tuple[str, str]]:
    out = []
    for match in _TOKEN.finditer(source):
        kind = match.lastgroup or "other"
        if kind != "space":
            out.append((kind, match.group()))
    return out


def find_references(source: str) -> References:
    """Analyse ``source`` (see the module docstring for the rules)."""
    tokens = _tokens(source)
    names: set[str] = set()
    settings: set[str] = set()
    functions: set[str] = set()
    uses_settings = False
    bound: list[tuple[str, int]] = []  # (variable, paren depth of the macro call)
    depth = 0

    def text(index: int) -> str | None:
        return tokens[index][1] if 0 <= index < len(tokens) else None

    for index, (kind, value) in enumerate(tokens):
        if kind == "other":
            if value == "(":
                depth += 1
                if (
                    text(index - 2) == "."
                    and text(index - 1) in MACROS
                    and index + 2 < len(tokens)
                    and tokens[index + 1][0] == "ident"
                    and text(index + 2) == ","
                ):
                    bound.append((tokens[index + 1][1], depth))
            elif value == ")":
                while bound and bound[-1][1] == depth:
                    bound.pop()
                depth -= 1
            continue
        if kind != "ident":
            continue
        after_dot = text(index - 1) == "."
        called = text(index + 1) == "("
        if after_dot:
            if not called and text(index - 2) == SETTINGS and text(index - 3) != ".":
                settings.add(value)
            continue
        if called:
            functions.add(value)
        elif value in KEYWORDS or any(name == value for name, _ in bound):
            continue
        elif value == SETTINGS:
            uses_settings = True
        else:
            names.add(value)
    return References(frozenset(names), frozenset(settings), frozenset(functions), uses_settings)


def _syntax_message(error: Exception) -> str:
    text = str(error)
    found = re.search(r"<input>:(\d+):(\d+): ([^\n]*)", text)
    if found:
        line, column, reason = found.groups()
        return f"invalid expression (line {line}, column {column}): {reason.strip()}"
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return f"invalid expression: {first}"


class Expression:
    """One compiled CEL expression with its references.

    Raises :class:`ExpressionSyntaxError` when ``source`` does not compile.
    """

    __slots__ = ("source", "references", "_program", "_helpers")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._program = cel.compile(source)
        except Exception as error:  # the binding raises ValueError; be safe with others
            raise ExpressionSyntaxError(_syntax_message(error)) from None
        self.references = find_references(source)
        self._helpers = {
            name: HELPERS[name] for name in self.references.functions if name in HELPERS
        }

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def evaluate(self, env: Mapping[str, Any], settings: Mapping[str, Any]) -> Any:
        """Run with ``env`` (name -> value; missing names are ``null``); None on any failure."""
        context: dict[str, Any] = {name: env.get(name) for name in self.references.names}
        if self.references.uses_settings:
            context[SETTINGS] = dict(settings)
        context.update(self._helpers)
        try:
            return self._program.execute(context)
        except Exception:  # no overload, null operand, overflow, division by zero, ...
            return None

    def is_true(self, env: Mapping[str, Any], settings: Mapping[str, Any]) -> bool:
        """Whether the expression evaluates to the boolean ``true`` (anything else is false)."""
        return self.evaluate(env, settings) is True
