"""Errors that otel-bedrock raises to its caller.

::

    OtelBedrockError
    └── ConfigError          a setting has a bad value; raised at start, never on the request path
        └── PriceTableError  a price table file is unreadable or malformed (otel_bedrock.pricing)

Nothing on the request or export path raises into the application: failures there are logged
and the event is sent with what is known.
"""

from __future__ import annotations


class OtelBedrockError(Exception):
    """Base of every error otel-bedrock raises."""


class ConfigError(OtelBedrockError, ValueError):
    """A setting is missing or has a bad value; the message names the setting."""
