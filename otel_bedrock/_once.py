"""Logging a repeated problem once per process, then at DEBUG."""

from __future__ import annotations

import logging
import threading
from typing import Any

_MAX_KEYS = 1024
_seen: set[str] = set()
_lock = threading.Lock()


def first_time(key: str) -> bool:
    """True the first time ``key`` is seen in this process (bounded memory)."""
    if key in _seen:
        return False
    with _lock:
        if key in _seen or len(_seen) >= _MAX_KEYS:
            return False
        _seen.add(key)

    return True


def warn_once(logger: logging.Logger, key: str, message: str, *args: Any, **kwargs: Any) -> None:
    """Log ``message`` at WARNING the first time ``key`` comes up, at DEBUG afterwards."""
    level = logging.WARNING if first_time(key) else logging.DEBUG
    logger.log(level, message, *args, **kwargs)
