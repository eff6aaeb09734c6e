"""Zero-code mode: what ``opentelemetry-instrument`` loads from this package.

- :class:`BedrockDistro` (entry point ``opentelemetry_distro: otel_bedrock``) sets defaults so
  that a PostHog project key is the only setting needed: traces go to the ``posthog`` exporter,
  metrics and logs exporters are off unless the user names some, and our configurator is used.
  It also hands our hooks to the botocore instrumentation.
- :class:`BedrockConfigurator` (entry point ``opentelemetry_configurator: otel_bedrock``) is the
  SDK's standard configurator plus our span processor. With ``OTEL_CONFIG_FILE`` set it defers
  to the declarative configuration file, where the ``posthog`` exporter works alone.

Both run once, on the main thread, before the application's code.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry.environment_variables import (
    OTEL_LOGS_EXPORTER,
    OTEL_METRICS_EXPORTER,
    OTEL_TRACES_EXPORTER,
)
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.instrumentation.environment_variables import OTEL_PYTHON_CONFIGURATOR
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.environment_variables import OTEL_CONFIG_FILE
from opentelemetry.util._importlib_metadata import EntryPoint

from otel_bedrock.config import Settings, load_settings
from otel_bedrock.errors import ConfigError
from otel_bedrock.exporter import live_exporters
from otel_bedrock.hooks import BedrockHooks, install_botocore_wrappers
from otel_bedrock.processor import BedrockSpanProcessor

logger = logging.getLogger(__name__)

ENTRY_POINT_NAME = "otel_bedrock"


class BedrockDistro(BaseDistro):  # type: ignore[misc]
    """Defaults for ``opentelemetry-instrument`` and our hooks for botocore."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault(OTEL_TRACES_EXPORTER, "posthog")
        os.environ.setdefault(OTEL_METRICS_EXPORTER, "none")
        os.environ.setdefault(OTEL_LOGS_EXPORTER, "none")
        os.environ.setdefault(OTEL_PYTHON_CONFIGURATOR, ENTRY_POINT_NAME)
        # Export spans every second rather than every five, and hold a burst of them.
        os.environ.setdefault("OTEL_BSP_SCHEDULE_DELAY", "1000")
        os.environ.setdefault("OTEL_BSP_MAX_QUEUE_SIZE", "16384")

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:
        """Instrument as usual, giving botocore's instrumentor our hooks."""
        if entry_point.name == "botocore":
            try:
                hooks = BedrockHooks(_hook_settings())
            except ConfigError:
                # Already reported by the configurator; instrument as upstream alone would.
                logger.debug("otel_bedrock_hooks_skipped reason=%s", "bad settings")
            else:
                kwargs.setdefault("request_hook", hooks.request_hook)
                kwargs.setdefault("response_hook", hooks.response_hook)
                install_botocore_wrappers()
        super().load_instrumentor(entry_point, **kwargs)


class BedrockConfigurator(_OTelSDKConfigurator):
    """The SDK's environment-driven setup, with our span processor added."""

    def _configure(self, **kwargs: Any) -> None:
        try:
            if os.environ.get(OTEL_CONFIG_FILE):
                super()._configure()  # type: ignore[no-untyped-call]
                return
            processors = [BedrockSpanProcessor(), *kwargs.pop("span_processors", ())]
            super()._configure(span_processors=processors, **kwargs)  # type: ignore[no-untyped-call]
        except ConfigError as error:
            # One clear line instead of the tracebacks opentelemetry-instrument would print;
            # the application runs on, without sending events.
            logger.error("%s. No Bedrock events will be sent.", error)


def _hook_settings() -> Settings:
    """The settings of the exporter the configurator made, else those of the environment.

    The configurator runs before the instrumentors, so with a declarative configuration file
    the hooks follow the file's ``posthog`` exporter block (content capture, profile map).
    """
    for exporter in list(live_exporters()):
        return exporter.settings

    return load_settings()
