"""Tests for otel_bedrock.pricing."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest
from genai_prices.types import ConditionalPrice, ModelPrice, StartDateConstraint

from otel_bedrock import pricing
from otel_bedrock.errors import ConfigError
from otel_bedrock.model_ids import parse_model_id, resolve_model
from otel_bedrock.pricing import (
    Cost,
    CostStatus,
    PriceBook,
    Prices,
    PriceTableError,
    load_price_table,
    price_usage,
)
from otel_bedrock.usage import Usage
from tests.conftest import shared_path

APP_PROFILE = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/a1b2c3d4e5f6"


@pytest.fixture(scope="module")
def book() -> PriceBook:
    """One price book with no user table, shared by the tests of this module."""
    return PriceBook()


def _priced(input_usd: float, output_usd: float, total_usd: float) -> tuple[object, ...]:
    return (CostStatus.PRICED, input_usd, output_usd, total_usd)


def _summary(cost: Cost) -> tuple[object, ...]:
    return (cost.status, cost.input_usd, cost.output_usd, cost.total_usd)


@pytest.mark.parametrize(
    ("model_id", "usage", "expected"),
    [
        ("meta.llama3-1-8b-instruct-v1:0", Usage(12, 3), _priced(2.64e-06, 6.6e-07, 3.3e-06)),
        (
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            Usage(12, 40, 1000, 0),
            _priced(8.96e-05, 1.6e-04, 2.496e-04),
        ),
        (
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            Usage(12, 40, 1000),
            _priced(8.96e-05, 1.6e-04, 2.496e-04),
        ),
        (
            "anthropic.claude-sonnet-4-20250514-v1:0",
            Usage(50, 20),
            _priced(1.5e-04, 3e-04, 4.5e-04),
        ),
        ("amazon.nova-pro-v1:0", Usage(50, 20, 2000), _priced(4.4e-04, 6.4e-05, 5.04e-04)),
        ("amazon.titan-text-express-v1", Usage(5, 2), _priced(1e-06, 1.2e-06, 2.2e-06)),
        ("mistral.mistral-large-2407-v1:0", Usage(25, 40), _priced(5e-05, 2.4e-04, 2.9e-04)),
        (
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            Usage(1000, 100),
            _priced(0.0033, 0.00165, 0.00495),
        ),
        (
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            Usage(1000, 100),
            _priced(0.003, 0.0015, 0.0045),
        ),
        ("cohere.command-r-v1:0", Usage(1000, 1000), _priced(0.0005, 0.0015, 0.002)),
        ("cohere.command-r-plus-v1:0", Usage(1000, 1000), _priced(0.003, 0.015, 0.018)),
    ],
)
def test_list_prices(book: PriceBook, model_id: str, usage: Usage, expected: tuple[object]) -> None:
    """Known models cost exactly their Bedrock us-east-1 on-demand list price."""
    assert _summary(book.cost(parse_model_id(model_id), usage)) == expected


def test_cache_amounts_are_reported_apart(book: PriceBook) -> None:
    """Cache read and write amounts are given apart and included in the input amount."""
    cost = book.cost(
        parse_model_id("us.anthropic.claude-3-5-haiku-20241022-v1:0"), Usage(100, 10, 1000, 2000)
    )

    assert cost == Cost(
        CostStatus.PRICED,
        input_usd=0.00216,
        output_usd=4e-05,
        total_usd=0.0022,
        cache_read_usd=8e-05,
        cache_write_usd=0.002,
    )


def test_missing_cache_price_bills_cache_as_input(book: PriceBook) -> None:
    """A model with no cache write price bills cache writes at its input price."""
    cost = book.cost(parse_model_id("amazon.nova-pro-v1:0"), Usage(0, 0, 0, 1_000_000))

    assert (cost.cache_write_usd, cost.total_usd) == (0.8, 0.8)


def test_reported_zero_is_a_real_zero(book: PriceBook) -> None:
    """Zero tokens reported give a priced zero cost, not unpriced."""
    cost = book.cost(parse_model_id("meta.llama3-1-8b-instruct-v1:0"), Usage(0, 0))

    assert _summary(cost) == _priced(0.0, 0.0, 0.0)


@pytest.mark.parametrize("usage", [Usage(None, 5), Usage(5, None), Usage()])
def test_missing_counts_are_unpriced(book: PriceBook, usage: Usage) -> None:
    """A call with no input or no output count is unpriced rather than guessed."""
    cost = book.cost(parse_model_id("meta.llama3-1-8b-instruct-v1:0"), usage)

    assert cost == Cost(CostStatus.UNPRICED)


@pytest.mark.parametrize(
    "model_id",
    [
        "arn:aws:bedrock:us-east-1:123:provisioned-model/a1b2c3",
        "arn:aws:bedrock:us-east-1:123:imported-model/x9y8",
        "arn:aws:bedrock:us-east-1:123:custom-model/amazon.titan-text-express-v1:0:8k/q1w2",
        "arn:aws:sagemaker:us-east-1:767398002385:endpoint/endpoint-quick-start-idr7y",
    ],
)
def test_not_per_token_models(book: PriceBook, model_id: str) -> None:
    """Provisioned, imported, custom and Marketplace models are never given a per-token cost."""
    model = parse_model_id(model_id)

    assert book.cost(model, Usage(100, 100)) == Cost(CostStatus.NOT_PER_TOKEN)
    assert book.prices_for(model) is None


@pytest.mark.parametrize(
    "model_id",
    [
        "us.does-not-exist-model-v1:0",
        "anthropic.claude-v2",
        "ai21.j2-mid-v1",
        "cohere.command-text-v14",
        "ca.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "gpt-4o",
        "",
        APP_PROFILE,
    ],
)
def test_unknown_models_are_unpriced(book: PriceBook, model_id: str) -> None:
    """A model with no known price, or an unmapped application profile, is unpriced, never $0."""
    assert book.cost(parse_model_id(model_id), Usage(1000, 100)) == Cost(CostStatus.UNPRICED)


def test_unmapped_profile_case(book: PriceBook) -> None:
    """The shared unmapped-profile case is unpriced with the prices the case names absent."""
    case = json.loads(shared_path("cases", "app-profile-arn-unmapped.json").read_text("utf-8"))
    props = case["expected"]["properties"]
    usage = Usage(props["prompt_token_count"], props["generation_token_count"])

    cost = book.cost(parse_model_id(case["model_id"]), usage)

    assert cost.status == props["cost_status"]
    assert (cost.input_usd, cost.output_usd, cost.total_usd) == (None, None, None)


def test_mapped_profile_is_priced_as_its_model(book: PriceBook) -> None:
    """An application profile mapped to a geo profile costs what that profile costs."""
    model = resolve_model(
        APP_PROFILE, {APP_PROFILE: "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"}
    )

    assert _summary(book.cost(model, Usage(1000, 100))) == _priced(0.0033, 0.00165, 0.00495)


def test_unknown_model_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """An unknown model is logged at WARNING once per process, however often it is priced."""
    book = PriceBook()
    model = parse_model_id("us.warn-once-test-model-v1:0")

    with caplog.at_level(logging.WARNING, logger="otel_bedrock.pricing"):
        for _ in range(3):
            book.cost(model, Usage(1, 1))
        PriceBook().cost(model, Usage(1, 1))

    assert [r.getMessage() for r in caplog.records] == [
        "model_unpriced model_id=us.warn-once-test-model-v1:0 "
        "reason=no price known; add it to a price table"
    ]


def test_unmapped_profile_warning_says_why(caplog: pytest.LogCaptureFixture) -> None:
    """An unmapped application profile is logged once with the reason it has no price."""
    arn = "arn:aws:bedrock:us-east-1:1:application-inference-profile/warn-once-test"

    with caplog.at_level(logging.WARNING, logger="otel_bedrock.pricing"):
        PriceBook().cost(parse_model_id(arn), Usage(1, 1))
        PriceBook().cost(parse_model_id(arn), Usage(1, 1))

    assert [r.getMessage() for r in caplog.records] == [
        f"model_unpriced model_id={arn} "
        "reason=application inference profile with no mapping to a model"
    ]


def test_prices_resolved_once(book: PriceBook) -> None:
    """A model's prices are resolved once and then served from the cache."""
    model = parse_model_id("us.amazon.nova-micro-v1:0")

    assert book.prices_for(model) is book.prices_for(model)
    assert book.prices_for(model) == Prices(
        Decimal("0.035"),
        Decimal("0.14"),
        Decimal("0.00875"),
        None,
        source="genai-prices:amazon.nova-micro-v1:0",
    )


