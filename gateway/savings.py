"""Token and dollar accounting of one request against the cloud baseline.

A cache hit consumes no tokens and saves the original response's tokens at the cloud price. A
local response saves its tokens at the difference between the cloud price and the local price. A
cloud response saves nothing and costs its tokens at the cloud price.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import Config, ModelConfig, UpstreamConfig

__all__ = ["Accounting", "account"]


@dataclass
class Accounting:
    tokens_in: int
    tokens_out: int
    tokens_saved: int
    cost_usd: float
    cost_saved_usd: float


def _cloud_price(config: Config, model: ModelConfig | None) -> float:
    if model is not None and model.cloud_price_per_1k is not None:
        return model.cloud_price_per_1k
    return config.pricing.cloud_per_1k


def _upstream_price(config: Config, upstream: UpstreamConfig, model: ModelConfig | None) -> float:
    if upstream.price_per_1k is not None:
        return upstream.price_per_1k
    return config.pricing.local_per_1k if upstream.kind == "local" else _cloud_price(config, model)


def account(
    config: Config,
    route: str,
    *,
    model: ModelConfig | None,
    tokens_in: int,
    tokens_out: int,
    upstream: UpstreamConfig | None = None,
) -> Accounting:
    """Return what a request cost and saved. ``route`` is ``cache``, ``local`` or ``cloud``.

    For ``cache``, ``tokens_in`` and ``tokens_out`` are the original response's usage.
    """
    tokens = tokens_in + tokens_out
    cloud_price = _cloud_price(config, model)
    if route == "cache":
        return Accounting(0, 0, tokens, 0.0, tokens * cloud_price / 1000)
    assert upstream is not None, "a local or cloud route needs its upstream"
    price = _upstream_price(config, upstream, model)
    cost = tokens * price / 1000
    if route == "local":
        return Accounting(tokens_in, tokens_out, tokens, cost, max(0.0, tokens * (cloud_price - price) / 1000))
    return Accounting(tokens_in, tokens_out, 0, cost, 0.0)
