"""How each process of the collector logs and collects garbage, set once at its start.

Imports nothing beyond the standard library until called, so that the command line can load it
without the collector extra.
"""

from __future__ import annotations

import gc
import logging
import sys
from typing import Any


def configure_logging(log_format: str) -> None:
    """structlog JSON lines (or console lines) on stderr, for ours and the library's logs.

    Standard-library records (the delivery's, for one) go through the same renderer, so that
    every line on stderr has one format.
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
        foreign_pre_chain=shared,
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
