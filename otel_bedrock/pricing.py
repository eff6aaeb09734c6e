"""USD cost of a Bedrock call from its token usage and model.

Prices come from three places, the first match winning:

1. a user price table (TOML, path given to :class:`PriceBook`);
2. our own table, ``otel_bedrock/data/prices.toml``, for models the next source lacks;
3. the offline data bundled in the ``genai-prices`` package (provider ``aws``). Its updater,
   which fetches prices over the network, is never used.

Looking a model up in ``genai-prices`` takes tens of microseconds, so a model's prices are
resolved once into a small :class:`Prices` value and cached; the cost of a call is then a few
Decimal multiplications. Tiered prices (a rate that depends on the total input tokens of the
call, ``genai-prices``' "cliff" model) are flattened into :class:`PriceTier` steps and applied
per call, so they are priced exactly. Prices that change on a date are resolved again once that
date has passed.

Input tokens in :class:`~otel_bedrock.usage.Usage` exclude cache reads and writes, as Bedrock
counts them; ``genai-prices`` counts input including them, and the conversion happens here.
Only text tokens are priced (audio, image and per-request prices are ignored). A cache write
is priced at the 5-minute rate, except the part that Claude's response reports as written with
the one-hour lifetime, which has its own rate.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from importlib import resources
from typing import Any, Final

from otel_bedrock._once import warn_once
from otel_bedrock.errors import ConfigError
from otel_bedrock.model_ids import ModelKind, ModelRef, parse_model_id
from otel_bedrock.usage import Usage

logger = logging.getLogger(__name__)

GENAI_PRICES_PROVIDER: Final = "aws"
_PRICE_KEYS: Final = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_1h_mtok",
)
_REQUIRED_KEYS: Final = ("input_mtok", "output_mtok")
_NOT_PER_TOKEN_KINDS: Final = frozenset(
    {ModelKind.PROVISIONED, ModelKind.IMPORTED, ModelKind.CUSTOM, ModelKind.MARKETPLACE}
)
_PRICEABLE_KINDS: Final = frozenset(
    {ModelKind.FOUNDATION_MODEL, ModelKind.INFERENCE_PROFILE}
    | {ModelKind.APPLICATION_INFERENCE_PROFILE}
)
_PER_MILLION: Final = 6
_USD_PLACES: Final = Decimal("1e-12")
_NEVER: Final = math.inf
_LOGGED_ID_CHARS: Final = 200
MAX_CACHED_PRICES: Final = 4096
"""Models whose prices a price book remembers; past it, the one stored first goes."""


class PriceTableError(ConfigError):
    """A price table file is unreadable or malformed; the message names the file and entry."""


class CostStatus(StrEnum):
    """Whether a call could be priced."""

    PRICED = "priced"
    UNPRICED = "unpriced"
    NOT_PER_TOKEN = "not_per_token"


@dataclass(frozen=True, slots=True)
class Prices:
    """Prices of one model in USD per million tokens.

    A cache price of None means cache tokens are billed at the input price (one-hour cache
    writes: at the cache write price). ``tiers`` lists
    the prices that replace these when the call's total input (uncached, cache read and cache
    write) is above a threshold, in ascending order.
    """

    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None
    cache_write_1h_mtok: Decimal | None = None
    tiers: tuple[PriceTier, ...] = ()
    source: str = ""

    def for_input(self, total_input_tokens: int) -> Prices:
        """Return the prices that apply to a call with this many input tokens in total."""
        for tier in reversed(self.tiers):
            if total_input_tokens > tier.above_input_tokens:
                return tier.prices

        return self


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Prices that apply to every token of a call whose total input is above a threshold."""

    above_input_tokens: int
    prices: Prices


@dataclass(frozen=True, slots=True)
class Cost:
    """USD cost of one call; amounts are None unless ``status`` is ``priced``.

    ``input_usd`` covers uncached input, cache reads and cache writes; the two cache amounts
    are also given apart.
    """

    status: CostStatus
    input_usd: float | None = None
    output_usd: float | None = None
    total_usd: float | None = None
    cache_read_usd: float | None = None
    cache_write_usd: float | None = None


UNPRICED: Final = Cost(CostStatus.UNPRICED)
NOT_PER_TOKEN: Final = Cost(CostStatus.NOT_PER_TOKEN)

