"""How each process of the collector logs and collects garbage, set once at its start.

Imports nothing beyond the standard library until called, so that the command line can load it
without the collector extra.
"""

from __future__ import annotations

import gc
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def configure_logging(log_format: str) -> None:
    """structlog JSON lines (or console lines) on stderr, for ours and the library's logs.

    Standard-library records (the delivery's, for one) go through the same renderer, so that
    every line on stderr has one format, and their ``name key=value ...`` messages become the
    event name and fields (see :func:`message_fields`).
    """
    import structlog

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, message_fields],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
    for name in ("collector", "otel_bedrock"):
        logging.getLogger(name).setLevel(logging.INFO)


GC_THRESHOLDS = (50_000, 20, 10)
"""Allocations between young collections, and young (then middle) collections between older
ones: each request allocates tens of thousands of short-lived objects, and with Python's
default (700, 10, 10) the collector spent about a fifth of its time collecting."""


def tune_gc() -> None:
    """Collect garbage less often, and leave what start-up loaded (modules, price data) out
    of every collection; call once start-up is done."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def message_fields(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: ``posthog_delivery_ready host=https://... spool=off`` becomes the
    event ``posthog_delivery_ready`` with the fields ``host`` and ``spool``.

    The library logs through the standard library in that shape. A word without ``=`` belongs
    to the value before it (an error message with spaces, say); a message that does not start
    with a name and a field is left as it is, and so is a field that would replace one the
    line already has.
    """
    message = event.get("event")
    if not isinstance(message, str) or "=" not in message:
        return event
    name, _, rest = message.partition(" ")
    if not _NAME.match(name):
        return event
    fields: dict[str, str] = {}
    last = None
    for word in rest.split(" "):
        key, equals, value = word.partition("=")
        if equals and _NAME.match(key) and key not in fields and key not in event:
            fields[key] = value
            last = key
        elif last is not None:
            fields[last] += " " + word
        else:
            return event
    event["event"] = name
    event.update(fields)

    return event
