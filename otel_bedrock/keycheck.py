"""The optional start-up check that PostHog accepts the project API key.

A wrong but well-formed key gets HTTP 200 from PostHog's capture endpoints, and the events it
sends are silently lost. PostHog's ``/flags`` endpoint does check the key, so asking it once
at start (``OTEL_BEDROCK_VERIFY_KEY=true``) turns that silent loss into an error.
"""

from __future__ import annotations

import logging

import requests

from otel_bedrock.errors import ConfigError

logger = logging.getLogger(__name__)

CHECK_DISTINCT_ID = "otel-bedrock-key-check"


def check_project_key(api_key: str, host: str, timeout: float = 5.0) -> bool:
    """Ask PostHog whether it knows ``api_key``; called once, at start, on the caller's thread.

    Returns:
        True when PostHog accepted the key, False when it could not be asked (logged).

    Raises:
        ConfigError: when PostHog answers that the key is not a valid project key.
    """
    url = host.rstrip("/") + "/flags/?v=2"
    body = {"api_key": api_key, "distinct_id": CHECK_DISTINCT_ID}
    try:
        response = requests.post(url, json=body, timeout=timeout)
    except requests.RequestException as error:
        logger.warning(
            "posthog_key_check_failed host=%s error=%s; events will be sent anyway",
            host,
            type(error).__name__,
        )
        return False
    if response.status_code in (401, 403):
        raise ConfigError(
            f"otel-bedrock configuration: POSTHOG_API_KEY is not a project key of {host} "
            f"(PostHog answered {response.status_code}); copy the project API key from the "
            "project settings, and check POSTHOG_HOST (US or EU cloud)"
        )
    if response.status_code != 200:
        logger.warning(
            "posthog_key_check_inconclusive host=%s status=%s", host, response.status_code
        )
        return False

    return True
