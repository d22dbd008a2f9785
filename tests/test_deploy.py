"""Offline checks of the deployable stack: compose.yaml, the Dockerfile, Prometheus and Grafana.

Nothing here starts a container. PyYAML parses the compose file, which is then compared with the
gateway's configuration. promtool checks the Prometheus files. The Grafana dashboard's PromQL is
compared with the metrics that gateway.metrics.Metrics registers.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gateway import config as gateway_config
from gateway.config import ENV_PREFIX, Config, load_config
from gateway.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "copilot-bridge.json"
DATASOURCE_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"

GATEWAYS = ("gateway-1", "gateway-2")
GATEWAY_CONTAINER_PORT = 8080

EXPECTED_SERVICES = {*GATEWAYS, "redis", "qdrant", "prometheus", "grafana", "ollama"}

# Host port published for each service, and the container port behind it.
EXPECTED_PORTS = {
    "gateway-1": [(8080, 8080)],
    "gateway-2": [(8081, 8080)],
    "prometheus": [(9090, 9090)],
    "grafana": [(3000, 3000)],
    "ollama": [(11434, 11434)],
    "redis": [],
    "qdrant": [],
}

# Where each service keeps its state; every one of these must be a named volume.
EXPECTED_DATA_MOUNTS = {
    "gateway-1": "/data",
    "gateway-2": "/data",
    "redis": "/data",
    "qdrant": "/qdrant/storage",
    "prometheus": "/prometheus",
    "grafana": "/var/lib/grafana",
    "ollama": "/root/.ollama",
}

# Overrides that _apply_env reads besides the per-field ones, and the config file variable.
UPSTREAM_ENV_NAMES = {ENV_PREFIX + "LOCAL_URL", ENV_PREFIX + "CLOUD_URL", ENV_PREFIX + "CLOUD_API_KEY_ENV"}
CONFIG_FILE_ENV_NAME = gateway_config.CONFIG_ENV

EXPECTED_ALERTS = {
    "CopilotBridgeLowLocalShare",
    "CopilotBridgeLocalUpstreamDown",
    "CopilotBridgeLocalLatencyHigh",
    "CopilotBridgeErrorRateHigh",
    "CopilotBridgeCacheStoreErrors",
    "CopilotBridgeReplicaDown",
}

# Series that Prometheus writes itself for every scrape target.
PROMETHEUS_SERIES = {"up"}
TARGET_LABELS = {"instance", "job"}

PROMQL_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "inf", "nan"}

# Grafana's built-in variables, replaced by a plain duration so promtool can parse the query.
GRAFANA_DURATIONS = {"$__rate_interval": "1m", "$__interval": "1h", "$__range": "1d"}


# -- helpers -------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value: str, environ: dict[str, str]) -> str:
    """Resolve compose's ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}`` and ``$$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        op = match.group("op")
        if op == ":-" and not environ.get(name):
            return match.group("default")
        if op == "-" and name not in environ:
            return match.group("default")
        return environ.get(name, "")

    return _INTERPOLATION.sub(replace, value)


def service_environment(service: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: interpolate(str(value), environ or {}) for name, value in env.items()}


def published_ports(service: dict[str, Any], environ: dict[str, str] | None = None) -> list[tuple[str, int, int]]:
    """Return (host address, host port, container port) for each short-syntax port entry."""
    result = []
    for entry in service.get("ports", []):
        parts = interpolate(str(entry), environ or {}).split(":")
        assert len(parts) == 3, f"port {entry!r} should name the host address, e.g. 127.0.0.1:8080:8080"
        result.append((parts[0], int(parts[1]), int(parts[2])))
    return result


def split_volume(entry: str) -> tuple[str, str, str]:
    source, target, *mode = entry.split(":")
    return source, target, mode[0] if mode else "rw"


def exported_metric_names() -> dict[str, set[str]]:
    """Map each sample name the gateway can export to the label names it carries.

    Labelled metrics have no samples until first used, so the names come from each family's
    type: counters get ``_total``, histograms ``_bucket``, ``_sum`` and ``_count``.
    """
    metrics = Metrics()
    # NOTE: prometheus_client (0.26) has no public accessor for a metric's label names, so this
    # reads the private _labelnames attribute.
    labels_by_family = {
        wrapper._name: set(wrapper._labelnames)
        for wrapper in vars(metrics).values()
        if hasattr(wrapper, "_labelnames") and hasattr(wrapper, "_name")
    }
    names: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        labels = labels_by_family.get(family.name, set())
        if family.type == "counter":
            names[family.name + "_total"] = labels
        elif family.type == "histogram":
            names[family.name + "_bucket"] = labels | {"le"}
            names[family.name + "_sum"] = labels
            names[family.name + "_count"] = labels
        else:
            names[family.name] = labels
        for sample in family.samples:
            names.setdefault(sample.name, labels | set(sample.labels))
    return names