_TableKey = tuple[str | None, str]  # (geo, base model id)


class PriceBook:
    """Prices of Bedrock models, resolved once per model and cached.

    Safe to share between threads; the exporter calls :meth:`cost` on its export thread.
    """

    def __init__(self, overrides_path: str | os.PathLike[str] | None = None) -> None:
        """Load our price table and, when given, the user's.

        Args:
            overrides_path: A TOML price table whose entries win over every other source.

        Raises:
            PriceTableError: A table cannot be read or has a malformed entry.
        """
        self._builtin = _builtin_table()
        self._user: dict[_TableKey, Prices] = {}
        if overrides_path is not None:
            self._user = load_price_table(overrides_path)
        self._cache: dict[_TableKey, tuple[Prices | None, float]] = {}
        self._cache_lock = threading.Lock()

    def preload(self) -> None:
        """Load the genai-prices data now rather than on the first call to price (about a
        second); for services that should be quick from their first request."""
        from genai_prices import data_snapshot

        data_snapshot.get_snapshot()

    def prices_for(self, model: ModelRef) -> Prices | None:
        """Return the per-token prices of ``model``, or None when it has none.

        Provisioned, imported, custom and Marketplace models, unmapped application inference
        profiles and unknown models have none; the last two are logged once per process.
        """
        if model.kind not in _PRICEABLE_KINDS:
            if model.kind == ModelKind.UNKNOWN:
                _warn_unpriced(model)
            return None
        if model.base_id is None:
            _warn_unpriced(model)
            return None

        key = (model.geo, model.base_id)
        cached = self._cache.get(key)
        if cached is None or cached[1] <= time.time():
            cached = self._resolve(key)
            with self._cache_lock:
                if key not in self._cache and len(self._cache) >= MAX_CACHED_PRICES:
                    self._cache.pop(next(iter(self._cache)))  # the one stored first
                self._cache[key] = cached
        if cached[0] is None:
            _warn_unpriced(model)

        return cached[0]

    def cost(self, model: ModelRef, usage: Usage) -> Cost:
        """Return the USD cost of one call.

        Args:
            model: The model called, as :func:`~otel_bedrock.model_ids.resolve_model` gives it.
            usage: The measured token counts; input tokens exclude cache reads and writes.

        Returns:
            ``not_per_token`` for provisioned, imported, custom and Marketplace models;
            ``unpriced`` when the model has no known price or the input or output count is
            missing; else ``priced`` with the amounts rounded to 12 decimal places.
        """
        if model.kind in _NOT_PER_TOKEN_KINDS:
            return NOT_PER_TOKEN
        prices = self.prices_for(model)
        if prices is None or usage.input_tokens is None or usage.output_tokens is None:
            return UNPRICED
        try:
            return price_usage(prices, usage)
        except Exception:  # noqa: BLE001 - never raise into the span processor or the exporter
            warn_once(
                logger,
                f"cost_failed:{model.raw}",
                "cost_failed model_id=%s",
                model.raw,
                exc_info=True,
            )

        return UNPRICED

    def _resolve(self, key: _TableKey) -> tuple[Prices | None, float]:
        geo, base_id = key
        for table in (self._user, self._builtin):
            found = table.get(key) if geo is not None else None
            found = found or table.get((None, base_id))
            if found is not None:
                return found, _NEVER

        return _from_genai_prices(f"{geo}.{base_id}" if geo else base_id)


def price_usage(prices: Prices, usage: Usage) -> Cost:
    """Price ``usage`` at ``prices``; a missing input or output count gives ``unpriced``."""
    if usage.input_tokens is None or usage.output_tokens is None:
        return UNPRICED

    cache_read = usage.cache_read_tokens or 0
    cache_write = usage.cache_write_tokens or 0
    if prices.tiers:
        prices = prices.for_input(usage.input_tokens + cache_read + cache_write)

    uncached = usage.input_tokens * prices.input_mtok
    read = cache_read * _or(prices.cache_read_mtok, prices.input_mtok)
    write_1h = min(usage.cache_write_1h_tokens or 0, cache_write)
    write_price = _or(prices.cache_write_mtok, prices.input_mtok)
    write = (cache_write - write_1h) * write_price
    write += write_1h * _or(prices.cache_write_1h_mtok, write_price)
    output = usage.output_tokens * prices.output_mtok
    total_input = uncached + read + write

    return Cost(
        CostStatus.PRICED,
        input_usd=_usd(total_input),
        output_usd=_usd(output),
        total_usd=_usd(total_input + output),
        cache_read_usd=_usd(read),
        cache_write_usd=_usd(write),
    )


