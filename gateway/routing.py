"""Pick the upstreams a request goes to: its route first, then the cloud as fallback."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import Config, ModelConfig
from gateway.upstream import Upstream

__all__ = ["Target", "estimate_tokens", "plan_targets"]


@dataclass
class Target:
    upstream: Upstream
    model: str
    """The model name sent to the upstream."""
    fallback: bool = False


def estimate_tokens(text: str) -> int:
    """Estimate a token count from characters (about 4 per token for English and code)."""
    return max(1, (len(text) + 3) // 4)


def plan_targets(
    config: Config, upstreams: dict[str, Upstream], model: ModelConfig, task: str, prompt_tokens: int, max_tokens: int | None
) -> list[Target]:
    """Return the upstreams to try in order.

    The first route whose task and model pattern match decides; without one, the model's own
    upstream. A request longer than that upstream's context window goes straight to the cloud
    upstream when one is configured, and the cloud upstream is the fallback of every other one.
    """
    upstream_name, upstream_model = model.upstream, model.upstream_model
    for route in config.routes:
        if route.matches(task, model.name):
            upstream_name = route.upstream
            upstream_model = route.upstream_model or model.upstream_model
            break

    primary = upstreams[upstream_name]
    cloud = upstreams.get(config.cloud_upstream)
    if cloud is None or cloud is primary:
        return [Target(primary, upstream_model)]

    cloud_target = Target(cloud, cloud.config.fallback_model or upstream_model, fallback=True)
    needed = prompt_tokens + (max_tokens or 0)
    if needed > primary.config.context_window:
        cloud_target.fallback = False
        return [cloud_target]
    return [Target(primary, upstream_model), cloud_target]
