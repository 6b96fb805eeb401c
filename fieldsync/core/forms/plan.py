"""Evaluation order of a form's values, and the circular references that prevent one.

A field's value depends on the fields named in its ``relevant`` and ``calculate`` expressions
and on its enclosing group (whose relevance it inherits). ``required`` and ``constraint`` are
checked after every value is known, so they add no dependency.

Outside repeats the unit of ordering is a field, a group or a whole repeat: a repeat depends
on every outside field its rows read, and whatever reads the repeat depends on all of its rows.
Inside a repeat each row is ordered the same way among the repeat's own fields. A field inside
a repeat that reads its own repeat in ``relevant`` or ``calculate`` is a circular reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fieldsync.core.forms.model import Field, Plan


def _resolved(item: Field, by_name: Mapping[str, Field]) -> Iterable[Field]:
    for key in ("relevant", "calculate"):
        expression = getattr(item, key)
        if expression is not None:
            for name in sorted(expression.references.names):
                target = by_name.get(name)
                if target is not None and target.type != "group":
                    yield target


def _dependencies(
    fields: list[Field], by_name: Mapping[str, Field]
) -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]]]:
    top: dict[str, list[str]] = {}
    rows: dict[str, dict[str, list[str]]] = {}
    for item in fields:
        if item.repeat is None:
            deps = top.setdefault(item.name, [])
            if item.parent is not None:
                deps.append(item.parent)
            deps.extend(t.name for t in _resolved(item, by_name) if t.repeat is None)
            if item.type == "repeat":
                rows[item.name] = {}
        else:
            # row-level edges among the repeat's own fields; outside reads belong to the repeat
            # (setdefault: stay total on documents already rejected, e.g. nested repeats)
            row = rows.setdefault(item.repeat, {})
            deps = row.setdefault(item.name, [])
            if item.parent != item.repeat and item.parent is not None:
                deps.append(item.parent)
            for target in _resolved(item, by_name):
                if target.repeat == item.repeat:
                    deps.append(target.name)
                elif target.repeat is None:
                    top.setdefault(item.repeat, []).append(target.name)
    return top, rows


def _order(nodes: list[str], deps: Mapping[str, list[str]]) -> tuple[list[str], list[list[str]]]:
    """Depth-first topological order (stable: follows ``nodes``); also the cycles found."""
    position = {name: index for index, name in enumerate(nodes)}
    done: set[str] = set()
    on_stack: list[str] = []
    order: list[str] = []
    cycles: list[list[str]] = []
    seen_cycles: set[frozenset[str]] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in on_stack:
            members = on_stack[on_stack.index(name) :]
            if frozenset(members) not in seen_cycles:
                seen_cycles.add(frozenset(members))
                start = min(range(len(members)), key=lambda i: position[members[i]])
                cycles.append(members[start:] + members[:start])
            return
        on_stack.append(name)
        for dependency in deps.get(name, ()):
            visit(dependency)
        on_stack.pop()
        done.add(name)
        order.append(name)

    for name in nodes:
        visit(name)
    return order, cycles


def build_plan(
    fields: list[Field], by_name: Mapping[str, Field]
) -> tuple[Plan, list[tuple[str, str]]]:
    """The evaluation plan for ``fields`` (every field in document order), and cycle errors."""
    top_deps, row_deps = _dependencies(fields, by_name)
    errors: list[tuple[str, str]] = []
    top, cycles = _order(list(top_deps), top_deps)
    rows: dict[str, tuple[str, ...]] = {}
    for repeat, deps in row_deps.items():
        row_order, row_cycles = _order(list(deps), deps)
        rows[repeat] = tuple(row_order)
        cycles.extend(row_cycles)
    for cycle in cycles:
        chain = " -> ".join([*cycle, cycle[0]])
        errors.append((by_name[cycle[0]].path, f"circular reference: {chain}"))
    return Plan(top=tuple(top), rows=rows), errors
