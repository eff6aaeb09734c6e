"""The intake: received spans and log records in, PostHog events out.

Each span of an export request goes through these steps:

1. :func:`collector.dialects.canonical` maps the attributes of whichever instrumentation made
   it onto our canonical names, or says that it traced no Bedrock model call (``skipped``).
2. Nested spans of one call become one: when two instrumentations both trace a call, one span
   is the parent of the other. Within a request the spans are merged (the innermost span's
   attributes win; the outer ones fill in what it lacks); across requests the first one wins
   and later ones are counted as ``duplicates``, unless the first is still waiting, in which
   case they are merged into it: every call waits ``merge_wait`` seconds for a span of another
   instrumentation that encloses it or is nested in it, since the two often end in different
   export batches. A span received twice counts as a duplicate.
   The operations of the two spans are not compared: some instrumentations cannot tell
   InvokeModel from Converse, or a stream from a plain call, and one Bedrock call never
   encloses another.
3. With content capture on, a Bedrock span waits up to ``content_wait`` seconds for the log
   records that carry its prompt and generation (:func:`collector.dialects.content_from_log`);
   records that come first wait for their span for :data:`EARLY_LOG_TTL` seconds. A span
   whose content is already complete waits only ``merge_wait``. With capture off content
   records are dropped on arrival.
4. A call whose spans name no person gets the one named on the span that encloses it (a
   request span with ``user.id``, say), as in-process, when that span came before the call
   was converted: the person of every other span is remembered by span id.
5. :meth:`otel_bedrock.exporter.PostHogSpanExporter.events_for`, the same code as in-process,
   turns the span into events, and :class:`~otel_bedrock.delivery.PostHogDelivery` sends them
   (in the collector, from a child process: :mod:`collector.delivery`).

Known limit: a duplicate whose first span was already converted (it came more than
``merge_wait`` seconds later) adds nothing to the event, even facts the first span lacked.
Memory is bounded: at most :data:`MAX_RECENT` recent span ids for de-duplication (and as
many people of enclosing spans),
:data:`MAX_PENDING` spans waiting (the oldest is converted early past that), and
:data:`MAX_EARLY_LOGS` spans' worth of early content records, within :data:`EARLY_CHARS`
characters. Content is cut to ``max_content_chars`` as it arrives, so no
span holds much more than that twice over (prompt and reply).

Threads: the ``accept_*`` methods, :meth:`Intake.refusal`, :meth:`Intake.ready` and
:meth:`Intake.counts` may be called from any thread, concurrently, and never wait for the
network; a daemon thread converts spans whose content wait is over; :meth:`Intake.shutdown`
may be called from any thread.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import StatusCode

from collector import dialects
from collector.spans import ReceivedLog, ReceivedSpan, received_logs, received_spans
from otel_bedrock import attributes as attr
from otel_bedrock._once import warn_once
from otel_bedrock.config import Settings
from otel_bedrock.content import clip_messages
from otel_bedrock.delivery import Delivery
from otel_bedrock.exporter import PostHogSpanExporter
from otel_bedrock.identity import distinct_id_from_attributes

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
"""Events per request to PostHog: a collector sends many, and each request waits a round trip."""
MAX_RECENT = 65_536
"""Span ids remembered for de-duplication (each of: spans, and their parents)."""
MAX_PENDING = 50_000
"""Bedrock spans waiting (for content or other spans) at most; past it the oldest is converted
early."""
MAX_NESTED = 8
"""Spans of one call at most: instrumentations nest two or three for a call, so a deeper
nest is not one call and is cut into calls of up to this many spans (which keeps spans
nested thousands deep from costing time that grows with the square of the depth)."""
MAX_EARLY_LOGS = 50_000
"""Spans whose content records arrived before them, remembered at most."""
EARLY_CHARS = 8_000_000
"""Characters of content held for spans not yet received, at most (each record counting
PIECE_CHARS more); the oldest go first. Held as decoded records, a character takes about 17
bytes: this bounds them near 140 MB."""
PIECE_CHARS = 100
"""What one content record costs beyond its characters (its tuple and attributes)."""
MAX_RECORDS_PER_SPAN = 256
"""Content records kept for one span."""
EARLY_LOG_TTL = 30.0
"""Seconds content records wait for their span (the SDK exports logs before spans)."""

COUNTERS = (
    "received",
    "converted",
    "skipped",
    "duplicates",
    "rejected",
    "failed",
    "logs_received",
    "logs_joined",
    "logs_late",
)
"""Intake counters; :meth:`Intake.counts` adds ``pending`` and the delivery's outcomes."""

