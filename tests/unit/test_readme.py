"""The README's example test is the file CI runs, character for character (docs match the code)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "integration" / "test_readme_own_program.py"


def test_readme_shows_the_example_test_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    after = readme.split(f"`{EXAMPLE.relative_to(ROOT)}`", 1)[1]
    block = after.split("```python\n", 1)[1].split("```", 1)[0]
    source = EXAMPLE.read_text()
    docstring_end = ast.parse(source).body[0].end_lineno
    assert isinstance(docstring_end, int)
    body = "".join(source.splitlines(keepends=True)[docstring_end:]).lstrip("\n")
    assert block == body