def test_tiered_prices_switch_above_threshold(book: PriceBook) -> None:
    """A tiered model bills every token at the higher tier once total input passes its threshold."""
    model = parse_model_id("global.anthropic.claude-haiku-5-5")
    prices = book.prices_for(model)
    assert prices is not None
    threshold = prices.tiers[0].above_input_tokens

    at_threshold = Usage(threshold - 1000, 1000, 1000, 0)
    past_threshold = Usage(threshold - 1000, 1000, 1000, 1)
    below = book.cost(model, at_threshold)
    above = book.cost(model, past_threshold)

    assert (below.input_usd, below.output_usd) == _genai_amounts(model.profile_id, at_threshold)
    assert (above.input_usd, above.output_usd) == _genai_amounts(model.profile_id, past_threshold)
    assert (threshold, below.output_usd, above.output_usd) == (100_000, 0.0005, 0.0025)


def _genai_amounts(model_ref: str | None, usage: Usage) -> tuple[float, float]:
    """Input and output USD of ``usage`` computed by genai-prices itself."""
    assert model_ref is not None
    cache_read = usage.cache_read_tokens or 0
    cache_write = usage.cache_write_tokens or 0
    assert usage.input_tokens is not None and usage.output_tokens is not None
    result = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens + cache_read + cache_write,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            output_tokens=usage.output_tokens,
        ),
        model_ref,
        provider_id="aws",
    )
    places = Decimal("1e-12")

    return float(result.input_price.quantize(places)), float(result.output_price.quantize(places))


