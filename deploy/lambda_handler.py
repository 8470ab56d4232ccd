"""AWS Lambda entry point: ``lambda_handler.handler``.

A thin adapter around :func:`producer.events.handle`, the one handler shared
with the CLI and the Prefect event flow. The configuration is read from the
environment on every invocation (cheap, and never stale); no S3 client or
filesystem is created at import time; the import only asks numpy's OpenBLAS
for one thread (:func:`producer.process.prepare`), before numpy loads.

With an SQS trigger and ``FunctionResponseTypes: [ReportBatchItemFailures]``
the returned ``batchItemFailures`` make SQS redeliver only the failed
messages. Failures that no SQS message can carry (a direct S3, SNS or
EventBridge invocation) raise :class:`EventHandlingError` after logging the
result, so that Lambda's own retry and on-failure destination apply instead
of the failure being dropped.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from producer import process

process.prepare()  # before anything imports numpy: one OpenBLAS thread (cold start)

from producer.errors import InputError  # noqa: E402 (after prepare)
from producer.events import HandlerConfig, handle  # noqa: E402 (after prepare)

log = logging.getLogger("producer.lambda")

#: the values LOG_LEVEL may take (any letter case)
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class EventHandlingError(RuntimeError):
    """Some records failed and the trigger has no per-message retry."""


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Handle one Lambda invocation; return :func:`producer.events.handle`'s dict."""
    level = os.environ.get("LOG_LEVEL", "INFO").strip() or "INFO"
    if level.upper() not in _LEVELS:
        raise InputError(f"LOG_LEVEL {level!r} is not a log level: set it to one of {', '.join(_LEVELS)}")
    logging.getLogger("producer").setLevel(level.upper())
    result = handle(event, HandlerConfig.from_env())
    summary = {
        "request_id": getattr(context, "aws_request_id", None),
        "registered": len(result["registered"]),
        "removed": len(result["removed"]),
        "skipped": len(result["skipped"]),
        "failed": result["failed"],
        "batchItemFailures": len(result["batchItemFailures"]),
    }
    log.info("stac-producer event result %s", json.dumps(summary, default=str))
    unretriable = [f for f in result["failed"] if f.get("message_id") is None]
    if unretriable:
        raise EventHandlingError(
            f"{len(unretriable)} record(s) failed outside an SQS batch; first: {unretriable[0]['error']}"
        )
    return result
