"""Figures: one line each (``name value unit [# note]``), and a JSON report of a run."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    note: str = ""

    def line(self) -> str:
        value = f"{self.value:.3f}".rstrip("0").rstrip(".") if isinstance(self.value, float) \
            else str(self.value)
        text = f"{self.name} {value} {self.unit}"
        return f"{text}  # {self.note}" if self.note else text


@dataclass
class Report:
    """Collects the figures of one run; prints each as it is recorded."""

    args: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str, note: str = "") -> Figure:
        figure = Figure(name, round(float(value), 3), unit, note)
        self.figures.append(figure)
        print(figure.line(), flush=True)
        return figure

    def get(self, name: str) -> float | None:
        return next((f.value for f in self.figures if f.name == name), None)

    def write_json(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine(), "args": self.args,
                "figures": [asdict(f) for f in self.figures]}
        path.write_text(json.dumps(body, indent=2) + "\n")


def log(message: str) -> None:
    """Progress goes to stderr so that stdout holds only figures."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mb": memory,
            "python": platform.python_version(), "system": platform.platform()}
