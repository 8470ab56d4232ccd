"""examples/ holds what extraction emits for each edge case; it must match the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_checked_in_examples_match_what_the_code_emits():
    spec = importlib.util.spec_from_file_location("update_examples", ROOT / "scripts/update_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = module.build()
    checked_in = {p.name: p.read_text() for p in (ROOT / "examples").glob("*.json")}
    assert sorted(checked_in) == sorted(fresh)
    stale = [name for name in fresh if fresh[name] != checked_in[name]]
    assert not stale, (
        f"examples/ is out of date for {stale}: review the change and run "
        "`.venv/bin/python scripts/update_examples.py`"
    )
