"""Shared test set-up: make the agent code importable for unit tests."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "services" / "agent", ROOT / "services" / "router"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
