"""Logging a repeated problem once per process, then at DEBUG."""

from __future__ import annotations

import logging
import threading
from typing import Any

_MAX_KEYS = 1024
"""Keys remembered per kind (the part of a key before its first ``:``), and kinds at most."""
_seen: dict[str, set[str]] = {}
_lock = threading.Lock()


def first_time(key: str) -> bool:
    """True the first time ``key`` is seen in this process (bounded memory).

    Keys are bounded per kind, so that keys made from data (``model_unpriced:<id>``) cannot
    use up the room of the others: past the bound, a kind's new keys are never first.
    """
    kind = key.partition(":")[0]
    known = _seen.get(kind)
    if known is not None and key in known:  # the common case, without the lock
        return False
    with _lock:
        seen = _seen.get(kind)
        if seen is None:
            if len(_seen) >= _MAX_KEYS:
                return False
            seen = _seen[kind] = set()
        if key in seen or len(seen) >= _MAX_KEYS:
            return False
        seen.add(key)

    return True


def warn_once(logger: logging.Logger, key: str, message: str, *args: Any, **kwargs: Any) -> None:
    """Log ``message`` at WARNING the first time ``key`` comes up, at DEBUG afterwards."""
    level = logging.WARNING if first_time(key) else logging.DEBUG
    logger.log(level, message, *args, **kwargs)
