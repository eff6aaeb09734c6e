"""Deployment files: the image, the Kubernetes manifests and the gateway configuration hold
together, and name only commands, settings, paths and components that exist."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import opentelemetry.environment_variables
import opentelemetry.sdk.environment_variables
import pytest
import requests
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.dialects import canonical, dialect_of
from collector.otlp import decode_logs, decode_traces
from collector.settings import CollectorSettings
from collector.spans import ReceivedSpan, received_spans
from otel_bedrock.attributes import IDENTITY_KEYS
from otel_bedrock.config import Settings, load_settings
from otel_bedrock.errors import ConfigError
from otel_bedrock.testing import CaptureEmulator
from otel_bedrock.testing._server import free_port
from tests.collector import builders
from tests.collector.test_pipeline import USAGE, delivered
from tests.conftest import TEST_KEY

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "collector" / "deploy"
DOCKERFILE = ROOT / "collector" / "Dockerfile"
SIDECAR = DEPLOY / "kubernetes-sidecar.yaml"
GATEWAY = DEPLOY / "kubernetes-gateway.yaml"
SECRET = DEPLOY / "posthog-secret.yaml"
OTELCOL = DEPLOY / "otelcol-gateway.yaml"
RECORDED_SPANS = ROOT / "tests" / "data" / "otlp"

COLLECTOR_IMAGE = "otel-bedrock-collector"
SECRET_NAME = "otel-bedrock-posthog"

# Component types of the OpenTelemetry Collector contrib distribution, release 0.136.0: its
# manifest (opentelemetry-collector-releases, distributions/otelcol-contrib/manifest.yaml)
# names the modules, and each module's metadata.yaml its `type`. Only the kinds of component a
# gateway uses are listed; add a type here from those two files before using it.
CONTRIB_COMPONENTS = {
    "receivers": {"otlp", "nop"},
    "processors": {
        "attributes",
        "batch",
        "filter",
        "groupbytrace",
        "k8sattributes",
        "memory_limiter",
        "probabilistic_sampler",
        "resource",
        "tail_sampling",
        "transform",
    },
    "exporters": {"debug", "file", "loadbalancing", "nop", "otlp", "otlphttp"},
    "extensions": {
        "bearertokenauth",
        "db_storage",
        "file_storage",
        "headers_setter",
        "health_check",
        "pprof",
        "zpages",
    },
}


# --- reading the files ------------------------------------------------------------------------


def documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of a file, empty ones left out."""
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def manifests() -> Iterator[dict[str, Any]]:
    """Every Kubernetes object of the deploy folder."""
    for path in (SIDECAR, GATEWAY, SECRET):
        yield from documents(path)


def find(kind: str, name: str) -> dict[str, Any]:
    """The Kubernetes object of that kind and name."""
    for obj in manifests():
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind} {name}")


def pod_spec(kind: str, name: str) -> dict[str, Any]:
    """The pod template's spec of a workload."""
    spec: dict[str, Any] = find(kind, name)["spec"]["template"]["spec"]
    return spec


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """Init containers (native sidecars among them) and containers of a pod."""
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def collector_containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, container) for every container that runs the collector image."""
    for obj in manifests():
        if obj["kind"] in ("Deployment", "StatefulSet"):
            pod = obj["spec"]["template"]["spec"]
            for container in containers(pod):
                if COLLECTOR_IMAGE in container["image"]:
                    yield pod, container


def sidecar() -> dict[str, Any]:
    """The collector container of the sidecar pod."""
    (container,) = (
        c for c in containers(pod_spec("Deployment", "bedrock-app")) if c["name"] == "otel-bedrock"
    )
    return container


def env_values(container: dict[str, Any]) -> dict[str, str]:
    """The literal environment values of a container."""
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def mebibytes(quantity: str) -> float:
    """A Kubernetes memory or storage quantity (Mi or Gi) in MiB."""
    match = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert match is not None, quantity

    return int(match[1]) * (1024 if match[2] == "Gi" else 1)


def gateway_config() -> dict[str, Any]:
    """The OpenTelemetry Collector configuration of the gateway."""
    (config,) = documents(OTELCOL)
    return config


def env_default(value: str) -> str:
    """A configuration value with ``${env:NAME:-default}`` references replaced by the default."""
    return re.sub(r"\$\{env:\w+:-([^}]*)\}", r"\1", value)


def env_name(model: type[Settings] | type[CollectorSettings], field: str) -> str:
    """The environment variable a settings field is read from."""
    alias = model.model_fields[field].validation_alias
    assert isinstance(alias, str), field

    return alias


def settings_env_names() -> set[str]:
    """Every environment variable the collector reads: its own settings and the PostHog ones."""
    names: set[object] = set()
    for model in (Settings, CollectorSettings):
        for info in model.model_fields.values():
            alias = info.validation_alias
            names.update(getattr(alias, "choices", None) or [alias])

    return {name for name in names if isinstance(name, str)}


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    parsed = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, arguments = (current + line).partition(" ")
        parsed.append((keyword.upper(), arguments.strip()))
        current = ""

    return parsed


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the image's last stage, the one that runs."""
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def only(steps: list[tuple[str, str]], keyword: str) -> str:
    """The arguments of the one instruction of a kind."""
    (arguments,) = [args for kw, args in steps if kw == keyword]
    return arguments


