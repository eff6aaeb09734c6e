"""The collector's network face: OTLP/HTTP and OTLP/gRPC on one asyncio event loop.

OTLP/HTTP (aiohttp):

- ``POST /v1/traces`` and ``POST /v1/logs``: protobuf or OTLP JSON bodies, gzip or deflate;
  answered in the request's format with an ``Export*ServiceResponse`` (``partial_success``
  when spans or records were refused), or an error status with a ``google.rpc.Status`` body.
- ``GET /healthz``: 200 while the process serves; ``GET /readyz``: 200 while new data is
  welcome, 503 while delivery has no room left, or once shutdown began;
  ``GET /metrics``: Prometheus text (see :mod:`collector.metrics`). These three need no token.
- ``POST /v1/metrics``: 404, with a body saying to turn the sender's metrics exporter off.
- A connection idle for ``IDLE_TIMEOUT`` seconds, or as long in sending its headers, is closed.

OTLP/gRPC (grpc.aio): ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` and
``...logs.v1.LogsService/Export``. Their bodies are read here rather than by grpc, so that a
malformed message gets ``INVALID_ARGUMENT`` as OTLP asks (grpc's own decoding answers
``UNKNOWN``).

How refusals are answered, following the OTLP specification's retry rules:

==============================  ==========================  ===================================
case                            OTLP/HTTP                   OTLP/gRPC
==============================  ==========================  ===================================
missing or wrong bearer token   401, ``WWW-Authenticate``   ``UNAUTHENTICATED``
unreadable body                 400                         ``INVALID_ARGUMENT``
content type or encoding        415                         (grpc negotiates it)
body over ``max_request_bytes`` 413 (not retried)           ``RESOURCE_EXHAUSTED`` without
                                                            RetryInfo (not retried)
body not in within 30 s         408                         (grpc's own deadlines)
over the rate limit             429 + ``Retry-After``       ``RESOURCE_EXHAUSTED`` + RetryInfo
delivery has no room            503 + ``Retry-After``       ``UNAVAILABLE`` + RetryInfo
no decoding place in 5 s        503 + ``Retry-After``       ``UNAVAILABLE`` + RetryInfo
shutting down                   503 + ``Retry-After``       ``UNAVAILABLE`` + RetryInfo
==============================  ==========================  ===================================

RetryInfo travels in ``grpc-status-details-bin`` (a ``google.rpc.Status``, as grpc's rich
status does it) and in ``google.rpc.retryinfo-bin`` (where the Python exporter looks); see
:mod:`collector.refusals`.

Export requests are decoded and handed to :class:`~collector.pipeline.Intake` on one of
``MAX_DECODING`` worker threads, so the loop keeps answering while spans are converted.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import ipaddress
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, Self

import grpc  # type: ignore[import-untyped]
import structlog
from aiohttp import web
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector import otlp
from collector.metrics import CollectorMetrics
from collector.refusals import RefusalLog, Refused, TokenBucket, retry_seconds
from collector.runtime import LoopProblems, quiet_unreadable_requests, raise_open_files_limit
from collector.settings import CollectorSettings, env_name

logger = structlog.get_logger("collector")

DEFAULT_REQUEST_GRACE = 10.0
"""Seconds requests under way at shutdown get to finish."""
DEFAULT_BODY_TIMEOUT = 30.0
"""Seconds an OTLP/HTTP request body may take to arrive."""
IDLE_TIMEOUT = 15.0
"""Seconds an OTLP/HTTP connection may stay idle, or take to send its request's headers,
before it is closed (exporters reconnect when they next send)."""
MAX_DECODING = 2
"""Requests decoded and taken in at once, over both servers; the others wait their turn. A
request of 8 MiB takes about a hundred MB while it is decoded, and with the GIL a third at
once would not be faster."""
DECODE_WAIT = 5.0
"""Seconds a request waits for its turn before it is answered 503 (the sender retries)."""


class Accepted(Protocol):
    """What an intake says about one export request."""

    @property
    def rejected(self) -> int: ...

    @property
    def message(self) -> str: ...


class IntakeLike(Protocol):
    """The part of :class:`collector.pipeline.Intake` the server uses."""

    def accept_traces(self, request: ExportTraceServiceRequest) -> Accepted: ...

    def accept_logs(self, request: ExportLogsServiceRequest) -> Accepted: ...

    def refusal(self) -> float | None: ...

    def ready(self) -> bool: ...

    def counts(self) -> dict[str, int]: ...

    def shutdown(self, timeout: float) -> None: ...


@dataclass(frozen=True)
class _Signal:
    """One OTLP signal: its HTTP path, gRPC service, and how its bodies are read and answered."""

    name: str
    path: str
    service: str
    decode_http: Callable[..., Any]
    decode_grpc: Callable[[bytes], Any]
    encode_response: Callable[[str, int, str], bytes]
    accept: Callable[[IntakeLike, Any], Accepted]


TRACES = _Signal(
    name="traces",
    path="/v1/traces",
    service=trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name,
    decode_http=otlp.decode_traces,
    decode_grpc=ExportTraceServiceRequest.FromString,
    encode_response=otlp.encode_traces_response,
    accept=lambda intake, request: intake.accept_traces(request),
)
LOGS = _Signal(
    name="logs",
    path="/v1/logs",
    service=logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name,
    decode_http=otlp.decode_logs,
    decode_grpc=ExportLogsServiceRequest.FromString,
    encode_response=otlp.encode_logs_response,
    accept=lambda intake, request: intake.accept_logs(request),
)


class Collector:
    """The OTLP/HTTP and OTLP/gRPC servers in front of one intake.

    ``start`` and ``stop`` run on the event loop; the intake is called on worker threads.

    Args:
        intake: Where export requests go.
        settings: Host, ports, token and limits (a port of 0 leaves that transport off).
        shutdown_timeout: Seconds :meth:`stop` gives the intake to deliver what it holds.
        request_grace: Seconds :meth:`stop` gives requests under way to finish.
        clock: The monotonic clock of the request rate limit.
        body_timeout: Seconds an HTTP request's body may take to arrive; 408 after that.
    """

    def __init__(
        self,
        intake: IntakeLike,
        settings: CollectorSettings,
        *,
        shutdown_timeout: float = 5.0,
        request_grace: float = DEFAULT_REQUEST_GRACE,
        clock: Callable[[], float] = time.monotonic,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        self.intake = intake
        self.body_timeout = body_timeout
        self.settings = settings
        self.shutdown_timeout = shutdown_timeout
        self.request_grace = request_grace
        self.metrics = CollectorMetrics(intake.counts)
        self.metrics.ready.set_function(self.is_ready)
        token = settings.token.get_secret_value().strip() if settings.token else ""
        self._token = token.encode() if token else None
        self._bucket = (
            TokenBucket(settings.rate_limit, settings.rate_burst, clock)
            if settings.rate_limit
            else None
        )
        self._errors = RefusalLog()
        self._stopping = False
        self._closed = False
        self._http_active = 0
        self._decoding: asyncio.Semaphore | None = None  # made on the event loop, in start
        self._executor = ThreadPoolExecutor(MAX_DECODING, thread_name_prefix="otlp-decode")
        self._runner: web.AppRunner | None = None
        self._grpc: grpc.aio.Server | None = None
        self.http_port: int | None = None
        self.grpc_port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving on the configured ports."""
        settings = self.settings
        self._decoding = asyncio.Semaphore(MAX_DECODING)
        if settings.http_port:
            quiet_unreadable_requests()
            app = web.Application(client_max_size=settings.max_request_bytes)
            app.router.add_post(TRACES.path, self._http_traces)
            app.router.add_post(LOGS.path, self._http_logs)
            app.router.add_post("/v1/metrics", self._http_metrics)
            app.router.add_get("/healthz", self._healthz)
            app.router.add_get("/readyz", self._readyz)
            app.router.add_get("/metrics", self._metrics)
            runner = web.AppRunner(
                app,
                access_log=None,
                keepalive_timeout=IDLE_TIMEOUT,
                shutdown_timeout=self.request_grace,
                # Bodies stay as sent: collector.otlp decompresses them within the size limit.
                auto_decompress=False,
            )
            await runner.setup()
            site = web.TCPSite(runner, settings.host, settings.http_port)
            try:
                await site.start()
            except OSError as error:
                await runner.cleanup()
                message = _cannot_listen("HTTP", settings.host, settings.http_port, error)
                raise OSError(message) from error
            self._runner = runner
            self.http_port = settings.http_port
        if settings.grpc_port:
            server = grpc.aio.server(
                options=[
                    ("grpc.max_receive_message_length", settings.max_request_bytes),
                    ("grpc.so_reuseport", 0),
                ]
            )
            server.add_generic_rpc_handlers([self._grpc_handler(TRACES), self._grpc_handler(LOGS)])
            address = f"{_grpc_host(settings.host)}:{settings.grpc_port}"
            # grpc gives no reason when it cannot bind (and logs a line of its own): a plain
            # socket finds the reason first.
            problem = _bind_problem(settings.host, settings.grpc_port)
            try:
                if problem is None and server.add_insecure_port(address) == 0:
                    problem = OSError(f"grpc could not bind {address}")
            except RuntimeError as error:
                problem = OSError(str(error))
            if problem is not None:
                if self._runner is not None:
                    await self._runner.cleanup()
                raise OSError(_cannot_listen("gRPC", settings.host, settings.grpc_port, problem))
            await server.start()
            self._grpc = server
            self.grpc_port = settings.grpc_port

    async def stop(self) -> None:
        """Stop taking data, let requests under way finish, then drain the intake.

        ``/readyz`` answers 503 from the first moment. New connections are refused; requests
        under way get ``request_grace`` seconds; then the intake converts what waits and
        delivers for ``shutdown_timeout`` seconds (the rest goes to the spool).
        """
        if self._stopping:
            return
        self._stopping = True
        logger.info("collector_stopping")
        steps: list[Awaitable[Any]] = []
        if self._grpc is not None:
            steps.append(self._grpc.stop(self.request_grace))
        if self._runner is not None:
            steps.append(self._stop_http(self._runner))
        await asyncio.gather(*steps)
        self._closed = True
        # A decode whose request was cancelled may still be handing its spans to the intake.
        await asyncio.to_thread(self._executor.shutdown, True)
        await asyncio.to_thread(self.intake.shutdown, self.shutdown_timeout)
        logger.info("collector_stopped", **self.intake.counts())

    async def _stop_http(self, runner: web.AppRunner) -> None:
        """Close the listening socket, wait for OTLP requests under way, then close the rest.

        aiohttp's own graceful shutdown stops reading from every connection at once, so a body
        still streaming in would never complete: requests are waited for here first.
        """
        for site in list(runner.sites):
            await site.stop()
        deadline = time.monotonic() + self.request_grace
        while self._http_active and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await runner.cleanup()

    def is_ready(self) -> bool:
        """True while new data is welcome."""
        return not self._stopping and self.intake.ready()

    # -- HTTP --------------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.is_ready():
            return web.Response(text="ready\n")
        reason = "stopping" if self._stopping else "delivery has no room left"

        return web.Response(status=503, text=f"not ready: {reason}\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.render(request.headers.get("Accept"))
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type

        return response

    async def _http_metrics(self, request: web.Request) -> web.Response:
        # SDKs export metrics by default; say why they are not taken, in the answer they log.
        return web.Response(
            status=404,
            text="this service takes OTLP traces and logs only; set OTEL_METRICS_EXPORTER=none "
            "in the sender, or send metrics elsewhere\n",
        )

    async def _http_traces(self, request: web.Request) -> web.Response:
        return await self._http_export(request, TRACES)

    async def _http_logs(self, request: web.Request) -> web.Response:
        return await self._http_export(request, LOGS)

    async def _http_export(self, request: web.Request, signal: _Signal) -> web.Response:
        started = time.monotonic()
        content_type = request.headers.get("Content-Type")
        kind = _reply_kind(content_type)
        refusal: Refused | None = None
        self.metrics.in_flight.inc()
        self._http_active += 1
        try:
            self._check_http(request, content_type)
            body = await self._read_body(request)
            accepted = await self._in_turn(
                self._decode_and_accept,
                signal,
                body,
                kind,
                request.headers.get("Content-Encoding"),
            )
            response = web.Response(
                body=signal.encode_response(kind, accepted.rejected, accepted.message),
                headers={"Content-Type": kind},
            )
        except otlp.BadRequest as error:
            refusal = Refused(error.status, str(error))
            response = self._http_refusal(kind, refusal)
        except Refused as refused:
            refusal = refused
            response = self._http_refusal(kind, refusal)
        finally:
            self.metrics.in_flight.dec()
            self._http_active -= 1
        if self._stopping:
            response.force_close()  # the client reconnects, to another replica if there is one
        self.metrics.observe("http", signal.path, response.status, time.monotonic() - started)
        if refusal is not None:
            self._errors.refused("http", signal.path, refusal.status, refusal.reason)

        return response

    def _check_http(self, request: web.Request, content_type: str | None) -> None:
        """Refuse a request before its body is read: token, content type, size, rate, room,
        shutdown."""
        if self._token is not None and not self._authorized(request.headers.get("Authorization")):
            raise Refused(401, "missing or wrong bearer token")
        otlp.media_type(content_type)
        length = request.content_length
        if length is not None and length > self.settings.max_request_bytes:
            raise Refused(
                413,
                f"body of {length} bytes is over the limit of {self.settings.max_request_bytes}",
            )
        self._check_admission()

    def _check_admission(self) -> None:
        """Refuse when stopping, over the rate limit, or when the intake has no room."""
        if self._closed:
            raise Refused(503, "the collector is shutting down", 1.0)
        if self._bucket is not None:
            wait = self._bucket.take()
            if wait:
                raise Refused(429, "over the request rate limit", wait)
        self._check_room()

    def _check_room(self) -> None:
        """Refuse when the intake has no room for more."""
        wait_for = self.intake.refusal()
        if wait_for is not None:
            raise Refused(
                503,
                "delivery to PostHog is behind and has no room for more events (the spool, "
                "or without one the memory queue, is full)",
                wait_for,
            )

    async def _read_body(self, request: web.Request) -> bytes:
        """The body, or 408 when it has not all arrived within ``body_timeout`` seconds (a
        client that stalls mid-body must not hold a request open)."""
        try:
            return await asyncio.wait_for(
                _read_body(request, self.settings.max_request_bytes), self.body_timeout
            )
        except TimeoutError:
            raise Refused(408, f"the body did not arrive within {self.body_timeout:g} s") from None

    def _http_refusal(self, kind: str, refusal: Refused) -> web.Response:
        response = web.Response(
            status=refusal.status,
            body=otlp.encode_status(kind, refusal.grpc_code.value[0], refusal.message),
            headers={"Content-Type": kind},
        )
        if refusal.retry_after is not None:
            response.headers["Retry-After"] = str(retry_seconds(refusal.retry_after))
        if refusal.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="otel-bedrock-collector"'

        return response

    def _decode_and_accept(
        self, signal: _Signal, body: bytes, kind: str, encoding: str | None
    ) -> Accepted:
        """Read an OTLP/HTTP body and hand it to the intake (worker thread)."""
        request = signal.decode_http(
            body, kind, encoding, max_bytes=self.settings.max_request_bytes
        )

        return signal.accept(self.intake, request)

    # -- gRPC --------------------------------------------------------------------------------

    def _grpc_handler(self, signal: _Signal) -> grpc.GenericRpcHandler:
        async def export(body: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            return await self._grpc_export(signal, body, context)

        handler = grpc.unary_unary_rpc_method_handler(export)

        return grpc.method_handlers_generic_handler(signal.service, {"Export": handler})

    async def _grpc_export(
        self, signal: _Signal, body: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        started = time.monotonic()
        path = f"{signal.service.rsplit('.', 1)[-1]}/Export"
        code, refusal = grpc.StatusCode.OK, None
        self.metrics.in_flight.inc()
        try:
            metadata = dict(context.invocation_metadata() or ())
            authorization = metadata.get("authorization")
            if self._token is not None and not self._authorized(
                authorization if isinstance(authorization, str) else None
            ):
                raise Refused(401, "missing or wrong bearer token")
            self._check_admission()
            accepted = await self._in_turn(self._parse_and_accept, signal, body)
            reply: bytes = signal.encode_response(
                otlp.PROTOBUF, accepted.rejected, accepted.message
            )
        except Refused as refused:
            refusal = refused
            code = refused.grpc_code
        finally:
            self.metrics.in_flight.dec()
        self.metrics.observe("grpc", path, code.name, time.monotonic() - started)
        if refusal is None:
            return reply
        self._errors.refused("grpc", path, code.name, refusal.reason)
        await context.abort(code, refusal.message, refusal.grpc_trailers())
        raise AssertionError("abort() returned")  # pragma: no cover - abort always raises

    def _parse_and_accept(self, signal: _Signal, body: bytes) -> Accepted:
        """Parse a gRPC export message and hand it to the intake (worker thread)."""
        try:
            request = signal.decode_grpc(body)
        except (DecodeError, RecursionError) as error:
            raise Refused(400, f"malformed protobuf message: {error}") from None

        return signal.accept(self.intake, request)

    # -- shared ------------------------------------------------------------------------------

    async def _in_turn(self, work: Callable[..., Accepted], *args: Any) -> Accepted:
        """Run ``work`` on a worker thread in one of the MAX_DECODING places, once the intake
        still has room; 503 after DECODE_WAIT without a place.

        Room is checked again once the place is had: requests that waited were admitted
        before those ahead of them took theirs. The place is given back when the thread is
        done, even when the request was cancelled meanwhile (the thread cannot be).
        """
        assert self._decoding is not None
        decoding = self._decoding
        try:
            await asyncio.wait_for(decoding.acquire(), DECODE_WAIT)
        except TimeoutError:
            raise Refused(503, "too many requests being decoded at once", 1.0) from None
        try:
            self._check_room()
        except Refused:
            decoding.release()
            raise
        loop = asyncio.get_running_loop()
        done = self._executor.submit(work, *args)
        done.add_done_callback(lambda _: loop.call_soon_threadsafe(decoding.release))

        return await asyncio.wrap_future(done)

    def _authorized(self, header: str | None) -> bool:
        """True when ``header`` is ``Bearer <our token>`` (compared in constant time)."""
        assert self._token is not None
        scheme, _, given = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False

        try:
            # aiohttp keeps header bytes that are not UTF-8 as surrogates: give them back.
            sent = given.strip().encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return False

        return hmac.compare_digest(sent, self._token)


def _reply_kind(content_type: str | None) -> str:
    """The format of answers to a request: its own, or JSON when it is not an OTLP format."""
    try:
        return otlp.media_type(content_type)
    except otlp.UnsupportedMediaType:
        return otlp.JSON


def _bind_problem(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on (the first address's error), or None when a
    socket could bind one of its addresses now."""
    try:
        infos = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as error:
        return error
    problems = []
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
            try:
                probe.bind(address)
            except OSError as error:
                problems.append(error)
            else:
                return None

    return problems[0] if problems else None


def _cannot_listen(protocol: str, host: str, port: int, error: OSError) -> str:
    """One line for a server that cannot listen, naming the settings that would fix it."""
    port_field = f"{protocol.lower()}_port"
    host_setting = f"--host, {env_name('host')}"
    port_setting = f"--{port_field.replace('_', '-')}, {env_name(port_field)}"
    reason = os.strerror(error.errno) if error.errno else str(error)
    if isinstance(error, socket.gaierror):
        reason, settings = f"no such host ({error.strerror})", host_setting
    elif error.errno in (errno.EADDRINUSE, errno.EACCES):
        settings = port_setting
    else:
        settings = f"{host_setting}; {port_setting}"

    return f"cannot listen for OTLP/{protocol} on {host}:{port} ({settings}): {reason}"


def _loopback(host: str) -> bool:
    """True when ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _grpc_host(host: str) -> str:
    """A host for a grpc address: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The request body, read as it streams in; 413 as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)

    return b"".join(chunks)


# -- running the service ---------------------------------------------------------------------


async def serve(collector: Collector, **started: Any) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully.

    Args:
        collector: The servers to run.
        started: Extra fields for the ``collector_started`` log line (never secrets).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    loop.set_exception_handler(LoopProblems(IDLE_TIMEOUT).handle)
    raise_open_files_limit()
    await collector.start()
    settings = collector.settings
    logger.info(
        "collector_started",
        host=settings.host,
        http_port=collector.http_port,
        grpc_port=collector.grpc_port,
        auth="on" if settings.token else "off",
        max_request_bytes=settings.max_request_bytes,
        rate_limit=settings.rate_limit or None,
        burst=settings.rate_burst if settings.rate_limit else None,
        **started,
    )
    if settings.token is None and not _loopback(settings.host):
        logger.warning(
            "collector_open_to_network",
            host=settings.host,
            hint="any client that reaches this host can send spans; set a bearer token with "
            "--token-file or OTEL_BEDROCK_COLLECTOR_TOKEN, or listen on 127.0.0.1",
        )
    try:
        await stop.wait()
    finally:
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)
        await collector.stop()


class CollectorThread:
    """Runs a :class:`Collector` on its own event loop in a daemon thread.

    For tests and benchmarks that send to a collector in the same process; ``start`` and
    ``stop`` are called from any other thread.
    """

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="otel-bedrock-collector", daemon=True
        )

    @property
    def http_url(self) -> str:
        """``http://host:port`` of OTLP/HTTP."""
        return f"http://{self.collector.settings.host}:{self.collector.http_port}"

    @property
    def grpc_target(self) -> str:
        """``host:port`` of OTLP/gRPC."""
        return f"{self.collector.settings.host}:{self.collector.grpc_port}"

    def start(self) -> Self:
        """Start the loop and the servers; raises what binding raised."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.collector.start(), self._loop).result(10)

        return self

    def stop(self) -> None:
        """Stop the servers gracefully (draining the intake), then the loop; once."""
        if self._loop.is_closed():
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self.collector.stop(), self._loop)
            future.result(self.collector.request_grace + self.collector.shutdown_timeout + 10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
