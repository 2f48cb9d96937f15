"""Test modules have unique basenames: tests/ has no __init__.py files (rootdir-relative
imports), so two test_x.py in different folders make `make test` stop at collection."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_test_module_basenames_are_unique() -> None:
    names = Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert [n for n, count in names.items() if count > 1] == []
