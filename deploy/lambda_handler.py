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

from producer.events import HandlerConfig, handle  # noqa: E402 (after prepare)

log = logging.getLogger("producer.lambda")


class EventHandlingError(RuntimeError):
    """Some records failed and the trigger has no per-message retry."""


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Handle one Lambda invocation; return :func:`producer.events.handle`'s dict."""
    logging.getLogger("producer").setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
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
