"""Helpers that look at a whole catalog tree on disk (shared by test modules).

Read-only: nothing here writes to the tree it is given.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from stac_validator.validate import StacValidate

from producer.validate import schema_map

__all__ = ["assert_stac_valid_tree", "but_emptied", "stac_valid_ok", "tree_hash"]


def but_emptied(problems: list) -> list:
    """``problems`` (audit findings) but the ``empty-partition`` warnings: a
    removal or move that empties a period leaves its partition linked (valid
    STAC, on purpose: docs/RELIABILITY.md), which these tests do not check."""
    return [p for p in problems if p.kind != "empty-partition"]


def tree_hash(root: Path) -> dict[str, str]:
    """sha256 of every file under root (missing root → empty)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def stac_valid_ok(path: Path) -> tuple[bool, str]:
    """stac-valid's verdict on one document, with the bundled schemas (offline),
    and the start of its message."""
    validator = StacValidate(str(path), schema_map=schema_map())
    ok = validator.run()
    return ok, json.dumps(validator.message)[:2000]


def assert_stac_valid_tree(root: Path) -> None:
    """Every JSON document under ``root`` passes stac-valid with the bundled schemas."""
    documents = sorted(root.rglob("*.json"))
    assert documents
    for path in documents:
        ok, message = stac_valid_ok(path)
        assert ok, f"{path}: {message}"