_SpanKey = tuple[int, int]
_Piece = tuple[int, int, Mapping[str, Any]]  # time, arrival order, canonical content attributes


@dataclass(frozen=True)
class Accepted:
    """What an export request came to.

    Attributes:
        rejected: Spans or log records refused (reported as OTLP ``partial_success``).
        message: Why, for the client's log; empty when nothing was refused.
    """

    rejected: int = 0
    message: str = ""


@dataclass(slots=True, eq=False)
class _Pieces:
    """The content records of one span or call, each cut to ``max_content_chars``, with the
    characters of prompt and reply they hold."""

    items: list[_Piece] = field(default_factory=list)
    prompt_chars: int = 0
    reply_chars: int = 0
    truncated: bool = False

    @property
    def chars(self) -> int:
        """Characters held."""
        return self.prompt_chars + self.reply_chars

    @property
    def held(self) -> int:
        """What holding these costs, in characters: each record counts PIECE_CHARS more, so
        that many tiny records cannot slip under EARLY_CHARS."""
        return self.chars + PIECE_CHARS * len(self.items)

    def add(self, piece: _Piece, max_chars: int) -> bool:
        """Keep a piece unless what it adds would be cut anyway; True when kept."""
        prompt, reply = _sizes(piece[2])
        full = (prompt and self.prompt_chars >= max_chars) or (
            reply and self.reply_chars >= max_chars
        )
        if full or len(self.items) >= MAX_RECORDS_PER_SPAN:
            self.truncated = self.truncated or bool(full)
            return False
        self.items.append(piece)
        self.prompt_chars += prompt
        self.reply_chars += reply

        return True

    def extend(self, other: _Pieces, max_chars: int) -> int:
        """Add another holder's pieces; how many were kept."""
        self.truncated = self.truncated or other.truncated

        return sum(self.add(piece, max_chars) for piece in other.items)


@dataclass(slots=True, eq=False)
class _Call:
    """One Bedrock call: its merged span and content, until it is converted."""

    span: ReceivedSpan | None
    keys: list[_SpanKey]
    parents: list[_SpanKey]  # of each of its spans: where the person may be named
    content: _Pieces = field(default_factory=_Pieces)
    deadline: float = 0.0
    done: bool = False