def load_price_table(path: str | os.PathLike[str]) -> dict[tuple[str | None, str], Prices]:
    """Read a TOML price table; keys are (geo, base model id).

    Raises:
        PriceTableError: The file cannot be read, is not TOML, or has a malformed entry.
    """
    name = os.fspath(path)
    try:
        with open(path, "rb") as file:
            text = file.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceTableError(f"price table {name}: cannot read it: {exc}") from exc

    return _parse_table(text, name)


_BUILTIN: dict[_TableKey, Prices] | None = None


def _builtin_table() -> dict[_TableKey, Prices]:
    """Our own price table, read once per process."""
    global _BUILTIN
    if _BUILTIN is None:
        text = (resources.files("otel_bedrock") / "data" / "prices.toml").read_text("utf-8")
        _BUILTIN = _parse_table(text, "otel_bedrock/data/prices.toml")

    return _BUILTIN


def _parse_table(text: str, name: str) -> dict[_TableKey, Prices]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PriceTableError(f"price table {name}: not valid TOML: {exc}") from exc
    extra = sorted(set(data) - {"models"})
    if extra:
        raise PriceTableError(f"price table {name}: unknown top-level key {extra[0]!r}")
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise PriceTableError(f"price table {name}: 'models' must be a table")

    table: dict[_TableKey, Prices] = {}
    for model_id, entry in models.items():
        where = f'price table {name}, entry [models."{model_id}"]'
        ref = parse_model_id(model_id)
        if ref.kind not in (ModelKind.FOUNDATION_MODEL, ModelKind.INFERENCE_PROFILE):
            raise PriceTableError(f"{where}: not a Bedrock model or inference profile id")
        assert ref.base_id is not None  # foundation models and profiles always have one
        table[(ref.geo, ref.base_id)] = _parse_entry(entry, where, name)

    return table


def _parse_entry(entry: Any, where: str, source: str) -> Prices:
    if not isinstance(entry, dict):
        raise PriceTableError(f"{where}: must be a table of prices")
    unknown = sorted(set(entry) - set(_PRICE_KEYS))
    if unknown:
        allowed = ", ".join(_PRICE_KEYS)
        raise PriceTableError(f"{where}: unknown key {unknown[0]!r} (allowed: {allowed})")
    missing = [key for key in _REQUIRED_KEYS if key not in entry]
    if missing:
        raise PriceTableError(f"{where}: missing {missing[0]!r}")

    values = {key: _parse_price(entry[key], f"{where}: {key}") for key in entry}
    return Prices(
        input_mtok=values["input_mtok"],
        output_mtok=values["output_mtok"],
        cache_read_mtok=values.get("cache_read_mtok"),
        cache_write_mtok=values.get("cache_write_mtok"),
        cache_write_1h_mtok=values.get("cache_write_1h_mtok"),
        source=source,
    )


def _parse_price(value: Any, where: str) -> Decimal:
    price: Decimal | None = None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            price = Decimal(str(value).strip())
        except InvalidOperation:
            price = None
    if price is None or not price.is_finite() or price < 0:
        raise PriceTableError(
            f"{where} must be a non-negative number of USD per million tokens, got {value!r}"
        )

    return price


def _from_genai_prices(model_ref: str) -> tuple[Prices | None, float]:
    """Resolve one model in genai-prices' bundled data; the float says until when it holds."""
    import genai_prices  # imported here: loading its data takes a moment

    now = datetime.now(tz=UTC)
    try:
        calculation = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=0),
            model_ref,
            provider_id=GENAI_PRICES_PROVIDER,
            genai_request_timestamp=now,
        )
    except LookupError:
        return None, _NEVER
    except Exception:
        logger.warning("genai_prices_lookup_failed model=%s", model_ref, exc_info=True)
        return None, _NEVER

    source = f"genai-prices:{calculation.model.id}"
    prices = _flatten(calculation.model_price, source)
    if prices is None:
        logger.warning("genai_prices_entry_unusable model=%s entry=%s", model_ref, source)

    return prices, _next_price_change(calculation.model.prices, now)