def strip_promql(expr: str) -> str:
    """Remove string literals, label matchers, ranges and grouping clauses from a PromQL query."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    return re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)


def promql_metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL query selects; function and aggregation names are skipped."""
    text = strip_promql(expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        if text[match.end():].lstrip().startswith("(") or word.lower() in PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def promql_label_names(expr: str) -> set[str]:
    """Return the label names used in matchers and in by/without/on/ignoring clauses."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    labels = set()
    for matchers in re.findall(r"\{([^}]*)\}", text):
        labels.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        labels.update(name.strip() for name in clause.split(",") if name.strip())
    return labels


def grafana_to_promql(expr: str) -> str:
    for variable, duration in GRAFANA_DURATIONS.items():
        expr = expr.replace(variable, duration)
    return expr


def dashboard_targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def lost_keys(original: Any, decoded: Any, path: str = "") -> list[str]:
    """List every key path of ``original`` that ``decoded`` lacks or contains with another value."""
    if isinstance(original, dict):
        if not isinstance(decoded, dict):
            return [f"{path}: became {type(decoded).__name__}"]
        problems = []
        for key, value in original.items():
            if key not in decoded:
                problems.append(f"{path}/{key}: dropped")
            else:
                problems.extend(lost_keys(value, decoded[key], f"{path}/{key}"))
        return problems
    if isinstance(original, list):
        if not isinstance(decoded, list) or len(decoded) != len(original):
            return [f"{path}: list changed to {decoded!r}"]
        problems = []
        for index, (item, decoded_item) in enumerate(zip(original, decoded)):
            problems.extend(lost_keys(item, decoded_item, f"{path}[{index}]"))
        return problems
    return [] if original == decoded else [f"{path}: {original!r} became {decoded!r}"]


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


class _StatusHandler(BaseHTTPRequestHandler):
    """Respond to every GET with the status code stored on the server."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 (name fixed by BaseHTTPRequestHandler)
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def status_server() -> Iterator[ThreadingHTTPServer]:
    """A local HTTP server on a free port that responds with ``server.status``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    server.status = 200  # type: ignore[attr-defined]
    server.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    return exported_metric_names()


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in rules["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not found: install Debian's prometheus package (apt-get install prometheus), as .ci/run does")
    return path


@pytest.fixture
def isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder, so that load_config finds no ./copilot-bridge.toml."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- compose: services, images, ports, volumes, health checks -----------------------------------


def test_compose_service_set(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_compose_images_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"service {name} has no image"
        repository, _, tag = image.rpartition(":")
        assert repository and tag, f"service {name}: image {image!r} has no tag"
        assert tag != "latest", f"service {name}: pin a version instead of {image!r}"
    assert services["qdrant"]["image"].startswith("qdrant/qdrant:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert services["ollama"]["image"].startswith("ollama/ollama:")


def test_compose_gateways_build_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    for name in GATEWAYS:
        build = services[name]["build"]
        assert (ROOT / build["context"]).resolve() == ROOT
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert services["gateway-1"]["image"] == services["gateway-2"]["image"]


def test_compose_published_ports(services: dict[str, dict[str, Any]]) -> None:
    seen_host_ports: set[int] = set()
    for name, expected in EXPECTED_PORTS.items():
        ports = published_ports(services[name])
        assert [(host, container) for _, host, container in ports] == expected, f"service {name}"
        for address, host_port, _ in ports:
            assert address == "127.0.0.1", f"service {name} publishes port {host_port} beyond loopback by default"
            assert host_port not in seen_host_ports, f"host port {host_port} is published twice"
            seen_host_ports.add(host_port)


def test_compose_bind_address_variables(services: dict[str, dict[str, Any]]) -> None:
    environ = {"GATEWAY_BIND_ADDRESS": "0.0.0.0", "MONITORING_BIND_ADDRESS": "192.0.2.10"}
    assert {address for name in GATEWAYS for address, _, _ in published_ports(services[name], environ)} == {"0.0.0.0"}
    for name in ("prometheus", "grafana"):
        assert [address for address, _, _ in published_ports(services[name], environ)] == ["192.0.2.10"]
    # Ollama has no authentication, so it stays on loopback whatever the variables are set to.
    assert [address for address, _, _ in published_ports(services["ollama"], environ)] == ["127.0.0.1"]


def test_compose_named_volumes(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose["volumes"])
    used: set[str] = set()
    for name, service in services.items():
        mounts = [split_volume(entry) for entry in service.get("volumes", [])]
        named = {target: source for source, target, _ in mounts if not source.startswith((".", "/"))}
        assert EXPECTED_DATA_MOUNTS[name] in named, f"service {name} keeps no named volume at {EXPECTED_DATA_MOUNTS[name]}"
        for source in named.values():
            assert source in declared, f"service {name} mounts undeclared volume {source!r}"
        used.update(named.values())
    assert used == declared, f"declared but unused volumes: {sorted(declared - used)}"


def test_compose_gateways_own_data_volumes(services: dict[str, dict[str, Any]]) -> None:
    data_volumes = []
    for name in GATEWAYS:
        mounts = {target: source for source, target, _ in map(split_volume, services[name]["volumes"])}
        data_volumes.append(mounts["/data"])
    assert len(set(data_volumes)) == len(GATEWAYS), "each gateway process needs a data directory of its own"


def test_compose_bind_mounts_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for source, target, mode in map(split_volume, service.get("volumes", [])):
            if source.startswith("."):
                assert (ROOT / source).exists(), f"service {name} mounts missing {source}"
                assert mode == "ro", f"service {name} should mount {source} read-only"


def test_compose_health_checks(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"service {name} has no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), f"service {name}: {check['test']!r}"
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"service {name}: health check has no {key}"


def test_compose_gateway_dependencies(services: dict[str, dict[str, Any]]) -> None:
    for name in GATEWAYS:
        depends = services[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["qdrant"]["condition"] == "service_healthy"
        # The ollama service only exists with its profile, so the gateways must not require it.
        assert depends["ollama"]["required"] is False
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"service {name} depends on unknown service {dependency}"


def test_compose_ollama_profile_only(services: dict[str, dict[str, Any]]) -> None:
    profiled = {name for name, service in services.items() if service.get("profiles")}
    assert profiled == {"ollama"}
    assert services["ollama"]["profiles"] == ["ollama"]


def test_compose_prometheus_mounts_rules(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    mounts = {target: source for source, target, _ in map(split_volume, prometheus["volumes"])}
    config_flag = next(arg for arg in prometheus["command"] if arg.startswith("--config.file="))
    config_path = Path(config_flag.split("=", 1)[1])
    mounted_dir = mounts[str(config_path.parent)]
    assert (ROOT / mounted_dir).resolve() == PROMETHEUS_DIR
    rule_files = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))["rule_files"]
    for rule_file in rule_files:
        assert (PROMETHEUS_DIR / rule_file).is_file(), f"rule file {rule_file} is not in the mounted folder"


def test_compose_grafana_provisioning_mounts(services: dict[str, dict[str, Any]]) -> None:
    mounts = {source: target for source, target, _ in map(split_volume, services["grafana"]["volumes"])}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load(DASHBOARD_PROVIDER_FILE.read_text(encoding="utf-8"))["providers"][0]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]


# -- compose: the gateway environment and the gateway's configuration ---------------------------


def env_override_names(config: Config) -> dict[str, tuple[Any, str]]:
    """Map each per-field override name to (section object, field name), as _apply_env builds them."""
    names: dict[str, tuple[Any, str]] = {}
    sections = [(config, ENV_PREFIX)]
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            sections.append((value, ENV_PREFIX + field.name.upper() + "_"))
    for section, prefix in sections:
        for field in dataclasses.fields(section):
            if isinstance(getattr(section, field.name), (str, int, float, bool)):
                names[prefix + field.name.upper()] = (section, field.name)
    return names


def test_gateway_env_identical_across_replicas(services: dict[str, dict[str, Any]]) -> None:
    assert service_environment(services["gateway-1"]) == service_environment(services["gateway-2"])


def test_gateway_env_names_are_config_keys(services: dict[str, dict[str, Any]]) -> None:
    known = set(env_override_names(Config())) | UPSTREAM_ENV_NAMES | {CONFIG_FILE_ENV_NAME}
    for name in GATEWAYS:
        for variable in service_environment(services[name]):
            if variable.startswith(ENV_PREFIX):
                close = sorted(k for k in known if k.split("_")[-1] == variable.split("_")[-1])
                assert variable in known, f"{name}: {variable} maps to no config key (similar: {close})"


def test_gateway_env_each_override_applies(services: dict[str, dict[str, Any]], isolated_cwd: Path) -> None:
    environment = service_environment(services["gateway-1"])
    for variable, value in environment.items():
        if not variable.startswith(ENV_PREFIX) or variable in UPSTREAM_ENV_NAMES or not value:
            continue
        config = load_config(environ={variable: value})
        overrides = env_override_names(config)
        assert variable in overrides, f"{variable} is not a per-field override"
        section, field = overrides[variable]
        assert str(getattr(section, field)) == value, f"{variable}={value!r} did not set {field}"


def test_gateway_env_loads_config(services: dict[str, dict[str, Any]], isolated_cwd: Path) -> None:
    config = load_config(environ=service_environment(services["gateway-1"]))

    assert config.host == "0.0.0.0"
    assert config.port == GATEWAY_CONTAINER_PORT
    assert config.data_dir == "/data"

    redis_url = urlsplit(config.cache.redis_url)
    assert (redis_url.scheme, redis_url.hostname, redis_url.port) == ("redis", "redis", 6379)
    qdrant_url = urlsplit(config.cache.qdrant_url)
    assert (qdrant_url.scheme, qdrant_url.hostname, qdrant_url.port) == ("http", "qdrant", 6333)

    assert config.upstreams["local"].base_url == "http://host.docker.internal:11434/v1"
    assert config.cloud_upstream not in config.upstreams, "an empty COPILOT_BRIDGE_CLOUD_URL must configure no cloud upstream"


def test_gateway_env_with_ollama_and_cloud(services: dict[str, dict[str, Any]], isolated_cwd: Path) -> None:
    shell = {
        "COPILOT_BRIDGE_LOCAL_URL": "http://ollama:11434/v1",
        "COPILOT_BRIDGE_CLOUD_URL": "https://cloud.example/v1",
        "OPENAI_API_KEY": "sk-test",
    }
    environment = service_environment(services["gateway-1"], shell)
    config = load_config(environ=environment)

    local = urlsplit(config.upstreams["local"].base_url)
    assert local.hostname in services, "the ollama URL should name a compose service"
    assert local.port == published_ports(services["ollama"])[0][2]

    cloud = config.upstreams[config.cloud_upstream]
    assert cloud.kind == "cloud"
    assert cloud.base_url == "https://cloud.example/v1"
    assert cloud.api_key_env == "OPENAI_API_KEY"
    assert environment[cloud.api_key_env] == "sk-test"


def test_gateway_ports_match_config(services: dict[str, dict[str, Any]]) -> None:
    for name in GATEWAYS:
        port = int(service_environment(services[name])["COPILOT_BRIDGE_PORT"])
        assert [container for _, _, container in published_ports(services[name])] == [port]
        assert f"127.0.0.1:{port}/" in " ".join(services[name]["healthcheck"]["test"])


def test_prometheus_targets_are_gateways(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {target for group in jobs["copilot-bridge"]["static_configs"] for target in group["targets"]}
    expected = {f"{name}:{service_environment(services[name])['COPILOT_BRIDGE_PORT']}" for name in GATEWAYS}
    assert targets == expected
    assert jobs["copilot-bridge"].get("metrics_path", "/metrics") == "/metrics"


# -- health check commands, run against a local stub server --------------------------------------


def run_health_check(test: list[str], old_port: int, new_port: int) -> subprocess.CompletedProcess[str]:
    assert test[0] == "CMD"
    argv = [interpolate(arg, {}).replace(str(old_port), str(new_port)) for arg in test[1:]]
    if argv[0] == "python":
        argv[0] = shutil.which("python3") or "python3"
    return subprocess.run(argv, capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_gateway_health_check_command(services: dict[str, dict[str, Any]], status_server: ThreadingHTTPServer, status: int, healthy: bool) -> None:
    status_server.status = status  # type: ignore[attr-defined]
    result = run_health_check(services["gateway-1"]["healthcheck"]["test"], GATEWAY_CONTAINER_PORT, status_server.server_port)
    assert (result.returncode == 0) is healthy, result.stderr
    assert status_server.paths == ["/readyz"]  # type: ignore[attr-defined]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not found")
@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_qdrant_health_check_command(services: dict[str, dict[str, Any]], status_server: ThreadingHTTPServer, status: int, healthy: bool) -> None:
    status_server.status = status  # type: ignore[attr-defined]
    result = run_health_check(services["qdrant"]["healthcheck"]["test"], 6333, status_server.server_port)
    assert (result.returncode == 0) is healthy, result.stderr
    assert status_server.paths == ["/readyz"]  # type: ignore[attr-defined]


# -- Dockerfile ----------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_base_and_torch() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    pin = re.search(r"torch==(\S+) --index-url https://download\.pytorch\.org/whl/cpu", runs)
    assert pin, "the image should install the CPU build of torch"
    ci_pin = re.search(r"torch==(\S+)", (ROOT / ".ci" / "run").read_text(encoding="utf-8"))
    assert ci_pin and pin.group(1) == ci_pin.group(1), "the image and CI should install the same torch version"


def test_dockerfile_copies_package() -> None:
    copied = set()
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY":
            *sources, _ = rest.split()
            copied.update(sources)
    for source in copied:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        if (ROOT / package / "__init__.py").is_file():
            assert package in copied, f"the Dockerfile does not copy package {package}"
    assert pyproject["project"]["readme"] in copied


def test_dockerfile_runs_gateway() -> None:
    instructions = dict(dockerfile_instructions())
    assert json.loads(instructions["CMD"]) == ["copilot-bridge", "serve"]
    assert instructions["EXPOSE"] == str(GATEWAY_CONTAINER_PORT)
    assert instructions["USER"] != "root"


# -- Prometheus: promtool and metric names -------------------------------------------------------


def test_promtool_check_config(promtool: str) -> None:
    result = run_promtool(promtool, "check", "config", "deploy/prometheus/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules(promtool: str) -> None:
    result = run_promtool(promtool, "check", "rules", "deploy/prometheus/alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout


def test_promtool_test_rules(promtool: str) -> None:
    result = run_promtool(promtool, "test", "rules", "deploy/prometheus/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_expected_set(alert_rules: list[dict[str, Any]]) -> None:
    assert {rule["alert"] for rule in alert_rules} == EXPECTED_ALERTS
    for rule in alert_rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule.get("for"), f"{rule['alert']} fires on a single evaluation"
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_alert_rules_use_exported_metrics(alert_rules: list[dict[str, Any]], exported: dict[str, set[str]]) -> None:
    for rule in alert_rules:
        names = promql_metric_names(rule["expr"])
        assert names, f"{rule['alert']} selects no metric"
        unknown = names - set(exported) - PROMETHEUS_SERIES
        assert not unknown, f"{rule['alert']} uses metrics the gateway does not export: {sorted(unknown)}"


def test_alert_rules_thresholds(alert_rules: list[dict[str, Any]]) -> None:
    rules = {rule["alert"]: rule for rule in alert_rules}
    share = rules["CopilotBridgeLowLocalShare"]
    assert re.search(r'route=~"local\|cache"', share["expr"])
    assert "< 0.6" in share["expr"]
    assert share["for"] == "1h"
    down = rules["CopilotBridgeLocalUpstreamDown"]
    assert down["expr"].strip() == 'copilot_bridge_upstream_up{upstream="local"} == 0'
    assert down["for"] == "5m"
    latency = rules["CopilotBridgeLocalLatencyHigh"]["expr"]
    assert "histogram_quantile(0.95" in latency
    assert "copilot_bridge_local_latency_ms_bucket" in latency
    assert latency.strip().endswith("> 5000"), "the latency histogram is in ms, so 5 s is 5000"
    errors = rules["CopilotBridgeErrorRateHigh"]["expr"]
    assert 'status=~"5.."' in errors
    assert "> 0.01" in errors
    assert "rate(copilot_bridge_cache_errors_total" in rules["CopilotBridgeCacheStoreErrors"]["expr"]


def test_alert_tests_cover_firing_and_quiet(alert_rules: list[dict[str, Any]]) -> None:
    unit_tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text(encoding="utf-8"))
    firing: set[str] = set()
    quiet: set[str] = set()
    for group in unit_tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    assert firing == EXPECTED_ALERTS, f"alerts with no firing case: {sorted(EXPECTED_ALERTS - firing)}"
    assert quiet == EXPECTED_ALERTS, f"alerts with no quiet case: {sorted(EXPECTED_ALERTS - quiet)}"


# -- Grafana: provisioning, dashboard queries, SDK round trip ------------------------------------


def test_grafana_datasource_points_at_prometheus(services: dict[str, dict[str, Any]], dashboard: dict[str, Any]) -> None:
    datasources = yaml.safe_load(DATASOURCE_FILE.read_text(encoding="utf-8"))["datasources"]
    assert len(datasources) == 1
    source = datasources[0]
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus"
    assert url.hostname in services
    assert url.port == published_ports(services["prometheus"])[0][2]
    for panel, target in dashboard_targets(dashboard):
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert target["datasource"]["uid"] == source["uid"], panel["title"]


def test_dashboard_queries_use_exported_metrics(dashboard: dict[str, Any], exported: dict[str, set[str]]) -> None:
    for panel, target in dashboard_targets(dashboard):
        names = promql_metric_names(target["expr"])
        where = f"panel {panel['title']!r}, query {target['refId']}"
        assert names, f"{where} selects no metric"
        unknown = names - set(exported)
        assert not unknown, f"{where} uses metrics the gateway does not export: {sorted(unknown)}"


def test_dashboard_queries_use_existing_labels(dashboard: dict[str, Any], exported: dict[str, set[str]]) -> None:
    for panel, target in dashboard_targets(dashboard):
        expr = target["expr"]
        available = set(TARGET_LABELS)
        for name in promql_metric_names(expr):
            available |= exported.get(name, set())
        unknown = promql_label_names(expr) - available
        assert not unknown, f"panel {panel['title']!r} uses labels its metrics lack: {sorted(unknown)}"


def test_dashboard_queries_parse(dashboard: dict[str, Any], promtool: str, tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:panel_{panel['id']}_{target['refId'].lower()}", "expr": grafana_to_promql(target["expr"])}
        for panel, target in dashboard_targets(dashboard)
    ]
    rule_file = tmp_path / "dashboard_queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = run_promtool(promtool, "check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_required_panels(dashboard: dict[str, Any]) -> None:
    panels = {panel["title"]: panel for panel in dashboard["panels"]}
    exprs = {title: " ".join(t["expr"] for t in panel["targets"]) for title, panel in panels.items()}

    assert "copilot_bridge_cost_saved_usd_total" in exprs["Cost saved per day"]
    assert panels["Cost saved per day"]["interval"] == "1d"
    assert "copilot_bridge_tokens_saved_total" in exprs["Tokens per hour: saved vs cloud baseline"]
    assert 'copilot_bridge_tokens_total{route="cloud"}' in exprs["Tokens per hour: saved vs cloud baseline"]
    assert panels["Route distribution"]["type"] == "piechart"
    assert "copilot_bridge_requests_by_route_total" in exprs["Route distribution"]
    assert "copilot_bridge_requests_by_model_total" in exprs["Requests by model"]
    assert "copilot_bridge_cache_hits_total" in exprs["Cache hit rate by layer"]
    assert "by (layer)" in exprs["Cache hit rate by layer"]
    assert "copilot_bridge_fallbacks_total" in exprs["Error and fallback rates"]
    assert 'status=~"5.."' in exprs["Error and fallback rates"]

    latency = panels["Local latency p50 / p95 / p99"]
    assert latency["fieldConfig"]["defaults"]["unit"] == "ms"
    quantiles = [re.search(r"histogram_quantile\(([\d.]+), sum by \(le\) \(rate\(copilot_bridge_local_latency_ms_bucket", t["expr"]) for t in latency["targets"]]
    assert [q.group(1) for q in quantiles if q] == ["0.5", "0.95", "0.99"]


def test_dashboard_layout(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"panel {panel['title']!r} is wider than the 24-column grid"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panels {cells[(x, y)]!r} and {panel['title']!r} overlap"
                cells[(x, y)] = panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), f"panel {panel['title']!r} repeats a refId"


def test_dashboard_sdk_round_trip(dashboard: dict[str, Any]) -> None:
    pytest.importorskip("grafana_foundation_sdk", reason="grafana-foundation-sdk is not installed: pip install -e '.[test]'")
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()
    decoded = Dashboard.from_json(dashboard)
    round_trip = json.loads(json.dumps(decoded, cls=JSONEncoder))

    # The SDK drops keys that its schema does not know, so a lost key is a misspelt or
    # misplaced field in the dashboard file.
    assert lost_keys(dashboard, round_trip) == []
    assert [type(panel).__name__ for panel in decoded.panels] == ["Panel"] * len(dashboard["panels"])
    for panel in decoded.panels:
        for target in panel.targets:
            assert type(target).__module__.endswith(".prometheus"), f"panel {panel.title!r}: query decoded as {type(target)}"