def pyproject() -> dict[str, Any]:
    """The project's pyproject.toml."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


# --- the image --------------------------------------------------------------------------------


def test_image_builds_in_two_stages_from_python_3_11_slim() -> None:
    """A build stage and a runtime stage, both from the python:3.11-slim base."""
    steps = instructions()
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in steps
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    assert ("COPY", "--from=build /opt/otel-bedrock /opt/otel-bedrock") in final_stage()


def test_dependencies_are_installed_from_the_lock_with_the_collector_extra() -> None:
    """Every uv sync uses the lock as it is, the collector extra and no development tools; the
    project itself is installed as a wheel, not linked to the build folder."""
    syncs = [shlex.split(args) for keyword, args in instructions() if "uv sync" in args]
    assert len(syncs) == 2
    for argv in syncs:
        assert argv[:2] == ["uv", "sync"]
        assert {"--frozen", "--no-dev"} <= set(argv)
        assert argv[argv.index("--extra") + 1] == "collector"
    assert "--no-editable" in syncs[-1]
    assert "collector" in pyproject()["project"]["optional-dependencies"]


def test_build_copies_what_the_wheel_needs() -> None:
    """The lock, pyproject.toml, the readme it names and every package of the wheel are copied
    into the build stage."""
    project = pyproject()
    copied = set()
    for keyword, args in instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            *sources, _ = args.split()
            copied.update(sources)
    wheel_packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert {"pyproject.toml", "uv.lock", project["project"]["readme"], *wheel_packages} == copied


def dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore leaves ``path`` out of the build context (Docker's rules: the
    last pattern matching the path or one of its parent folders decides)."""
    excluded = False
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        parts = PurePosixPath(path).parts
        prefixes = ("/".join(parts[: i + 1]) for i in range(len(parts)))
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            excluded = not negated

    return excluded


def test_build_context_holds_the_sources_and_nothing_else() -> None:
    """The build context has the project's sources and lock, and leaves out tests, examples,
    benchmarks, the deployment files, local environments and caches."""
    needed = ["pyproject.toml", "uv.lock", "README.md", "otel_bedrock/data/prices.toml"]
    for package in ("otel_bedrock", "collector"):
        needed += [p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob("*.py")]
    assert [path for path in needed if dockerignore_excludes(path)] == []
    for path in (
        "tests/collector/test_deploy.py",
        "examples/README.md",
        "benchmarks/bench.py",
        ".venv/bin/python",
        ".git/HEAD",
        "collector/deploy/kubernetes-sidecar.yaml",
        "collector/Dockerfile",
        "otel_bedrock/__pycache__/config.cpython-311.pyc",
        "otel-config.yaml",
    ):
        assert dockerignore_excludes(path), path


def test_image_runs_as_a_numeric_non_root_user() -> None:
    """The runtime user is given by number (so Kubernetes can check runAsNonRoot) and is not
    root; the spool folder belongs to it."""
    stage = final_stage()
    user, _, group = only(stage, "USER").partition(":")
    assert user.isdigit() and int(user) != 0
    assert group.isdigit() and int(group) != 0
    run = " ".join(args for keyword, args in stage if keyword == "RUN")
    assert f"chown {user}:{group} /var/lib/otel-bedrock" in run


def test_image_exposes_the_collector_ports() -> None:
    """The exposed ports are the collector's default OTLP/gRPC and OTLP/HTTP ports."""
    defaults = CollectorSettings.model_fields
    ports = {int(port) for port in only(final_stage(), "EXPOSE").split()}
    assert ports == {4317, 4318} == {defaults["grpc_port"].default, defaults["http_port"].default}