def _flatten(model_price: Any, source: str) -> Prices | None:
    """Turn a genai-prices ``ModelPrice`` into :class:`Prices`, its tiers into steps."""
    from genai_prices.types import TieredPrices

    raw = {key: getattr(model_price, key, None) for key in _PRICE_KEYS}
    if raw["cache_write_mtok"] is None:
        raw["cache_write_mtok"] = getattr(model_price, "cache_write_5m_mtok", None)
    if raw["input_mtok"] is None:
        return None
    if raw["output_mtok"] is None:
        raw["output_mtok"] = Decimal(0)  # embedding models produce no tokens

    # A call whose total input is above ``start`` pays every key's rate for that total.
    tiered = [value for value in raw.values() if isinstance(value, TieredPrices)]
    starts = sorted({tier.start for value in tiered for tier in value.tiers})
    steps = [PriceTier(start, _prices_at(raw, start + 1, (), source)) for start in starts]

    return _prices_at(raw, 0, tuple(steps), source)


def _prices_at(
    raw: Mapping[str, Any], total_input: int, tiers: tuple[PriceTier, ...], source: str
) -> Prices:
    """The flat prices a genai-prices price set gives for a call with ``total_input`` tokens."""
    from genai_prices.types import TieredPrices

    rates: dict[str, Any] = {}
    for key, value in raw.items():
        rates[key] = value
        if isinstance(value, TieredPrices):
            rates[key] = value.base
            for tier in value.tiers:
                if total_input > tier.start:
                    rates[key] = tier.price

    return Prices(**rates, tiers=tiers, source=source)


def _next_price_change(conditional: Any, now: datetime) -> float:
    """Return when genai-prices' choice among date or time-of-day prices next changes."""
    from genai_prices.types import StartDateConstraint, TimeOfDateConstraint

    if not isinstance(conditional, list):
        return _NEVER
    changes: list[datetime] = []
    for price in conditional:
        constraint = price.constraint
        if isinstance(constraint, StartDateConstraint) and constraint.start_date > now.date():
            changes.append(datetime.combine(constraint.start_date, datetime.min.time(), UTC))
        elif isinstance(constraint, TimeOfDateConstraint):
            for moment in (constraint.start_time, constraint.end_time):
                changes.append(_next_time_of_day(moment, now))

    return min(changes).timestamp() if changes else _NEVER


def _next_time_of_day(moment: Any, now: datetime) -> datetime:
    tz = moment.tzinfo or UTC
    today: date = now.astimezone(tz).date()
    candidate = datetime.combine(today, moment.replace(tzinfo=None), tz)
    if candidate <= now:
        candidate += timedelta(days=1)

    return candidate


def _or(value: Decimal | None, default: Decimal) -> Decimal:
    return default if value is None else value


def _usd(micro_units: Decimal) -> float:
    """Convert a sum of tokens x USD-per-million into USD, rounded to 12 places."""
    return float(micro_units.scaleb(-_PER_MILLION).quantize(_USD_PLACES))


MAX_WARNED_MODELS = 1024
"""Unpriced model ids warned about once each; past that many, one more warning says so and
the rest are not logged (a stream of made-up ids must not grow memory or the log)."""
_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_unpriced(model: ModelRef) -> None:
    """Log one warning per model id per process for a model with no known price."""
    key = model.profile_id or model.raw
    if key in _warned:
        return
    with _warned_lock:
        if key in _warned or len(_warned) > MAX_WARNED_MODELS:
            return
        _warned.add(key)
        many = len(_warned) > MAX_WARNED_MODELS
    if many:
        logger.warning(
            "model_unpriced_many count=%s: more unpriced model ids are not logged",
            MAX_WARNED_MODELS,
        )
        return
    reason = "no price known; add it to a price table"
    if model.kind == ModelKind.APPLICATION_INFERENCE_PROFILE and model.base_id is None:
        reason = "application inference profile with no mapping to a model"
    logger.warning("model_unpriced model_id=%s reason=%s", key[:_LOGGED_ID_CHARS], reason)