@pytest.mark.parametrize(
    "model_id",
    [
        "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "us.anthropic.claude-sonnet-4-6",
        "global.anthropic.claude-opus-4-6-v1:0",
        "us.amazon.nova-2-lite-v1:0",
        "us.amazon.nova-micro-v1:0",
        "openai.gpt-oss-120b-1:0",
        "qwen.qwen3-32b-v1:0",
        "us.deepseek.r1-v1:0",
        "us.writer.palmyra-x4-v1:0",
        "us.meta.llama4-maverick-17b-instruct-v1:0",
        "us.mistral.pixtral-large-2502-v1:0",
        "global.openai.gpt-5.6-sol",
        "us.openai.gpt-5.6-terra",
        "us.zai.glm-5.3",
        "global.moonshotai.kimi-k3",
    ],
)
@pytest.mark.parametrize(
    "usage",
    [Usage(1234, 567), Usage(100, 50, 3000, 700), Usage(300_000, 20_000, 5_000, 1_000)],
)
def test_matches_genai_prices(book: PriceBook, model_id: str, usage: Usage) -> None:
    """Cached prices give the same amounts as genai-prices with cache-inclusive input."""
    model = parse_model_id(model_id)
    cost = book.cost(model, usage)

    assert (cost.input_usd, cost.output_usd) == _genai_amounts(model.profile_id, usage)


def test_builtin_table_only_adds_what_genai_prices_lacks() -> None:
    """Every entry of our own table is a model genai-prices has no price for."""
    table = pricing._builtin_table()

    for geo, base_id in table:
        with pytest.raises(LookupError):
            genai_prices.calc_price(
                genai_prices.Usage(input_tokens=1),
                f"{geo}.{base_id}" if geo else base_id,
                provider_id="aws",
            )
    assert sorted(base for _, base in table) == [
        "ai21.jamba-1-5-large-v1:0",
        "ai21.jamba-1-5-mini-v1:0",
        "cohere.command-r-plus-v1:0",
        "cohere.command-r-v1:0",
        "mistral.mistral-large-2407-v1:0",
    ]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(text, "utf-8")

    return path


def test_user_table_wins(tmp_path: Path) -> None:
    """A user entry replaces both genai-prices and our own table for its model."""
    path = _write(
        tmp_path,
        '[models."meta.llama3-1-8b-instruct-v1:0"]\ninput_mtok = 1\noutput_mtok = 2\n'
        '[models."mistral.mistral-large-2407-v1:0"]\ninput_mtok = "0.5"\noutput_mtok = 0.25\n',
    )
    book = PriceBook(path)

    llama = book.cost(parse_model_id("meta.llama3-1-8b-instruct-v1:0"), Usage(1000, 1000))
    mistral = book.cost(parse_model_id("mistral.mistral-large-2407-v1:0"), Usage(1000, 1000))

    assert _summary(llama) == _priced(0.001, 0.002, 0.003)
    assert _summary(mistral) == _priced(0.0005, 0.00025, 0.00075)


