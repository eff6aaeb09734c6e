"""The collector's own settings, and the PostHog settings it shares with the in-process exporter.

:class:`CollectorSettings` holds what only the service needs (where to listen, the bearer
token, request limits, how long a span waits for its content). Each is read from its
``OTEL_BEDROCK_COLLECTOR_*`` environment variable; keyword arguments (command-line flags)
win. The PostHog side (project key, host, prices, identity keys, content capture, spool) is
the same :class:`otel_bedrock.config.Settings` the exporter uses, read from the ``posthog``
exporter block of an OpenTelemetry declarative configuration file when one is given
(``OTEL_CONFIG_FILE``), else from the environment: see :func:`posthog_settings`.

Everything here runs once, at start; a bad value raises
:class:`~otel_bedrock.errors.ConfigError` naming the setting or the file.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from otel_bedrock.config import Settings, load_settings
from otel_bedrock.errors import ConfigError

PREFIX = "OTEL_BEDROCK_COLLECTOR_"
MIB = 1024 * 1024


class CollectorSettings(BaseSettings):
    """Settings of the collector service. Build with :func:`load_collector_settings`.

    Attributes:
        host: Interface to listen on; loopback unless told otherwise.
        http_port: OTLP/HTTP port; 0 turns OTLP/HTTP off.
        grpc_port: OTLP/gRPC port; 0 turns OTLP/gRPC off.
        token: When set, every request must carry ``Authorization: Bearer <token>``.
        max_request_bytes: Largest request body, compressed and decompressed.
        rate_limit: Requests per second each server accepts; 0 means no limit.
        burst: Requests accepted at once above the rate; by default one second's worth.
        content_wait: Seconds a Bedrock span waits for its content log records when content
            capture is on.
        merge_wait: Seconds a Bedrock span waits for a span of another instrumentation that
            traced the same call (nested in it or enclosing it), to make one event of both.
        config_file: An OpenTelemetry declarative configuration file with a ``posthog``
            exporter block (``OTEL_CONFIG_FILE`` by default).
        delivery: ``process`` sends to PostHog from a child process, so that receiving and
            delivering each get a core; ``thread`` keeps everything in one process (one core,
            less memory).
    """

    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, env_ignore_empty=True, case_sensitive=True
    )

    host: str = Field(default="127.0.0.1", min_length=1, validation_alias=f"{PREFIX}HOST")
    http_port: int = Field(default=4318, ge=0, le=65535, validation_alias=f"{PREFIX}HTTP_PORT")
    grpc_port: int = Field(default=4317, ge=0, le=65535, validation_alias=f"{PREFIX}GRPC_PORT")
    token: SecretStr | None = Field(default=None, validation_alias=f"{PREFIX}TOKEN")
    max_request_bytes: int = Field(
        default=8 * MIB, gt=0, validation_alias=f"{PREFIX}MAX_REQUEST_BYTES"
    )
    rate_limit: float = Field(default=0.0, ge=0, validation_alias=f"{PREFIX}RATE_LIMIT")
    burst: int | None = Field(default=None, gt=0, validation_alias=f"{PREFIX}BURST")
    content_wait: float = Field(default=2.0, ge=0, le=60, validation_alias=f"{PREFIX}CONTENT_WAIT")
    merge_wait: float = Field(default=1.0, ge=0, le=60, validation_alias=f"{PREFIX}MERGE_WAIT")
    config_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices(f"{PREFIX}CONFIG_FILE", "OTEL_CONFIG_FILE"),
    )
    delivery: Literal["process", "thread"] = Field(
        default="process", validation_alias=f"{PREFIX}DELIVERY"
    )

    @property
    def rate_burst(self) -> int:
        """Requests accepted at once: ``burst``, else one second's worth (at least one)."""
        if self.burst is not None:
            return self.burst

        return max(1, round(self.rate_limit))

    @model_validator(mode="after")
    def _check(self) -> CollectorSettings:
        http, grpc = _named("http_port"), _named("grpc_port")
        if self.http_port == 0 and self.grpc_port == 0:
            raise ValueError(f"{http} and {grpc} are both 0: nothing would listen")
        if self.http_port == self.grpc_port:
            raise ValueError(
                f"{http} and {grpc} are both {self.http_port}: give each server its own port"
            )
        if self.token is not None and not self.token.get_secret_value().strip():
            raise ValueError(f"{PREFIX}TOKEN is blank")
        if self.burst is not None and not self.rate_limit:
            raise ValueError(
                f"{_named('burst')}={self.burst} needs a rate: set {_named('rate_limit')} "
                "too, or leave the burst out (there is no rate limit by default)"
            )
        if self.config_file is not None and not self.config_file.is_file():
            raise ValueError(
                f"--config / OTEL_CONFIG_FILE: {self.config_file}: "
                + ("is a folder, not a file" if self.config_file.is_dir() else "no such file")
            )

        return self


def _named(field: str) -> str:
    """How a user sets ``field``: its flag and its environment variable."""
    return f"--{field.replace('_', '-')} / {env_name(field)}"


