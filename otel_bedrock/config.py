"""Settings, from keyword arguments, the environment and ``otel-config.yaml``.

Every setting has an environment variable; keyword arguments (from code or from the
``posthog`` exporter block of an OpenTelemetry declarative configuration file) win over the
environment. A bad value raises :class:`~otel_bedrock.errors.ConfigError` at start, naming the
setting and the value.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from otel_bedrock._once import warn_once
from otel_bedrock.errors import ConfigError
from otel_bedrock.store import data_dir

logger = logging.getLogger(__name__)

DEFAULT_POSTHOG_HOST = "https://us.i.posthog.com"

EventSchema = Literal["bedrock", "ai", "both"]

# Environment variable of each setting, for error messages.
ENV_NAMES = {
    "posthog_api_key": "POSTHOG_API_KEY",
    "posthog_host": "POSTHOG_HOST",
    "capture_content": "OTEL_BEDROCK_CAPTURE_CONTENT",
    "genai_capture_content": "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    "max_content_chars": "OTEL_BEDROCK_MAX_CONTENT_CHARS",
    "event_schema": "OTEL_BEDROCK_EVENT_SCHEMA",
    "prices_file": "OTEL_BEDROCK_PRICES_FILE",
    "inference_profiles": "OTEL_BEDROCK_INFERENCE_PROFILES",
    "spool": "OTEL_BEDROCK_SPOOL_PATH",
    "spool_max_mb": "OTEL_BEDROCK_SPOOL_MAX_MB",
    "spool_max_age_hours": "OTEL_BEDROCK_SPOOL_MAX_AGE_HOURS",
    "max_queue": "OTEL_BEDROCK_MAX_QUEUE",
    "shutdown_timeout": "OTEL_BEDROCK_SHUTDOWN_TIMEOUT",
    "verify_key": "OTEL_BEDROCK_VERIFY_KEY",
    "identity_keys": "OTEL_BEDROCK_IDENTITY_KEYS",
}


# Keyword names (code, configuration files) that differ from the field names.
KEYWORD_FIELDS = {"api_key": "posthog_api_key", "host": "posthog_host"}


class Settings(BaseSettings):
    """All otel-bedrock settings. Build with :func:`load_settings` for friendly errors.

    Each field is read from its environment variable only; keywords are mapped to fields by
    :func:`load_settings`, so that a service's own ``HOST`` or ``API_KEY`` variables are never
    taken for ours.
    """

    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, env_ignore_empty=True, case_sensitive=True
    )

    posthog_api_key: str | None = Field(
        default=None,
        repr=False,  # never in a traceback or a log line of the settings
        validation_alias=AliasChoices("POSTHOG_API_KEY", "POSTHOG_PROJECT_API_KEY"),
    )
    posthog_host: str = Field(default=DEFAULT_POSTHOG_HOST, validation_alias="POSTHOG_HOST")
    capture_content: bool = Field(
        default=False,
        validation_alias="OTEL_BEDROCK_CAPTURE_CONTENT",
    )
    genai_capture_content: bool = Field(
        default=False,
        validation_alias="OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    )
    max_content_chars: int = Field(
        default=16_000,
        ge=0,
        validation_alias="OTEL_BEDROCK_MAX_CONTENT_CHARS",
    )
    event_schema: EventSchema = Field(
        default="bedrock",
        validation_alias="OTEL_BEDROCK_EVENT_SCHEMA",
    )
    prices_file: Path | None = Field(default=None, validation_alias="OTEL_BEDROCK_PRICES_FILE")
    spool: str | None = Field(default=None, validation_alias="OTEL_BEDROCK_SPOOL_PATH")
    spool_max_mb: float = Field(default=100.0, gt=0, validation_alias="OTEL_BEDROCK_SPOOL_MAX_MB")
    spool_max_age_hours: float = Field(
        default=72.0, gt=0, validation_alias="OTEL_BEDROCK_SPOOL_MAX_AGE_HOURS"
    )
    max_queue: int = Field(default=10_000, ge=1, validation_alias="OTEL_BEDROCK_MAX_QUEUE")
    shutdown_timeout: float = Field(
        default=5.0, ge=0, validation_alias="OTEL_BEDROCK_SHUTDOWN_TIMEOUT"
    )
    verify_key: bool = Field(default=False, validation_alias="OTEL_BEDROCK_VERIFY_KEY")
    inference_profiles: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        validation_alias="OTEL_BEDROCK_INFERENCE_PROFILES",
    )
    # More span attributes that name the PostHog person, read after the standard ones.
    identity_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        validation_alias="OTEL_BEDROCK_IDENTITY_KEYS",
    )

    @property
    def content_capture(self) -> bool:
        """True when prompt and generation text may leave the process."""
        return self.capture_content or self.genai_capture_content

    @property
    def spool_path(self) -> Path | None:
        """The spool file, or None when the spool is switched off (``off``).

        By default one file per PostHog host in the data folder, named by a hash of the host
        only: a process restarted with a corrected project key drains what a wrong key left.
        When that folder cannot be written (a read-only home, as on AWS Lambda), delivery runs
        without a spool and one warning names ``OTEL_BEDROCK_SPOOL_PATH``.

        Raises:
            ConfigError: when ``OTEL_BEDROCK_SPOOL_PATH`` names a file that cannot be written.
        """
        if self.spool is None:
            host = self.posthog_host.encode()
            path = data_dir() / f"spool-{hashlib.sha256(host).hexdigest()[:12]}.sqlite3"
            if _writable(path):
                return path
            warn_once(
                logger,
                f"spool_unwritable:{path}",
                "posthog_spool_off path=%s: the default spool folder cannot be written, so "
                "events wait in memory only and are lost if the process dies; set "
                "OTEL_BEDROCK_SPOOL_PATH to a writable file (for example "
                "/tmp/otel-bedrock-spool.sqlite3), or to off to silence this",
                path,
            )
            return None
        if self.spool.strip().lower() in ("off", "none", "false", "0"):
            return None
        path = Path(self.spool).expanduser()
        if not _writable(path):
            raise ConfigError(
                f"OTEL_BEDROCK_SPOOL_PATH={self.spool!r}: cannot create or write the spool "
                "file there; give a writable path, or off to keep events in memory only"
            )

        return path

    @field_validator("posthog_api_key")
    @classmethod
    def _check_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if value.startswith("phx_"):
            raise ValueError(
                "this is a personal API key (phx_...); events need the project API key "
                "(phc_...) from Project settings"
            )
        if not value.startswith("phc_") or len(value) <= len("phc_"):
            raise ValueError(
                "not a PostHog project API key; copy the one starting with phc_ from the "
                "project settings"
            )
        if any(c.isspace() for c in value):
            raise ValueError("a project API key is one word, such as phc_...")

        return value

    @field_validator("posthog_host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("the host must be a URL starting with https:// or http://")

        return value

    @field_validator("prices_file")
    @classmethod
    def _check_prices_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")

        return value

    @field_validator("inference_profiles", mode="before")
    @classmethod
    def _parse_profiles(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        profiles = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            arn, sep, model = item.partition("=")
            if not sep or not arn.strip() or not model.strip():
                raise ValueError(f"expected ARN=model_id pairs separated by commas, got {item!r}")
            profiles[arn.strip()] = model.strip()

        return profiles

    @field_validator("identity_keys", mode="before")
    @classmethod
    def _parse_identity_keys(cls, value: Any) -> Any:
        """Attribute names, from a comma-separated string or a list (configuration file)."""
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list | tuple):
            return value
        keys = []
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"expected attribute names, got {key!r}")
            if key.strip():
                keys.append(key.strip())

        return tuple(keys)


def _writable(path: Path) -> bool:
    """Whether ``path`` can be created or written (its folder created when missing)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    if path.exists():
        return os.access(path, os.R_OK | os.W_OK)

    return os.access(path.parent, os.W_OK | os.X_OK)