def test_user_geo_entry_wins_for_its_geo_only(tmp_path: Path) -> None:
    """A user entry for one geography wins there; other geographies keep the bare entry."""
    path = _write(
        tmp_path,
        '[models."anthropic.claude-sonnet-4-6"]\ninput_mtok = 1\noutput_mtok = 1\n'
        '[models."eu.anthropic.claude-sonnet-4-6"]\ninput_mtok = 2\noutput_mtok = 2\n'
        "cache_read_mtok = 0.5\ncache_write_mtok = 3\n",
    )
    book = PriceBook(path)
    usage = Usage(1_000_000, 1_000_000, 1_000_000, 1_000_000)

    eu = book.cost(parse_model_id("eu.anthropic.claude-sonnet-4-6"), usage)
    us = book.cost(parse_model_id("us.anthropic.claude-sonnet-4-6"), usage)

    assert _summary(eu) == _priced(5.5, 2.0, 7.5)
    assert _summary(us) == _priced(3.0, 1.0, 4.0)


def test_user_table_prices_a_model_unknown_elsewhere(tmp_path: Path) -> None:
    """A user entry prices a model that no other source knows."""
    path = _write(tmp_path, '[models."anthropic.claude-v2"]\ninput_mtok = 8\noutput_mtok = 24\n')

    cost = PriceBook(path).cost(parse_model_id("anthropic.claude-v2"), Usage(1000, 1000))

    assert _summary(cost) == _priced(0.008, 0.024, 0.032)


def test_empty_user_table_is_valid(tmp_path: Path) -> None:
    """A user table with no entries loads as an empty table."""
    assert load_price_table(_write(tmp_path, "# nothing yet\n")) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[models."meta.llama3-1-8b-instruct-v1:0"]\ninput_mtok = "cheap"\noutput_mtok = 1\n',
            'entry [models."meta.llama3-1-8b-instruct-v1:0"]: input_mtok must be a non-negative '
            "number of USD per million tokens, got 'cheap'",
        ),
        (
            '[models."meta.llama3-1-8b-instruct-v1:0"]\ninput_mtok = -1\noutput_mtok = 1\n',
            'entry [models."meta.llama3-1-8b-instruct-v1:0"]: input_mtok must be a non-negative '
            "number of USD per million tokens, got -1",
        ),
        (
            '[models."amazon.nova-pro-v1:0"]\ninput_mtok = 1\n',
            "entry [models.\"amazon.nova-pro-v1:0\"]: missing 'output_mtok'",
        ),
        (
            '[models."amazon.nova-pro-v1:0"]\ninput_mtok = 1\noutput_mtok = 1\ninput = 2\n',
            "entry [models.\"amazon.nova-pro-v1:0\"]: unknown key 'input' (allowed: input_mtok, "
            "output_mtok, cache_read_mtok, cache_write_mtok, cache_write_1h_mtok)",
        ),
        (
            '[models."amazon.nova-pro-v1:0"]\ninput_mtok = true\noutput_mtok = 1\n',
            'entry [models."amazon.nova-pro-v1:0"]: input_mtok must be a non-negative '
            "number of USD per million tokens, got True",
        ),
        (
            '[models."amazon.nova-pro-v1:0"]\ninput_mtok = nan\noutput_mtok = 1\n',
            'entry [models."amazon.nova-pro-v1:0"]: input_mtok must be a non-negative '
            "number of USD per million tokens, got nan",
        ),
        (
            '[models."arn:aws:bedrock:us-east-1:1:provisioned-model/x"]\n'
            "input_mtok = 1\noutput_mtok = 1\n",
            'entry [models."arn:aws:bedrock:us-east-1:1:provisioned-model/x"]: '
            "not a Bedrock model or inference profile id",
        ),
        ('[models]\n"amazon.nova-pro-v1:0" = 3\n', "must be a table of prices"),
        ("[prices]\n", "unknown top-level key 'prices'"),
        ("models = 3\n", "'models' must be a table"),
        ("[models\n", "not valid TOML"),
    ],
)
def test_malformed_user_table(tmp_path: Path, text: str, message: str) -> None:
    """A malformed user table fails at construction with a message naming file and entry."""
    path = _write(tmp_path, text)

    with pytest.raises(PriceTableError) as caught:
        PriceBook(path)

    assert str(caught.value).startswith(f"price table {path}")
    assert message in str(caught.value)


