"""Exceptions of the form package.

::

    ValueError
     +-- FormDefinitionError      a form document is malformed; carries (path, message) pairs
     +-- SettingsError            a settings override does not fit the form's declared settings

Answers that fail validation are not exceptions: :func:`validate` returns them in its result.
"""

from __future__ import annotations

from collections.abc import Iterable


class FormDefinitionError(ValueError):
    """A form definition failed validation.

    ``errors`` lists ``(path, message)`` pairs in document order, for example
    ``("fields[3].relevant", "unknown field 'agee'")``. ``str()`` gives one line per error.
    """

    def __init__(self, errors: Iterable[tuple[str, str]]) -> None:
        self.errors: list[tuple[str, str]] = list(errors)
        super().__init__(self._render())

    def _render(self) -> str:
        count = len(self.errors)
        head = f"invalid form definition ({count} error{'s' if count != 1 else ''})"
        lines = [f"{path}: {message}" if path else message for path, message in self.errors]
        return "\n".join([head + ":", *("  " + line for line in lines)])


class SettingsError(ValueError):
    """A settings override names a value of the wrong type for a declared setting."""