def _field_names() -> dict[str, str]:
    """Field name of every name a setting can be given by."""
    names = dict(KEYWORD_FIELDS)
    for field, info in Settings.model_fields.items():
        names[field] = field
        alias = info.validation_alias
        for choice in getattr(alias, "choices", None) or [alias]:
            if isinstance(choice, str):
                names[choice] = field

    return names


def _alias(field: str) -> str:
    """The name a field is given by (its environment variable); unknown names pass through."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias
    choices = getattr(alias, "choices", None)

    return str(choices[0]) if choices else field


def load_settings(**overrides: Any) -> Settings:
    """Read settings from ``overrides`` and the environment.

    An override that is None or empty (an unset ``${VAR}`` in a configuration file) counts as
    not given.

    Raises:
        ConfigError: naming the first bad setting and its value.
    """
    given = {key: value for key, value in overrides.items() if value not in (None, "")}
    by_alias = {_alias(KEYWORD_FIELDS.get(key, key)): value for key, value in given.items()}
    try:
        return Settings(**by_alias)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, given)) from None
    except SettingsError as exc:
        raise ConfigError(f"otel-bedrock configuration: {exc}") from None


def _describe(exc: ValidationError, given: dict[str, Any]) -> str:
    """One line naming each bad setting where the user gave it, with secrets masked."""
    fields = _field_names()
    problems = []
    for error in exc.errors():
        loc = str(error["loc"][0]) if error["loc"] else "?"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown setting {loc!r}")
            continue
        field = fields.get(loc, loc)
        given_as = next((key for key in given if fields.get(key) == field), None)
        name = given_as or ENV_NAMES.get(field, field)
        value = error.get("input")
        if field == "posthog_api_key" and isinstance(value, str):
            value = _mask(value)
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{name}={value!r}: {message}")

    return "otel-bedrock configuration: " + "; ".join(problems)


def _mask(secret: str) -> str:
    """Enough of a key to recognise it, not enough to use it."""
    return secret[:4] + "..." if len(secret) > 8 else "..."