class Intake:
    """Turns OTLP export requests into PostHog events; see the module docstring.

    Args:
        settings: The PostHog settings (key, host, prices, identity keys, content capture).
        content_wait: Seconds a Bedrock span waits for its content when capture is on.
        merge_wait: Seconds a Bedrock span waits for a nested or enclosing span of the same
            call from another instrumentation; 0 converts at once.
        delivery: Where events go; by default a delivery built from ``settings``.
        spool_reserve_bytes: For that default delivery: spool room kept for events on their
            way (see ``PostHogDelivery``).

    Raises:
        ConfigError: when the settings give no project key and no delivery is passed.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        content_wait: float = 2.0,
        merge_wait: float = 1.0,
        delivery: Delivery | None = None,
        spool_reserve_bytes: int | None = None,
    ) -> None:
        if content_wait < 0:
            raise ValueError(f"content_wait must not be negative, got {content_wait}")
        if merge_wait < 0:
            raise ValueError(f"merge_wait must not be negative, got {merge_wait}")
        self.exporter = PostHogSpanExporter(
            settings=settings,
            delivery=delivery,
            delivery_options={"batch_size": BATCH_SIZE, "spool_reserve_bytes": spool_reserve_bytes},
        )
        self.delivery = self.exporter.delivery
        self.capture = settings.content_capture
        self.content_wait = content_wait
        self.merge_wait = merge_wait
        self._max_chars = settings.max_content_chars
        self._identity_keys = settings.identity_keys
        self._cond = threading.Condition()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._by_span: OrderedDict[_SpanKey, _Call] = OrderedDict()
        self._by_parent: OrderedDict[_SpanKey, _Call] = OrderedDict()
        self._pending: OrderedDict[int, _Call] = OrderedDict()
        self._early: OrderedDict[_SpanKey, tuple[float, _Pieces]] = OrderedDict()
        self._early_chars = 0
        self._converting = 0  # calls taken out of _pending, not yet handed to delivery
        self._spooling = settings.spool_path is not None
        self._people: OrderedDict[_SpanKey, str] = OrderedDict()
        self._arrivals = 0
        self._timer: threading.Thread | None = None
        self._closed = False

    # -- spans ------------------------------------------------------------------------------

    def accept_traces(self, request: ExportTraceServiceRequest) -> Accepted:
        """Take the spans of one request; Bedrock calls become events now or after their wait."""
        spans, rejected = received_spans(request)
        bedrock: list[ReceivedSpan] = []
        people: list[tuple[_SpanKey, str]] = []
        skipped = failed = 0
        for span in spans:
            try:
                canonical = dialects.canonical(span, content=self.capture)
            except Exception:  # noqa: BLE001 - one unreadable span must not lose the request
                failed += 1
                warn_once(logger, "span_unreadable", "span_unreadable scope=%s", span.scope)
                continue
            if canonical is None:
                skipped += 1
                person = distinct_id_from_attributes(span.attributes, self._identity_keys)
                if person is not None:
                    people.append((_key(span), person))
            else:
                bedrock.append(span.with_attributes(canonical))
        ready: list[_Call] = []
        with self._cond:
            self._add(received=len(spans) + rejected, rejected=rejected)
            self._add(skipped=skipped, failed=failed)
            for key, person in people:
                self._people[key] = person
                self._people.move_to_end(key)
            while len(self._people) > MAX_RECENT:
                self._people.popitem(last=False)
            for group in _nested_groups(bedrock):
                call = self._claim(group)
                if call is not None:
                    self._hold_or_release(call, ready)
            ready.extend(self._overflow())
            self._converting += len(ready)
        self._convert_all(ready)
        problems = [
            f"{count} span(s) {reason}"
            for count, reason in (
                (rejected, "with an invalid trace or span id"),
                (failed, "whose attributes could not be read as a Bedrock call"),
            )
            if count
        ]

        return Accepted(rejected + failed, "; ".join(problems))

    def _claim(self, group: list[ReceivedSpan]) -> _Call | None:
        """Register a group of nested spans as a new call, or fold it into a known one."""
        merged = group[0]
        for inner in group[1:]:
            merged = _merge(merged, inner)
        keys = [_key(span) for span in group]
        parents = [
            (span.context.trace_id, span.parent_span_id)
            for span in group
            if span.parent_span_id is not None
        ]
        known = next(
            (self._by_span[key] for key in (*keys, *parents) if key in self._by_span), None
        )
        outer_of = next((self._by_parent[key] for key in keys if key in self._by_parent), None)
        existing = known if known is not None else outer_of
        resent = existing is not None and any(key in existing.keys for key in keys)
        if existing is not None and not resent and len(existing.keys) + len(keys) > MAX_NESTED:
            existing = None  # too deep a nest to be one call: a call of its own
        if existing is None:
            self._add(duplicates=len(group) - 1)
            call = _Call(merged, keys, parents)
            self._remember(call, keys, parents)
            return call
        self._add(duplicates=len(group))
        if existing.span is not None and not existing.done and not resent:
            if known is not None:  # the group is nested in the call's spans
                existing.span = _merge(existing.span, merged)
            else:  # the group encloses them
                existing.span = _merge(merged, existing.span)
            self._take_early(existing, keys)
        existing.keys.extend(key for key in keys if key not in existing.keys)
        existing.parents.extend(key for key in parents if key not in existing.parents)
        self._remember(existing, keys, parents)

        return None

    def _remember(self, call: _Call, keys: list[_SpanKey], parents: list[_SpanKey]) -> None:
        for key in keys:
            self._by_span[key] = call
            self._by_span.move_to_end(key)
        for key in parents:
            self._by_parent[key] = call
            self._by_parent.move_to_end(key)
        for recent in (self._by_span, self._by_parent):
            while len(recent) > MAX_RECENT:
                recent.popitem(last=False)

    def _hold_or_release(self, call: _Call, ready: list[_Call]) -> None:
        """Keep a new call waiting for its content or its other spans, or hand it to ``ready``
        (lock held)."""
        self._take_early(call, call.keys)
        wait = self.merge_wait
        if self.capture and not _has_content(call):
            wait = max(wait, self.content_wait)
        if wait > 0 and not self._closed:
            call.deadline = time.monotonic() + wait
            self._pending[id(call)] = call
            self._start_timer()
            self._cond.notify()
            return
        call.done = True
        ready.append(call)

    def _take_early(self, call: _Call, keys: Iterable[_SpanKey]) -> None:
        """Give a waiting call the content records that came before its spans (lock held)."""
        for key in keys:
            early = self._early.pop(key, None)
            if early is not None:
                self._early_chars -= early[1].held
                self._add(logs_joined=call.content.extend(early[1], self._max_chars))

    def _overflow(self) -> list[_Call]:
        """The oldest waiting calls past :data:`MAX_PENDING`, taken out (lock held)."""
        taken = []
        while len(self._pending) > MAX_PENDING:
            _, call = self._pending.popitem(last=False)
            call.done = True
            taken.append(call)
        if taken:
            warn_once(
                logger,
                "content_wait_overflow",
                "content_wait_overflow max_pending=%s: spans converted before their wait ended",
                MAX_PENDING,
            )

        return taken

    def _convert(self, call: _Call) -> None:
        """Make and send the events of a call (no lock held)."""
        span, content = call.span, call.content
        call.span, call.content = None, _Pieces()
        if span is None:
            return
        try:
            if attr.CONTEXT_DISTINCT_ID not in span.attributes:
                with self._cond:
                    person = next(
                        (self._people[key] for key in call.parents if key in self._people), None
                    )
                if person is not None:
                    span = span.with_attributes(
                        {**span.attributes, attr.CONTEXT_DISTINCT_ID: person}
                    )
            if self.capture:
                span = span.with_attributes(self._with_content(span.attributes, content))
            events = self.exporter.events_for(span)
        except Exception:  # noqa: BLE001 - one bad span must not stop the others
            warn_once(
                logger,
                "span_unconvertible",
                "span_unconvertible scope=%s",
                span.scope,
                exc_info=True,
            )
            self._count(failed=1)
            return
        for event in events:
            self.delivery.send(event)
        if events:
            self._count(converted=1)
        else:
            self._count(skipped=1)

    def _with_content(self, values: Mapping[str, Any], pieces: _Pieces) -> dict[str, Any]:
        """The span's attributes with the content of its records filled in, and clipped."""
        merged = {**_joined_content(pieces.items), **values}
        if pieces.truncated:
            merged[attr.CONTENT_TRUNCATED] = True

        return _clipped(merged, self._max_chars)

    # -- log records ------------------------------------------------------------------------

    def accept_logs(self, request: ExportLogsServiceRequest) -> Accepted:
        """Take the log records of one request: content joins its span when capture is on."""
        if not self.capture:
            count = sum(
                len(scope.log_records)
                for resource in request.resource_logs
                for scope in resource.scope_logs
            )
            self._count(logs_received=count)
            return Accepted()
        records = received_logs(request)
        pieces = [(record, self._content(record)) for record in records]
        now = time.monotonic()
        with self._cond:
            self._add(logs_received=len(records))
            for record, content in pieces:
                if content is not None and record.trace_id and record.span_id:
                    self._file(record, content, now)
            self._expire_early(now)

        return Accepted()

    def _content(self, record: ReceivedLog) -> Mapping[str, Any] | None:
        if not record.trace_id or not record.span_id:
            return None
        try:
            return dialects.content_from_log(record)
        except Exception:  # noqa: BLE001 - an unreadable record is skipped
            warn_once(logger, "log_unreadable", "log_record_unreadable scope=%s", record.scope)
            return None

    def _file(self, record: ReceivedLog, content: Mapping[str, Any], now: float) -> None:
        """Attach a content record to its call, or keep it until the span comes (lock held)."""
        assert record.trace_id is not None and record.span_id is not None
        key = (record.trace_id, record.span_id)
        self._arrivals += 1
        piece = (record.time, self._arrivals, _clipped(dict(content), self._max_chars))
        call = self._by_span.get(key)
        if call is not None:
            if call.done:
                self._add(logs_late=1)
            elif call.content.add(piece, self._max_chars):
                self._add(logs_joined=1)
            return
        expires, early = self._early.get(key, (now + EARLY_LOG_TTL, _Pieces()))
        before = early.held
        early.add(piece, self._max_chars)
        self._early_chars += early.held - before
        self._early[key] = (expires, early)
        while len(self._early) > MAX_EARLY_LOGS or self._early_chars > EARLY_CHARS:
            _, (_, dropped) = self._early.popitem(last=False)
            self._early_chars -= dropped.held

    def _expire_early(self, now: float) -> None:
        while self._early:
            key, (expires, _) = next(iter(self._early.items()))
            if expires > now:
                return
            _, dropped = self._early.pop(key)
            self._early_chars -= dropped.held

    # -- the content timer ------------------------------------------------------------------

    def _start_timer(self) -> None:
        if self._timer is None or not self._timer.is_alive():
            self._timer = threading.Thread(
                target=self._run_timer, name="otel-bedrock-collector-content", daemon=True
            )
            self._timer.start()

    def _run_timer(self) -> None:
        while True:
            with self._cond:
                due = self._take_due()
                while not due and not self._closed:
                    first = next(iter(self._pending.values()), None)
                    timeout = None if first is None else first.deadline - time.monotonic()
                    self._cond.wait(timeout)
                    due = self._take_due()
                if not due and self._closed:
                    return
                self._converting += len(due)
            self._convert_all(due)

    def _convert_all(self, calls: list[_Call]) -> None:
        """Convert calls taken out of waiting; each stops counting as converting once sent."""
        for call in calls:
            try:
                self._convert(call)
            finally:
                with self._cond:
                    self._converting -= 1

    def _take_due(self) -> list[_Call]:
        """Waiting calls whose time is up (all of them once closed), taken out (lock held)."""
        now = time.monotonic()
        due = []
        while self._pending:
            key, call = next(iter(self._pending.items()))
            if call.deadline > now and not self._closed:
                break
            del self._pending[key]
            call.done = True
            due.append(call)

        return due

    # -- state ------------------------------------------------------------------------------

    def refusal(self) -> float | None:
        """Seconds a client should wait before sending again, or None to accept.

        New data is refused while there is no room left for it (the spool, or without one the
        memory queue, is full), whether PostHog is failing or only slower than the senders:
        the senders keep their data and retry instead of the collector dropping it. The calls
        waiting here, or being converted, will each be an event soon and count against that
        room: with a spool always, without one while PostHog fails (while it answers, the
        memory queue drains as they arrive).
        """
        pressure = self.delivery.pressure()
        if pressure.full:
            return max(1.0, pressure.retry_in)
        waiting = len(self._pending) + self._converting  # read without the lock: a count
        counted = self._spooling or pressure.failing
        if counted and pressure.room is not None and waiting >= pressure.room:
            return max(1.0, pressure.retry_in)

        return None

    def ready(self) -> bool:
        """True while new data is welcome: not shut down and not refusing."""
        return not self._closed and self.refusal() is None

    def counts(self) -> dict[str, int]:
        """The intake's counters, ``pending`` (spans waiting for content), and the delivery's
        outcomes (``sent``, ``retried``, ``spooled``, ``evicted``, ``dropped``)."""
        with self._cond:
            values = dict(self._counts)
            values["pending"] = len(self._pending)

        return {**values, **self.delivery.counters.snapshot()}

    def shutdown(self, timeout: float) -> None:
        """Convert every span still waiting for content, then deliver for what is left of
        ``timeout`` seconds and spool the rest (see ``PostHogDelivery.shutdown``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
            timer = self._timer
        if timer is not None and timer is not threading.current_thread():
            timer.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            left = self._take_due()
            self._converting += len(left)
        self._convert_all(left)
        self.delivery.shutdown(max(0.0, deadline - time.monotonic()))

    def _add(self, **counts: int) -> None:
        """Add to counters (lock held)."""
        for name, value in counts.items():
            self._counts[name] += value

    def _count(self, **counts: int) -> None:
        with self._cond:
            self._add(**counts)


def _key(span: ReceivedSpan) -> _SpanKey:
    return span.context.trace_id, span.context.span_id


def _nested_groups(spans: Sequence[ReceivedSpan]) -> list[list[ReceivedSpan]]:
    """The Bedrock spans of one request, grouped by call: each group holds spans nested in
    one another, outermost first; a span with no Bedrock parent or child is a group alone."""
    by_key = {_key(span): span for span in spans}
    root: dict[_SpanKey, _SpanKey] = {}

    def find(key: _SpanKey) -> _SpanKey:
        path = []
        while root.get(key, key) != key:
            path.append(key)
            key = root[key]
        for step in path:
            root[step] = key
        return key

    for span in spans:
        if span.parent_span_id is None:
            continue
        parent = (span.context.trace_id, span.parent_span_id)
        if parent in by_key:
            root[find(_key(span))] = find(parent)
    groups: dict[_SpanKey, list[ReceivedSpan]] = {}
    for key, span in by_key.items():
        groups.setdefault(find(key), []).append(span)
    nested: list[list[ReceivedSpan]] = []
    for group in groups.values():
        if len(group) > MAX_NESTED:
            nested.extend([span] for span in group)
        else:
            nested.append(sorted(group, key=lambda span: _depth(span, by_key)))

    return nested


def _depth(span: ReceivedSpan, by_key: Mapping[_SpanKey, ReceivedSpan]) -> int:
    """How many Bedrock spans of the same request enclose this one."""
    depth = 0
    seen = {_key(span)}
    while span.parent_span_id is not None:
        parent = by_key.get((span.context.trace_id, span.parent_span_id))
        if parent is None or _key(parent) in seen:
            break
        seen.add(_key(parent))
        span = parent
        depth += 1

    return depth


def _merge(outer: ReceivedSpan, inner: ReceivedSpan) -> ReceivedSpan:
    """One span for a call two instrumentations traced: the inner span, its attributes
    winning, with what only the outer span knew filled in."""
    merged = inner.with_attributes({**outer.attributes, **inner.attributes})
    status = inner.status
    if status.status_code is StatusCode.UNSET:
        status = outer.status
    events = outer.events + inner.events

    return dataclasses.replace(merged, status=status, events=events)


def _has_content(call: _Call) -> bool:
    """True when the call's span or records already hold its prompt and its outcome."""
    assert call.span is not None
    values: dict[str, Any] = dict(call.span.attributes)
    for _, _, piece in call.content.items:
        values.update({key: value for key, value in piece.items() if key not in values})
    prompt = values.get(attr.PROMPT) or values.get(attr.PROMPT_MESSAGES)
    finished = values.get(attr.GENERATION) or call.span.status.status_code is StatusCode.ERROR

    return bool(prompt) and bool(finished)


