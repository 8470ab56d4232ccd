"""Logging of the package: what is logged where, and the CLI's setup.

Every module that reads, writes or decides has its own
``log = logging.getLogger(__name__)`` below the ``producer`` logger:

* DEBUG: every store read (key, version, bytes), write (key, condition, new
  version), delete and list (prefix, count), and every compare-and-swap retry
  (key, attempt, backoff);
* INFO: one line per registered product (action, id, href, or the error) and
  one summary per :func:`producer.api.register` call (counts per action,
  compare-and-swap conflicts, seconds spent backing off);
* WARNING: retries given up (:class:`~producer.errors.ConflictError`) and
  other situations the run survives in a degraded way.

Nothing secret is ever formatted into a record: storage options and
credentials never are, and URLs (product sources, catalog hrefs) go through
:func:`producer.redact.redact` first.

The library attaches no handler (the application decides); the CLI calls
:func:`configure_cli`, and :mod:`producer.prefect` forwards the records into
the run's logs.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Callable, Sequence

from producer.errors import rephrase
from producer.options import flag_spelling
from producer.redact import redact
from producer.results import RegisterResult

__all__ = ["CLI_FORMAT", "ROOT_LOGGER", "cli_level", "configure_cli", "log_register_summary", "log_result"]

#: the logger every module's logger sits below
ROOT_LOGGER = "producer"
#: how the CLI prints a record on stderr
CLI_FORMAT = "%(levelname)s %(name)s: %(message)s"
#: the actions a register result can have, in the order a summary lists them
_ACTIONS = ("created", "updated", "unchanged", "error")


def cli_level(verbose: int, quiet: bool) -> int:
    """The level of the CLI's ``-v`` count and ``-q`` flag: WARNING by default,
    INFO with ``-v``, DEBUG with ``-vv``, ERROR with ``-q`` (it wins)."""
    if quiet:
        return logging.ERROR
    if verbose >= 2:
        return logging.DEBUG
    if verbose == 1:
        return logging.INFO
    return logging.WARNING


class _CliHandler(logging.StreamHandler):
    """The handler :func:`configure_cli` installs (recognised to replace it)."""


class _CliFormatter(logging.Formatter):
    """:data:`CLI_FORMAT`, with the hints a record carries (``extra={"hints": ...}``,
    phrased for Python in its message) spelled as CLI flags."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        hints = getattr(record, "hints", None)
        if hints:
            record.message = rephrase(record.message, hints, flag_spelling)
        return super().formatMessage(record)


def configure_cli(verbose: int = 0, quiet: bool = False) -> Callable[[], None]:
    """Send ``producer.*`` records at the CLI's level to stderr as
    ``LEVEL logger: message``; stdout stays the command's output.

    Sets the level of the ``producer`` logger and installs one stream handler
    on it (replacing one an earlier call installed), bound to the current
    ``sys.stderr``. Records of other libraries are left to Python's defaults
    (warnings and errors only). Returns a function that undoes this (the
    CLI calls it when the command ends, so a process that runs several
    commands, such as a test, does not keep the setting).
    """
    logger = logging.getLogger(ROOT_LOGGER)
    previous_level = logger.level
    previous = [h for h in logger.handlers if isinstance(h, _CliHandler)]
    for handler in previous:
        logger.removeHandler(handler)
    handler = _CliHandler(sys.stderr)
    handler.setFormatter(_CliFormatter(CLI_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(cli_level(verbose, quiet))

    def restore() -> None:
        logger.removeHandler(handler)
        for old in previous:
            logger.addHandler(old)
        logger.setLevel(previous_level)

    return restore


def log_result(log: logging.Logger, result: RegisterResult, *, dry_run: bool = False) -> None:
    """One INFO line for one product's :class:`RegisterResult` (source and
    hrefs redacted; the error text is redacted when it is recorded)."""
    if not log.isEnabledFor(logging.INFO):
        return
    prefix = "dry run: would be " if dry_run and result.ok else ""
    if result.ok:
        pending = " (link pending: ack durable)" if result.link_pending else ""
        log.info("%s%s %s -> %s%s", prefix, result.action, result.id, redact(result.href or ""), pending)
    else:
        log.info("error %s (%s): %s", redact(result.source or ""), result.error_type, result.error)


def log_register_summary(
    log: logging.Logger,
    results: Sequence[RegisterResult],
    *,
    collection: str,
    catalog: str,
    conflicts: int,
    backoff_seconds: float,
    dry_run: bool = False,
) -> None:
    """One INFO line summarising a :func:`producer.api.register` call: counts
    per action, compare-and-swap conflicts and the time spent backing off."""
    if not log.isEnabledFor(logging.INFO):
        return
    counts = Counter(r.action for r in results)
    actions = ", ".join(f"{counts[a]} {a}" for a in _ACTIONS if counts[a]) or "nothing"
    pending = sum(1 for r in results if r.ok and r.link_pending)
    if pending:  # ack "durable": written and durable, not linked yet
        actions += f" ({pending} with the link pending: ack durable)"
    log.info(
        "registered %d product(s) into collection %r of %s%s: %s; "
        "%d compare-and-swap conflict(s), %.2f s backoff",
        len(results),
        collection,
        redact(catalog),
        " (dry run: nothing written)" if dry_run else "",
        actions,
        conflicts,
        backoff_seconds,
    )