def load_collector_settings(**overrides: Any) -> CollectorSettings:
    """Collector settings from ``overrides`` (field names; None means not given) and the
    environment.

    Raises:
        ConfigError: naming the first bad setting and its value (the token is never shown).
    """
    token_variable = env_name("token")
    if os.environ.get(token_variable) == "" and overrides.get("token") is None:
        # Set but empty (an empty secret, say): refuse rather than silently accept anyone.
        raise ConfigError(
            f"otel-bedrock collector configuration: {token_variable} is set but empty; give "
            "the token, or unset the variable to accept requests without one"
        )
    given = {key: value for key, value in overrides.items() if value is not None}
    by_alias = {env_name(key): value for key, value in given.items()}
    try:
        return CollectorSettings(**by_alias)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, given)) from None
    except SettingsError as exc:
        raise ConfigError(f"otel-bedrock collector configuration: {exc}") from None


def env_name(field: str) -> str:
    """The environment variable that sets ``field`` (the first, where several do)."""
    info = CollectorSettings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias
    choices = getattr(alias, "choices", None)

    return str(choices[0]) if choices else field


def _describe(exc: ValidationError, given: dict[str, Any]) -> str:
    names = {env_name(field): field for field in CollectorSettings.model_fields}
    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:
            problems.append(message)
            continue
        loc = str(error["loc"][0])
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown setting {loc!r}")
            continue
        field = names.get(loc, loc)
        name = field if field in given else env_name(field)
        value = "..." if field == "token" else error.get("input")
        problems.append(f"{name}={value!r}: {message}")

    return "otel-bedrock collector configuration: " + "; ".join(problems)


def _below_error(record: logging.LogRecord) -> bool:
    return record.levelno < logging.ERROR


def load_posthog_block(path: str | Path) -> dict[str, Any]:
    """The keys of the ``posthog`` exporter block of a declarative configuration file.

    The file is read by ``opentelemetry-configuration``'s own loader: ``${VAR}`` and
    ``${VAR:-default}`` are taken from the environment, and the file is checked against the
    configuration schema. The block is looked for under
    ``tracer_provider.processors[*].batch.exporter`` and ``...simple.exporter``; the first one
    found is used. Pass the result to :func:`otel_bedrock.config.load_settings`.

    Raises:
        ConfigError: when the file cannot be read, is not a valid configuration, or has no
            ``posthog`` exporter; the message names the file.
    """
    # Imported here: the loader pulls in jsonschema, which only this start-up step needs.
    from opentelemetry.configuration.file import ConfigurationError, load_config_file

    loader_log = logging.getLogger("opentelemetry.configuration.file._loader")
    # The loader logs each failure as an error with its traceback, then raises: the
    # ConfigError below says it in one line. Its warnings still show.
    loader_log.addFilter(_below_error)
    try:
        config = load_config_file(path)
    except ConfigurationError as exc:
        problem = " ".join(str(exc).split())  # a YAML error spans several lines
        raise ConfigError(f"otel-bedrock collector configuration file {path}: {problem}") from None
    finally:
        loader_log.removeFilter(_below_error)
    provider = config.tracer_provider
    for processor in provider.processors if provider is not None else ():
        for kind in (processor.batch, processor.simple):
            exporter = getattr(kind, "exporter", None)
            extra = getattr(exporter, "additional_properties", None) or {}
            if "posthog" in extra:
                # The schema has made sure that the block is a mapping or empty.
                return dict(extra["posthog"] or {})

    raise ConfigError(
        f"otel-bedrock collector configuration file {path}: no posthog exporter under "
        "tracer_provider.processors[*].batch.exporter (or .simple.exporter)"
    )


def posthog_settings(collector: CollectorSettings) -> Settings:
    """The PostHog settings: from the configuration file's ``posthog`` block, else the
    environment (the environment fills what the block leaves out).

    Raises:
        ConfigError: naming the bad setting, or the file.
    """
    block = load_posthog_block(collector.config_file) if collector.config_file else {}
    try:
        return load_settings(**block)
    except ConfigError as exc:
        if collector.config_file is None:
            raise
        raise ConfigError(f"{exc} (in {collector.config_file})") from None


def spool_reserve(collector: CollectorSettings, posthog: Settings) -> int | None:
    """Spool room to keep free for events on their way: two whole requests, so that a
    request accepted while the spool fills still fits. None without a spool.

    Raises:
        ConfigError: when the spool is too small to keep that room.
    """
    if posthog.spool_path is None:
        return None
    reserve = 2 * collector.max_request_bytes
    if posthog.spool_max_mb * MIB < 2 * reserve:
        raise ConfigError(
            f"otel-bedrock collector configuration: OTEL_BEDROCK_SPOOL_MAX_MB (spool_max_mb in "
            f"a --config file) = {posthog.spool_max_mb:g} is too small for requests of up to "
            f"{collector.max_request_bytes} bytes ({_named('max_request_bytes')}): the "
            "collector keeps room in the spool for two whole requests, so that nothing it "
            f"accepted is pushed out; give at least {math.ceil(2 * reserve / MIB)}, or a "
            "smaller request limit"
        )

    return reserve