def _sizes(values: Mapping[str, Any]) -> tuple[int, int]:
    """Characters of prompt and of reply in a record's content attributes."""
    prompt = values.get(attr.PROMPT) or values.get(attr.PROMPT_MESSAGES)
    reply = values.get(attr.GENERATION)

    return len(str(prompt or "")), len(str(reply or ""))


def _joined_content(pieces: Iterable[_Piece]) -> dict[str, Any]:
    """The content of a span's records, in the order they happened, as canonical attributes."""
    messages: list[dict[str, str]] = []
    generations: list[str] = []
    other: dict[str, Any] = {}
    for _, _, piece in sorted(pieces, key=lambda piece: piece[:2]):
        messages.extend(_messages(piece.get(attr.PROMPT_MESSAGES)))
        generation = piece.get(attr.GENERATION)
        if isinstance(generation, str) and generation:
            generations.append(generation)
        for key, value in piece.items():
            if key not in (attr.PROMPT_MESSAGES, attr.GENERATION, attr.PROMPT):
                other.setdefault(key, value)
    joined = dict(other)
    if messages:
        joined[attr.PROMPT_MESSAGES] = json.dumps(messages)
        joined[attr.PROMPT] = "\n".join(message["content"] for message in messages)
    if generations:
        joined[attr.GENERATION] = "\n".join(generations)

    return joined


def _messages(value: Any) -> list[dict[str, str]]:
    """Messages given as a list of role and content, or as the JSON text of one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if not isinstance(value, list | tuple):
        return []

    return [
        {"role": str(item["role"]), "content": str(item["content"])}
        for item in value
        if isinstance(item, Mapping) and "role" in item and "content" in item
    ]


def _clipped(values: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """The attributes with prompt and generation cut to ``max_chars`` each, flagged if cut."""
    truncated = False
    messages = _messages(values.get(attr.PROMPT_MESSAGES))
    if messages:
        kept, cut = clip_messages(messages, max_chars)
        if cut:
            truncated = True
            values[attr.PROMPT_MESSAGES] = json.dumps(kept)
            values[attr.PROMPT] = "\n".join(message["content"] for message in kept)
    # With messages, the prompt text is theirs, joined as the request hook joins them.
    for key in (attr.GENERATION,) if messages else (attr.PROMPT, attr.GENERATION):
        text = values.get(key)
        if isinstance(text, str) and len(text) > max_chars:
            values[key] = text[:max_chars]
            truncated = True
    if truncated:
        values[attr.CONTENT_TRUNCATED] = True

    return values