def test_healthcheck_asks_healthz_with_python() -> None:
    """The health check runs Python code (no curl in the slim image) that asks /healthz on the
    port of OTEL_BEDROCK_COLLECTOR_HTTP_PORT, 4318 by default."""
    options, _, command = only(final_stage(), "HEALTHCHECK").partition("CMD ")
    assert "--interval=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    code = argv[2]
    compile(code, "HEALTHCHECK", "exec")
    assert "/healthz" in code
    port_env = env_name(CollectorSettings, "http_port")
    assert f"os.environ.get('{port_env}', '4318')" in code


def test_entrypoint_is_the_collector_command_on_every_interface() -> None:
    """The image runs the project's `otel-bedrock collector` command; its default arguments
    make it listen on every interface, which a container needs."""
    assert json.loads(only(final_stage(), "ENTRYPOINT")) == ["otel-bedrock", "collector"]
    assert json.loads(only(final_stage(), "CMD")) == ["--host", "0.0.0.0"]
    assert pyproject()["project"]["scripts"]["otel-bedrock"] == "otel_bedrock.cli:main"


def test_spool_is_in_the_volume_and_sigterm_stops() -> None:
    """The spool path the image sets is a setting the collector reads, inside the declared
    volume; SIGTERM (which drains) stops the container."""
    stage = final_stage()
    env = dict(
        item.split("=", 1)
        for keyword, args in stage
        if keyword == "ENV"
        for item in shlex.split(args)
    )
    (volume,) = json.loads(only(stage, "VOLUME"))
    spool_env = env_name(Settings, "spool")
    assert PurePosixPath(env[spool_env]).parent == PurePosixPath(volume)
    assert env["OTEL_BEDROCK_DATA_DIR"] == volume
    assert only(stage, "STOPSIGNAL") == "SIGTERM"


# --- Kubernetes -------------------------------------------------------------------------------


def test_every_manifest_is_a_named_kubernetes_object() -> None:
    """Each YAML document of the manifests has an API version, a kind and a name."""
    objects = list(manifests())
    assert [(obj["kind"], obj["metadata"]["name"]) for obj in objects] == [
        ("Deployment", "bedrock-app"),
        ("Service", "otel-bedrock-replicas"),
        ("StatefulSet", "otel-bedrock"),
        ("Service", "otelcol-gateway"),
        ("StatefulSet", "otelcol-gateway"),
        ("Secret", SECRET_NAME),
    ]
    assert all(obj["apiVersion"] in ("v1", "apps/v1") for obj in objects)


