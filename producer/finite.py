"""NaN and Infinity in a document: JSON (RFC 8259) has neither.

Python's ``json`` writes them as the bare tokens ``NaN``/``Infinity`` unless
told not to, and strict parsers (the mirror's, most other languages') refuse
such a file. :func:`non_finite` finds them: one pass of the C encoder when
there is none (the usual case), a walk naming each place when there is.
Pure; imports only the standard library.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: ``json.dumps`` that raises ValueError at a NaN or infinity (a check only: the text is dropped)
_STRICT = json.JSONEncoder(allow_nan=False, check_circular=False).encode


def non_finite(doc: Any) -> list[str]:
    """One problem per NaN/±Infinity float in ``doc`` (nested dicts, lists,
    tuples), each starting with its JSON path (``bbox[1]: NaN is not JSON
    ...``); ``[]`` when there is none. Mutates nothing."""
    try:
        _STRICT(doc)
    except ValueError:
        pass  # out of range float (or a circular value: the walk below finds no float then)
    except (TypeError, RecursionError):
        pass  # not JSON for another reason: schema checks and the writer report that
    else:
        return []
    problems: list[str] = []
    _walk(doc, "", problems, 0)
    return problems


def _walk(value: Any, path: str, out: list[str], depth: int) -> None:
    if depth > 200:  # deeper than any document: circular, reported elsewhere
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            token = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            out.append(
                f"{path or '(root)'}: {token} is not JSON (RFC 8259 has no NaN or Infinity); "
                "the number was computed from values the product does not hold"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{path}.{key}" if path else str(key), out, depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]", out, depth + 1)
