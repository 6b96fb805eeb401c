#!/usr/bin/env python3
"""Set up and run FieldSync with nothing but Python 3.11+.

    python3 dev.py run     # virtual environment, demo database, server on http://127.0.0.1:8000
    python3 dev.py test    # virtual environment, ruff, mypy, the whole test suite

Extra arguments after ``run`` go to ``fieldsync serve``; after ``test`` to pytest.
The virtual environment lives in ``.venv`` and is rebuilt when ``pyproject.toml`` changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".fieldsync-installed"


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older Python
        sys.exit(f"FieldSync needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating virtual environment in .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing FieldSync and its dependencies (first run only) ...", flush=True)
    subprocess.run([str(BIN / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted)


def run(args: list[str]) -> int:
    return subprocess.call([str(BIN / "fieldsync"), "serve", "--demo", *args], cwd=ROOT)


def test(args: list[str]) -> int:
    lint = subprocess.call([str(BIN / "ruff"), "check", "."], cwd=ROOT)
    if lint:
        return lint
    types = subprocess.call([str(BIN / "mypy")], cwd=ROOT)  # the packages in pyproject.toml
    if types:
        return types
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *args], cwd=ROOT)


def main() -> int:
    commands = {"run": run, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ensure_environment()
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