def test_sidecar_starts_first_and_listens_on_the_pods_loopback() -> None:
    """The collector is a native sidecar bound to 127.0.0.1 on the OTLP ports, and the
    application exports to it on localhost."""
    pod = pod_spec("Deployment", "bedrock-app")
    collector = sidecar()
    assert collector in pod["initContainers"]
    assert collector["restartPolicy"] == "Always"
    assert collector["args"] == ["--host", "127.0.0.1"]
    assert {port["containerPort"] for port in collector["ports"]} == {4317, 4318}
    (app,) = pod["containers"]
    assert env_values(app)["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4318"
    assert env_values(app)["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"


def test_application_sends_no_metrics_and_speaks_the_protocol_of_its_port() -> None:
    """The application exports no metrics (the collector answers /v1/metrics with 404), and
    the OTLP protocol it is given is the one the sidecar serves on the port it targets."""
    (app,) = pod_spec("Deployment", "bedrock-app")["containers"]
    env = env_values(app)
    assert env["OTEL_METRICS_EXPORTER"] == "none"
    served = {port["containerPort"]: port["name"] for port in sidecar()["ports"]}
    protocols = {"grpc": "otlp-grpc", "http/protobuf": "otlp-http", "http/json": "otlp-http"}
    port = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"]).port
    assert served[port] == protocols[env["OTEL_EXPORTER_OTLP_PROTOCOL"]] == "otlp-http"


def probe_targets(container: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """(port, path) that each probe of a container asks, from its HTTP probe or the URL in the
    Python code of its exec probe."""
    named = {port["name"]: port["containerPort"] for port in container["ports"]}
    targets = {}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        spec = container.get(probe)
        if spec is None:
            continue
        if "httpGet" in spec:
            port = spec["httpGet"]["port"]
            targets[probe] = (named.get(port, port), spec["httpGet"]["path"])
            continue
        argv = spec["exec"]["command"]
        assert argv[:2] == ["python", "-c"]
        compile(argv[2], probe, "exec")
        url = re.search(r"'http://127\.0\.0\.1:(\d+)(/\w+)'", argv[2])
        assert url is not None, argv[2]
        targets[probe] = (int(url[1]), url[2])

    return targets


def test_replica_probes_ask_healthz_and_readyz_on_the_http_port() -> None:
    """A replica's start-up and liveness probes ask /healthz and its readiness probe /readyz,
    on the OTLP/HTTP port: a replica that refuses data leaves the headless Service."""
    (container,) = pod_spec("StatefulSet", "otel-bedrock")["containers"]
    assert probe_targets(container) == {
        "startupProbe": (4318, "/healthz"),
        "livenessProbe": (4318, "/healthz"),
        "readinessProbe": (4318, "/readyz"),
    }


def test_sidecar_probes_ask_healthz_only() -> None:
    """The sidecar's probes ask /healthz on the pod's loopback. It has no readiness probe: a
    native sidecar's readiness is the pod's, and a PostHog outage must not take the
    application out of its Service."""
    assert probe_targets(sidecar()) == {
        "startupProbe": (4318, "/healthz"),
        "livenessProbe": (4318, "/healthz"),
    }


def test_collector_env_names_are_settings_it_reads() -> None:
    """Every environment variable given to a collector container is one its settings read."""
    known = settings_env_names()
    for _, container in collector_containers():
        names = {item["name"] for item in container["env"]}
        assert names <= known, names - known


def test_application_env_names_are_opentelemetry_sdk_variables() -> None:
    """The application's variables are ones the OpenTelemetry SDK reads."""
    known = set(dir(opentelemetry.sdk.environment_variables)) | set(
        dir(opentelemetry.environment_variables)
    )
    (app,) = pod_spec("Deployment", "bedrock-app")["containers"]
    names = {item["name"] for item in app["env"]}
    assert names <= known, names - known


def test_secrets_come_only_from_the_secret() -> None:
    """Keys and tokens are never literal values: each comes from a key of the Secret that the
    template defines, and no file of the deploy folder holds a project key."""
    template_keys = set(find("Secret", SECRET_NAME)["stringData"])
    for obj in manifests():
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in containers(obj["spec"]["template"]["spec"]):
            for item in container.get("env", []):
                if re.search("KEY|TOKEN|SECRET|PASSWORD", item["name"]):
                    assert "value" not in item, item["name"]
                    ref = item["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == SECRET_NAME
                    assert ref["key"] in template_keys
    for path in DEPLOY.iterdir():
        assert not re.search(r"phc_[A-Za-z0-9]{6,}", path.read_text(encoding="utf-8")), path


def test_secret_template_placeholder_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A template applied without its key replaced stops the collector with an error naming
    the variable, instead of sending to no project; its host is accepted as it is."""
    values = find("Secret", SECRET_NAME)["stringData"]
    monkeypatch.setenv("POSTHOG_HOST", values["POSTHOG_HOST"])
    monkeypatch.setenv("POSTHOG_API_KEY", values["POSTHOG_API_KEY"])
    with pytest.raises(ConfigError, match="POSTHOG_API_KEY="):
        load_settings()
    monkeypatch.setenv("POSTHOG_API_KEY", "phc_test")
    assert load_settings().posthog_host == "https://us.i.posthog.com"


def volume_size(pod: dict[str, Any], obj_spec: dict[str, Any], name: str) -> float:
    """Size in MiB of a pod's volume: an emptyDir's sizeLimit or a claim template's request."""
    for volume in pod.get("volumes", []):
        if volume["name"] == name:
            return mebibytes(volume["emptyDir"]["sizeLimit"])
    for claim in obj_spec.get("volumeClaimTemplates", []):
        if claim["metadata"]["name"] == name:
            return mebibytes(claim["spec"]["resources"]["requests"]["storage"])
    raise AssertionError(f"no volume {name}")


@pytest.mark.parametrize(
    ("kind", "name"), [("Deployment", "bedrock-app"), ("StatefulSet", "otel-bedrock")]
)
def test_spool_is_on_its_volume_and_fits(kind: str, name: str) -> None:
    """The spool file is on the mounted volume, and its size cap is below the volume's size
    (a full emptyDir gets the pod evicted)."""
    spec = find(kind, name)["spec"]
    pod = spec["template"]["spec"]
    (container,) = (c for c in containers(pod) if COLLECTOR_IMAGE in c["image"])
    env = env_values(container)
    (mount,) = container["volumeMounts"]
    spool = PurePosixPath(env[env_name(Settings, "spool")])
    assert spool.parent == PurePosixPath(mount["mountPath"])
    cap = float(env[env_name(Settings, "spool_max_mb")])
    assert cap < volume_size(pod, spec, mount["name"])


def test_grace_period_covers_the_drain() -> None:
    """Kubernetes waits longer than the collector's drain: the wait for content, then delivery
    for up to the shutdown timeout."""
    content_wait = CollectorSettings.model_fields["content_wait"].default
    for pod, container in collector_containers():
        timeout = float(env_values(container)["OTEL_BEDROCK_SHUTDOWN_TIMEOUT"])
        assert pod["terminationGracePeriodSeconds"] >= content_wait + timeout + 10


def test_containers_run_as_non_root_with_a_read_only_root() -> None:
    """Collector and gateway containers run as the image's user, without root, privilege
    escalation, capabilities or a writable root file system; their memory is bounded."""
    user = int(only(final_stage(), "USER").split(":")[0])
    for obj in manifests():
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in containers(pod):
            if container["name"] == "app":
                continue
            context = {**pod.get("securityContext", {}), **container["securityContext"]}
            assert context["runAsNonRoot"] is True
            assert context["runAsUser"] == user
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            limits = container["resources"]["limits"]
            assert mebibytes(container["resources"]["requests"]["memory"]) <= mebibytes(
                limits["memory"]
            )


# --- the gateway ------------------------------------------------------------------------------


def component_type(name: str) -> str:
    """The type of a component id such as ``filter/bedrock``."""
    return name.split("/", 1)[0]


def test_gateway_pipelines_use_only_defined_components() -> None:
    """Every receiver, processor, exporter and extension the service uses is defined."""
    config = gateway_config()
    service = config["service"]
    assert set(service["extensions"]) <= set(config["extensions"])
    assert set(service["pipelines"]) == {"traces", "logs"}
    for pipeline in service["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline[kind]) <= set(config[kind]), (kind, pipeline[kind])


def test_gateway_components_exist_in_the_contrib_distribution() -> None:
    """Each component type in the configuration is one the contrib distribution has."""
    config = gateway_config()
    for kind, known in CONTRIB_COMPONENTS.items():
        used = {component_type(name) for name in config[kind]}
        assert used <= known, (kind, used - known)


def test_gateway_routes_spans_and_logs_by_trace_id() -> None:
    """Traces and logs both leave through the load balancer, routed by trace id, so that the
    spans of a call and its content log records reach the same replica."""
    config = gateway_config()
    for pipeline in config["service"]["pipelines"].values():
        assert pipeline["receivers"] == ["otlp"]
        assert pipeline["exporters"] == ["loadbalancing"]
        assert pipeline["processors"][0] == "memory_limiter"
        assert pipeline["processors"][-1] == "batch"
    assert config["exporters"]["loadbalancing"]["routing_key"] == "traceID"
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}


def test_gateway_logs_are_not_filtered() -> None:
    """No filter stands in the logs pipeline: every content log record must pass."""
    logs = gateway_config()["service"]["pipelines"]["logs"]
    assert [p for p in logs["processors"] if component_type(p) == "filter"] == []


def test_gateway_queue_is_on_disk_and_retried_through_the_balancer() -> None:
    """The load balancer's own sending queue is stored by a file_storage extension the service
    starts, and it retries; the per-replica exporters keep no queue of their own."""
    config = gateway_config()
    exporter = config["exporters"]["loadbalancing"]
    queue = exporter["sending_queue"]
    assert queue["enabled"] is True
    assert component_type(queue["storage"]) == "file_storage"
    assert queue["storage"] in config["extensions"]
    assert queue["storage"] in config["service"]["extensions"]
    assert exporter["retry_on_failure"]["enabled"] is True
    otlp = exporter["protocol"]["otlp"]
    assert otlp["sending_queue"] == {"enabled": False}
    assert otlp["retry_on_failure"] == {"enabled": False}
    assert "endpoint" not in otlp


def test_gateway_resolves_the_replicas_headless_service() -> None:
    """The resolver asks the headless Service of the replicas, on the port where they take
    OTLP/gRPC."""
    dns = gateway_config()["exporters"]["loadbalancing"]["resolver"]["dns"]
    service = find("Service", env_default(dns["hostname"]))
    assert service["spec"]["clusterIP"] == "None"
    replicas = find("StatefulSet", "otel-bedrock")
    assert replicas["spec"]["serviceName"] == service["metadata"]["name"]
    labels = replicas["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    grpc = next(p for p in service["spec"]["ports"] if p["name"] == "otlp-grpc")
    (container,) = replicas["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert int(dns["port"]) == grpc["port"] == ports[grpc["targetPort"]] == 4317
    assert container["args"] == ["--host", "0.0.0.0"]


def test_gateway_pod_runs_this_configuration() -> None:
    """The gateway container reads the configuration from its ConfigMap, keeps the queue on
    its persistent volume, is probed on the health_check extension, and is given every
    variable the configuration reads."""
    config = gateway_config()
    spec = find("StatefulSet", "otelcol-gateway")["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"].startswith("otel/opentelemetry-collector-contrib:0.136.")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert container["args"] == [f"--config={mounts['config']}/config.yaml"]
    storage = config["extensions"]["file_storage"]
    assert storage["directory"] == storage["compaction"]["directory"] == mounts["queue"]
    assert "queue" in {claim["metadata"]["name"] for claim in spec["volumeClaimTemplates"]}
    health_port = int(config["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["port"] == "health"
    assert ports["health"] == health_port
    referenced = set(re.findall(r"\$\{env:(\w+)", OTELCOL.read_text(encoding="utf-8")))
    given = {item["name"] for item in container["env"]}
    assert referenced == given - {"GOMEMLIMIT"}


def test_gateway_sends_the_token_the_replicas_require() -> None:
    """The gateway's bearer token and the replicas' token are the same Secret key."""
    headers = gateway_config()["exporters"]["loadbalancing"]["protocol"]["otlp"]["headers"]
    token_env = env_name(CollectorSettings, "token")
    assert headers == {"authorization": f"Bearer ${{env:{token_env}}}"}
    refs = []
    for name in ("otelcol-gateway", "otel-bedrock"):
        (container,) = pod_spec("StatefulSet", name)["containers"]
        (item,) = (item for item in container["env"] if item["name"] == token_env)
        refs.append(item["valueFrom"]["secretKeyRef"])
    assert refs[0] == refs[1]


# --- the gateway's request sizes -------------------------------------------------------------


def replica_request_limit() -> int:
    """The largest request a replica accepts: its environment's limit, or the default."""
    (container,) = pod_spec("StatefulSet", "otel-bedrock")["containers"]
    given = env_values(container).get(env_name(CollectorSettings, "max_request_bytes"))
    default: int = CollectorSettings.model_fields["max_request_bytes"].default

    return int(given) if given is not None else default


def largest_recorded_item() -> int:
    """The serialized size in bytes of the largest recorded span or content log record."""
    sizes = []
    for path in RECORDED_SPANS.glob("*/*.traces.json"):
        request = decode_traces(path.read_bytes(), "application/json")
        for resource in request.resource_spans:
            sizes += [s.ByteSize() for scope in resource.scope_spans for s in scope.spans]
    for path in RECORDED_SPANS.glob("*/*.logs.json"):
        logs = decode_logs(path.read_bytes(), "application/json")
        for resource in logs.resource_logs:
            sizes += [r.ByteSize() for scope in resource.scope_logs for r in scope.log_records]

    return max(sizes)


def test_gateway_requests_are_capped_at_half_the_replica_limit() -> None:
    """The load balancer's queue cuts batches by serialized bytes, to at most half of what a
    replica accepts, so that no request of spans or content records is refused as too large;
    gzip goes on the wire, though it leaves the limit, counted decompressed, as it is."""
    exporter = gateway_config()["exporters"]["loadbalancing"]
    batch = exporter["sending_queue"]["batch"]
    assert replica_request_limit() == 8 * 1024 * 1024
    assert batch["sizer"] == "bytes"
    assert batch["max_size"] == replica_request_limit() // 2 == 4_194_304
    assert batch["min_size"] == 0
    assert re.fullmatch(r"[1-9]\d*(ms|s)", batch["flush_timeout"])
    assert exporter["protocol"]["otlp"]["compression"] == "gzip"


def test_gateway_batches_of_recorded_calls_need_no_byte_split() -> None:
    """A full batch of the batch processor, made of the largest recorded span or content
    record, stays under the byte cap: only batches of longer conversations are split."""
    config = gateway_config()
    batch = config["processors"]["batch"]
    cap = config["exporters"]["loadbalancing"]["sending_queue"]["batch"]["max_size"]
    assert batch["send_batch_size"] <= batch["send_batch_max_size"] == 256
    assert largest_recorded_item() == 9_957
    assert batch["send_batch_max_size"] * largest_recorded_item() <= cap


# --- the gateway's span filter ----------------------------------------------------------------


def span_filter() -> tuple[list[tuple[str, str]], list[str]]:
    """The terms of the gateway filter's one drop condition, ``not (A or B or ...)``: the
    (path, regular expression) of each ``IsMatch`` and the attributes whose presence keeps a
    span (``attributes["name"] != nil``). Any other shape of condition fails here."""
    (condition,) = gateway_config()["processors"]["filter/bedrock"]["traces"]["span"]
    inner = re.fullmatch(r"not \((.*)\)", " ".join(condition.split()))
    assert inner is not None, condition
    matches, present = [], []
    for term in inner[1].split(" or "):
        if found := re.fullmatch(r'IsMatch\(([\w.]+|attributes\["[\w.]+"\]), "([^"]+)"\)', term):
            matches.append((found[1], found[2]))
        elif found := re.fullmatch(r'attributes\["([\w.]+)"\] != nil', term):
            present.append(found[1])
        else:
            raise AssertionError(f"unexpected term in the span filter: {term}")

    return matches, present


def kept(attributes: dict[str, Any], scope: str = "") -> bool:
    """Whether the gateway's filter lets a span with these attributes and instrumentation scope
    through (OTTL: IsMatch on a missing value is false)."""
    matches, present = span_filter()
    for path, regex in matches:
        key = re.fullmatch(r'attributes\["([\w.]+)"\]', path)
        value = attributes.get(key[1]) if key else {"instrumentation_scope.name": scope}[path]
        if isinstance(value, str) and re.search(regex, value):
            return True

    return any(name in attributes for name in present)


def recorded_bedrock_spans() -> Iterator[ReceivedSpan]:
    """Every recorded span (one folder per instrumentation) that the collector turns into a
    Bedrock call, decoded by the collector's own OTLP reader."""
    files = sorted(RECORDED_SPANS.glob("*/*.traces.json"))
    assert len(files) >= 36
    for path in files:
        request = decode_traces(path.read_bytes(), "application/json")
        spans, rejected = received_spans(request)
        assert rejected == 0
        yield from (span for span in spans if canonical(span) is not None)


def test_gateway_filter_keeps_every_recorded_bedrock_span() -> None:
    """Every recorded span the collector would convert passes the gateway's filter: botocore,
    the GenAI Bedrock instrumentation, OpenLLMetry (also before the GenAI conventions, whose
    failed calls carry no GenAI attribute), OpenInference and the Node AWS SDK."""
    spans = list(recorded_bedrock_spans())
    assert {dialect_of(span) for span in spans} >= {
        "botocore",
        "genai-bedrock",
        "openllmetry",
        "openinference",
        "node",
    }
    dropped = [span.name for span in spans if not kept(dict(span.attributes), span.scope)]
    assert dropped == []


def test_gateway_filter_drops_other_spans() -> None:
    """An HTTP server span and a DynamoDB client span are dropped at the gateway; a Bedrock
    span of another AWS SDK (the collector's generic aws-sdk dialect) passes."""
    flask = "opentelemetry.instrumentation.flask"
    assert not kept({"http.request.method": "GET", "url.path": "/recipes"}, flask)
    botocore = "opentelemetry.instrumentation.botocore"
    assert not kept({"rpc.system": "aws-api", "rpc.service": "DynamoDB"}, botocore)
    assert kept({"rpc.system": "aws-api", "rpc.service": "Bedrock Runtime"}, botocore)
    java = "io.opentelemetry.aws-sdk-2.2"
    assert kept({"rpc.system": "aws-api", "rpc.service": "bedrock-runtime"}, java)


@pytest.mark.parametrize("key", IDENTITY_KEYS)
def test_gateway_filter_keeps_spans_that_name_a_person(key: str) -> None:
    """A span of any kind with one of the collector's identity attributes passes, so that a
    Bedrock call that names nobody can take its person from the span that encloses it."""
    flask = "opentelemetry.instrumentation.flask"
    _, present = span_filter()
    assert key in present
    assert kept({"http.route": "/recipes", key: "alice@example.com"}, flask)
    assert not kept({"http.route": "/recipes"}, flask)


def through_gateway(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    """The request without the spans that the gateway's filter drops."""
    spans, _ = received_spans(request)
    passing = {s.context.span_id for s in spans if kept(dict(s.attributes), s.scope)}
    for resource in request.resource_spans:
        for scope in resource.scope_spans:
            taken = [s for s in scope.spans if int.from_bytes(s.span_id, "big") in passing]
            del scope.spans[:]
            scope.spans.extend(taken)

    return request


def test_call_behind_the_gateway_is_the_user_of_its_request_span(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """A web framework's request span with ``enduser.id`` and the Bedrock span it encloses,
    which names nobody, both pass the gateway, and the replica makes the event that user's."""
    intake = make_intake()
    call = builders.span(0x52, builders.bedrock_attributes(**USAGE), parent=0x51)
    person = {"http.route": "/recipes", "enduser.id": "alice@example.com"}
    server = builders.span(0x51, person, kind=2, name="GET /recipes")
    request = builders.traces(call)
    flask = builders.traces(server, scope="opentelemetry.instrumentation.flask")
    request.resource_spans.extend(flask.resource_spans)

    intake.accept_traces(through_gateway(request))

    [event] = delivered(intake, capture)
    assert event["distinct_id"] == "alice@example.com"
    assert event["properties"]["span_id"] == "0000000000000052"


def test_deploy_readme_names_every_file() -> None:
    """The deploy folder's README explains each of its files."""
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for path in DEPLOY.glob("*.yaml"):
        assert path.name in readme, path.name
    assert os.path.relpath(DOCKERFILE, ROOT) in readme


# --- the commands, run ------------------------------------------------------------------------


def test_image_command_serves_the_probes_and_stops_on_sigterm(
    tmp_path: Path, capture: CaptureEmulator
) -> None:
    """The image's command, with a replica's environment (token on) and the sidecar's
    arguments, answers the image's HEALTHCHECK, the sidecar's exec probes and the replicas'
    HTTP probes without a token, and exits 0 on its stop signal within the grace period."""
    (replica,) = pod_spec("StatefulSet", "otel-bedrock")["containers"]
    http_port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        **env_values(replica),
        env_name(Settings, "spool"): str(tmp_path / "spool.sqlite3"),
        "POSTHOG_API_KEY": TEST_KEY,
        "POSTHOG_HOST": capture.url,
        env_name(CollectorSettings, "token"): "deploy-test-token-8d1e",
        env_name(CollectorSettings, "http_port"): str(http_port),
        env_name(CollectorSettings, "grpc_port"): str(grpc_port),
    }
    entrypoint = json.loads(only(final_stage(), "ENTRYPOINT"))
    script = Path(sys.executable).parent / entrypoint[0]
    service = subprocess.Popen(
        [str(script), *entrypoint[1:], *sidecar()["args"]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(service, f"http://127.0.0.1:{http_port}/healthz")
        _, _, command = only(final_stage(), "HEALTHCHECK").partition("CMD ")
        checks = [json.loads(command)]
        checks += [
            [arg.replace(":4318/", f":{http_port}/") for arg in sidecar()[probe]["exec"]["command"]]
            for probe in ("startupProbe", "livenessProbe")
        ]
        for argv in checks:
            done = subprocess.run([sys.executable, *argv[1:]], env=env, timeout=30, check=False)
            assert done.returncode == 0, argv
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = replica[probe]["httpGet"]["path"]
            answer = requests.get(f"http://127.0.0.1:{http_port}{path}", timeout=5)
            assert answer.status_code == 200, path
        unauthorized = requests.post(
            f"http://127.0.0.1:{http_port}/v1/traces",
            data=b"",
            headers={"Content-Type": "application/x-protobuf"},
            timeout=5,
        )
        assert unauthorized.status_code == 401
        assert only(final_stage(), "STOPSIGNAL") == "SIGTERM"
        service.send_signal(signal.SIGTERM)
        grace = pod_spec("StatefulSet", "otel-bedrock")["terminationGracePeriodSeconds"]
        _, stderr = service.communicate(timeout=grace)
    finally:
        if service.poll() is None:
            service.kill()
            service.communicate()
    assert service.returncode == 0, stderr


def wait_for(service: subprocess.Popen[str], url: str, timeout: float = 20) -> None:
    """Poll ``url`` until it answers 200; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert service.poll() is None, service.communicate()[1]
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer")
