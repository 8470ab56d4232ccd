"""What the verbs return: one result per product (register) or item (remove).

Results are plain data: they never print, and ``to_dict`` gives the JSON
shape the CLI, the Prefect adapter and the event handler report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from producer.errors import ConflictError, ProducerError, StoreError
from producer.redact import redact


@dataclass
class RegisterResult:
    """What happened to one product.

    ``action``: ``created``, ``updated``, ``unchanged`` or ``error``. With
    ``dry_run`` the action is what *would* happen. ``error_type`` tells a
    failure worth retrying from one that is not: ``input`` (the product,
    an option or an existing document is bad: fix it, retrying will not
    help), ``storage`` (the store failed or compare-and-swap gave up:
    transient, retry) or ``internal`` (a bug: please report it).
    """

    source: str
    id: str | None = None
    href: str | None = None
    action: str = "error"
    error: str | None = None
    error_type: str | None = None
    item: dict | None = field(default=None, repr=False)

    def fail(self, message: str, exc: BaseException) -> None:
        """Mark this result failed with ``message`` (credentials in it redacted),
        classified from ``exc``."""
        self.action = "error"
        self.error = redact(message)
        self.error_type = error_type_of(exc)

    @property
    def ok(self) -> bool:
        return self.action != "error"

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "item"}
        out["source"] = redact(self.source)
        if out["error"] is None:
            out.pop("error")
            out.pop("error_type")
        return out


def error_type_of(exc: BaseException) -> str:
    """``storage`` for store failures and exhausted retries, ``input`` for the
    other deliberate errors, ``internal`` for anything unexpected."""
    if isinstance(exc, (StoreError, ConflictError)):
        return "storage"
    if isinstance(exc, ProducerError):
        return "input"
    return "internal"


@dataclass
class RemoveResult:
    """``action``: ``removed``, ``absent`` (nothing to remove) or ``kept``:
    either the item describes another product than the one given (``reason``
    says which, and nothing changed), or a register rewrote the item while it
    was being removed (it stays, linked)."""

    id: str
    href: str | None
    action: str
    extent_recomputed: bool = False
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["reason"] is None:
            out.pop("reason")
        return out
