"""How each process of the collector logs, collects garbage and uses file descriptors, set
once at its start.

Imports nothing beyond the standard library (and otel_bedrock's own) until called, so that
the command line can load it without the collector extra.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import re
import resource
import sys
import time
from bisect import bisect_left
from collections.abc import MutableMapping
from typing import Any

from otel_bedrock._once import first_time


def configure_logging(log_format: str) -> None:
    """structlog JSON lines (or console lines) on stderr, for ours and the library's logs.

    Standard-library records (the delivery's, for one) go through the same renderer, so that
    every line on stderr has one format, and their ``name key=%s ...`` messages become the
    event name and fields, built from the record's arguments (see :func:`message_fields`).
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
        pass_foreign_args=True,
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


UNREADABLE_HINTS = {
    "http2": "an HTTP/2 client, most likely an OTLP/gRPC exporter, sent to the OTLP/HTTP "
    "port; point gRPC exporters at the gRPC port (--grpc-port, 4317 by default), or set "
    "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
    "other": "the request is not valid HTTP/1.1; it was answered 400",
}


class _UnreadableRequests(logging.Filter):
    """aiohttp logs each request it cannot parse as an error with a traceback. This says it
    once per kind in one line, with what to change, and leaves later ones out: the client has
    its 400 either way."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError) or record.levelno < logging.WARNING:
            return True
        kind = "http2" if "PRI/Upgrade" in str(error) else "other"
        if not first_time(f"otlp_http_unreadable:{kind}"):
            return False
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else None
        record.msg = "otlp_http_request_unreadable peer=%s error=%s: %s (later ones not logged)"
        record.args = (peer, type(error).__name__, UNREADABLE_HINTS[kind])
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None

        return True


_UNREADABLE = _UnreadableRequests()


def quiet_unreadable_requests() -> None:
    """Have aiohttp's server log say an unreadable request in one line (see below)."""
    server_log = logging.getLogger("aiohttp.server")
    if _UNREADABLE not in server_log.filters:
        server_log.addFilter(_UNREADABLE)


class LoopProblems:
    """The event loop's error handler: running out of file descriptors (too many open
    connections) is one warning a minute, not one line per failed accept."""

    def __init__(self, idle_timeout: float) -> None:
        self._idle_timeout = idle_timeout
        self._next = 0.0

    def handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != "socket.accept() out of system resource":
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now >= self._next:
            self._next = now + 60
            import structlog

            structlog.get_logger("collector").warning(
                "connections_exhausted",
                error=str(context.get("exception")),
                hint="no file descriptor left for a new connection; new connections wait "
                "until others close (idle ones close after "
                f"{self._idle_timeout:g} s); raise the open files limit (ulimit -n) or put the "
                "collector behind a proxy that caps connections",
            )


def raise_open_files_limit() -> None:
    """Let this process open as many files (connections) as the system allows it."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError):  # a limit we may not change is kept
        pass


GC_THRESHOLDS = (50_000, 20, 10)
"""Allocations between young collections, and young (then middle) collections between older
ones: each request allocates tens of thousands of short-lived objects, and with Python's
default (700, 10, 10) the collector spent about a fifth of its time collecting."""


def tune_gc() -> None:
    """Collect garbage less often, and leave what start-up loaded (modules, price data) out
    of every collection; call once start-up is done."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# The pieces of a library message's format string (see message_fields).
_NAME = r"[a-z][a-z0-9_]*"
_PLACEHOLDER = r"%[#0 +\-]*\d*(?:\.\d+)?[hlL]?[diouxXeEfFgGcrsa]"
_FORMAT = re.compile(rf"(?:%%|{_PLACEHOLDER}|[^%])*")  # no mapping keys, no ``*`` widths
_ESCAPE_OR_ARGUMENT = re.compile(rf"%%|{_PLACEHOLDER}")
_HEAD = re.compile(_NAME)
_KEY = re.compile(rf" ({_NAME})=")
# a value that starts with a placeholder: up to a space, or punctuation before one
_PLACED = re.compile(rf"({_PLACEHOLDER})(?:%%|{_PLACEHOLDER}|[^\s%:;,.]|[:;,.](?=\S))*")
# a value written out: up to the next field, punctuation before a space, or " ("
_WRITTEN = re.compile(rf"(?=\S)(?:(?! {_NAME}=| \()(?:%%|{_PLACEHOLDER}|[^%:;,.]|[:;,.](?=\S)))+")
# a bare %s in a field's place, whose argument may be key=value words
_SPREAD = re.compile(r" %s(?=\s|\Z|[:;,.](?:\s|\Z))")
_FIELD_WORDS = re.compile(rf"{_NAME}=\S+(?: {_NAME}=\S+)*")
_INTEGER = re.compile(r"-?\d+")
_HINT_LEAD = re.compile(r"[:;,.]?\s*")
_JSON_TYPES = (str, int, float, bool, type(None))
_RESERVED = frozenset({"exception", "exc_info", "stack_info", "positional_args"})
"""Keys that the formatter's later steps read or write."""


def message_fields(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor for standard-library records: the record
    ``logger.info("posthog_delivery_ready host=%s spool=%s", host, None)`` becomes the event
    ``posthog_delivery_ready`` with the fields ``host`` and ``spool`` (``null``).

    Runs in the ``foreign_pre_chain`` of a ``ProcessorFormatter`` made with
    ``pass_foreign_args=True``, on the thread that logged. The fields come from the format
    string (``record.msg``) and its arguments, never from the formatted text, so a value keeps
    its spaces and ``word=`` text, and ``%s`` of a str, int, float, bool or None keeps its JSON
    type (anything else is ``str()``; ``%r`` is the repr, ``%d`` an int, ``%.2f`` a float).

    The shape read: an event name, then space-separated ``key=value`` fields. A value is
    either one placeholder with what is glued to it (``retry_in=%.2fs`` is the text
    ``"0.50s"``), or written text, which runs to the next field, to ``:``, ``;``, ``,`` or
    ``.`` before a space, or to `` (``. A bare ``%s`` whose argument is itself ``key=value``
    words (the delivery counters) adds those words as fields, whole numbers as ints. What
    follows the last field, its placeholders filled in, is the field ``hint``.

    A record with no arguments, with a mapping of them, or whose message does not start with a
    name and a field keeps its message as it is; so does one with a field that the line
    already has (``level``, ``event``, ...) or that appears twice, so nothing is overwritten.
    """
    args = event.pop("positional_args", None)
    record = event.get("_record")
    if not (isinstance(record, logging.LogRecord) and isinstance(record.msg, str)):
        return event
    if not (isinstance(args, tuple) and args):
        return event
    parsed = _parse(_Format(record.msg, args))
    if parsed is None:
        return event
    name, fields = parsed
    if any(key in event or key in _RESERVED for key in fields):
        return event
    event["event"] = name
    event.update(fields)

    return event


class _Format:
    """A ``%``-style format string and its arguments, filled in one stretch at a time."""

    def __init__(self, msg: str, args: tuple[Any, ...]) -> None:
        self.msg = msg
        self.args = args
        self.starts = [
            found.start() for found in _ESCAPE_OR_ARGUMENT.finditer(msg) if found[0] != "%%"
        ]

    def text(self, start: int, end: int | None = None) -> str:
        """``msg[start:end]`` with its placeholders filled in and ``%%`` made ``%``."""
        first = bisect_left(self.starts, start)
        last = bisect_left(self.starts, len(self.msg) if end is None else end)

        return self.msg[start:end] % self.args[first:last]

    def value(self, start: int, spec: str) -> Any:
        """The argument of the placeholder ``spec`` at ``start``, as a JSON value."""
        arg = self.args[bisect_left(self.starts, start)]
        text = spec % (arg,)
        conversion = spec[-1]
        if spec == "%s" and type(arg) in _JSON_TYPES:
            return arg if not isinstance(arg, float) or math.isfinite(arg) else text
        if conversion in "diu":
            return int(text)
        if conversion in "eEfFgG" and math.isfinite(float(text)):
            return float(text)

        return text


def _parse(message: _Format) -> tuple[str, dict[str, Any]] | None:
    """The event name and fields of ``message``, or None when it is not in that shape."""
    msg = message.msg
    head = _HEAD.match(msg)
    if head is None or not _FORMAT.fullmatch(msg) or len(message.starts) != len(message.args):
        return None
    fields: dict[str, Any] = {}
    position = head.end()
    while (step := _field(message, position)) is not None:
        found, position = step
        if fields.keys() & found.keys():
            return None
        fields.update(found)
    lead = _HINT_LEAD.match(msg, position)
    hint = message.text(position if lead is None else lead.end())
    if not fields or (hint and "hint" in fields):
        return None
    if hint:
        fields["hint"] = hint

    return head[0], fields


def _field(message: _Format, position: int) -> tuple[dict[str, Any], int] | None:
    """The field (or counters) starting with the space at ``position``, and where it ends."""
    msg = message.msg
    key = _KEY.match(msg, position)
    if key is not None:
        start = key.end()
        placed = _PLACED.match(msg, start)
        if placed is not None:
            whole = placed.end() == placed.end(1)
            value = message.value(start, placed[1]) if whole else message.text(start, placed.end())
            return {key[1]: value}, placed.end()
        written = _WRITTEN.match(msg, start)
        if written is None:
            return None
        return {key[1]: message.text(start, written.end())}, written.end()
    spread = _SPREAD.match(msg, position)
    if spread is None:
        return None
    words = message.value(position + 1, "%s")
    if not (isinstance(words, str) and _FIELD_WORDS.fullmatch(words)):
        return None
    pairs = (word.split("=", 1) for word in words.split(" "))
    found = {key: int(value) if _INTEGER.fullmatch(value) else value for key, value in pairs}

    return found, spread.end()