def test_missing_user_table(tmp_path: Path) -> None:
    """A user table that does not exist fails with a message naming the file."""
    path = tmp_path / "absent.toml"

    with pytest.raises(PriceTableError, match=f"price table {path}: cannot read it"):
        PriceBook(path)


def test_price_table_error_is_a_value_error() -> None:
    """PriceTableError is a ValueError and one of our configuration errors."""
    assert issubclass(PriceTableError, ValueError)
    assert issubclass(PriceTableError, ConfigError)


def test_price_usage_rounds_to_twelve_places() -> None:
    """Amounts are rounded to twelve decimal places before becoming floats."""
    prices = Prices(Decimal("0.0000001"), Decimal("1"))

    cost = price_usage(prices, Usage(3, 0))

    assert (cost.input_usd, cost.total_usd) == (0.0, 0.0)


def test_date_constrained_prices_expire_on_their_date() -> None:
    """Prices chosen among dated alternatives hold until the next start date, at UTC midnight."""
    now = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
    later = [
        ConditionalPrice(prices=ModelPrice(input_mtok=Decimal(1))),
        ConditionalPrice(
            constraint=StartDateConstraint(start_date=date(2027, 1, 15)),
            prices=ModelPrice(input_mtok=Decimal(2)),
        ),
        ConditionalPrice(
            constraint=StartDateConstraint(start_date=date(2026, 1, 1)),
            prices=ModelPrice(input_mtok=Decimal(3)),
        ),
    ]

    expires = pricing._next_price_change(later, now)

    assert expires == datetime.combine(date(2027, 1, 15), time(0), UTC).timestamp()


def test_one_hour_cache_writes_have_their_own_price(book: PriceBook) -> None:
    """Writes with the one-hour lifetime cost $6/M on global Sonnet 4.5, the others $3.75/M."""
    model = parse_model_id("global.anthropic.claude-sonnet-4-5-20250929-v1:0")
    usage = Usage(
        input_tokens=100,
        output_tokens=10,
        cache_write_tokens=1000,
        cache_write_1h_tokens=400,
    )

    cost = book.cost(model, usage)

    # 100 x $3 + 600 x $3.75 + 400 x $6 per million input; 10 x $15 per million output.
    assert cost.input_usd == pytest.approx(0.0003 + 0.00225 + 0.0024, abs=1e-12)
    assert cost.output_usd == pytest.approx(0.00015, abs=1e-12)


def test_unpriced_model_warnings_stop_after_their_bound(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Each unknown model id is warned about once, up to a bound; then one line says the rest
    go unlogged, and no more ids are remembered."""
    monkeypatch.setattr(pricing, "_warned", set())
    monkeypatch.setattr(pricing, "MAX_WARNED_MODELS", 3)
    book = PriceBook()

    with caplog.at_level(logging.WARNING, logger="otel_bedrock.pricing"):
        for number in range(6):
            book.prices_for(parse_model_id(f"made.up-model-{number}"))

    assert [record.getMessage().split(" ")[0] for record in caplog.records] == [
        "model_unpriced",
        "model_unpriced",
        "model_unpriced",
        "model_unpriced_many",
    ]
    assert len(pricing._warned) == 4


def test_a_price_book_remembers_a_bounded_number_of_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past its bound, the book forgets the model it looked up first, and still prices it."""
    monkeypatch.setattr(pricing, "MAX_CACHED_PRICES", 2)
    book = PriceBook()
    models = [
        parse_model_id(model_id)
        for model_id in (
            "anthropic.claude-3-haiku-20240307-v1:0",
            "meta.llama3-1-8b-instruct-v1:0",
            "amazon.nova-micro-v1:0",
        )
    ]

    prices = [book.prices_for(model) for model in models]

    assert prices == [PriceBook().prices_for(model) for model in models]
    assert None not in prices
    assert [base for _, base in book._cache] == [model.base_id for model in models[1:]]
    assert book.prices_for(models[0]) == prices[0]
