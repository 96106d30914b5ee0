"""deploy/: the Dockerfile, compose file, Kubernetes manifests and gateway config name the
ports, probes and settings that the code really has (Docker cannot run here: they are read)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.routing import Route

from broker.cli import _parser
from broker.settings import SETTINGS_TABLE, Settings, check_for_production, load_settings
from broker.web.app import create_app

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SECRETS = {
    "GLADIA_API_KEY": "placeholder-gladia-key",
    "BROKER_SECRET_KEYS": "x" * 48,
    "BROKER_SERVICE_KEYS": "y" * 48,
}


def setting_names_in_code() -> set[str]:
    return {row.env_name for row in SETTINGS_TABLE}


def setting_names_documented() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z0-9_]+)=", text, flags=re.MULTILINE))


def setting_names_mentioned(text: str) -> set[str]:
    """Names shaped like a setting (`BROKER_*`, `GLADIA_*`, `REDIS_*`, `LOG_LEVEL`), not globs."""
    return set(re.findall(r"\b((?:BROKER|GLADIA|REDIS)_[A-Z0-9_]+|LOG_LEVEL)\b(?!\*)", text))


def route_paths() -> set[str]:
    app = create_app(Settings())
    return {route.path for route in app.routes if isinstance(route, Route)}


def kubernetes_objects() -> dict[str, dict[str, Any]]:
    objects = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            objects[document["kind"]] = document
    return objects


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile(keyword: str) -> list[str]:
    return [rest for key, rest in dockerfile_instructions() if key == keyword]


def exec_form(value: str) -> list[str]:
    parsed = yaml.safe_load(value)
    assert isinstance(parsed, list), f"{value} is not in exec form"
    return [str(item) for item in parsed]


def serve_port(args: list[str]) -> int:
    """The port `broker <args>` listens on, as the CLI itself reads the arguments."""
    parsed = _parser().parse_args(args)
    assert parsed.run.__name__ == "_serve"
    return int(parsed.port)


def gateway_config() -> str:
    return (DEPLOY / "nginx" / "broker.conf").read_text()


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


# --- settings -------------------------------------------------------------------------------


def test_every_setting_the_code_reads_is_documented_and_nothing_else() -> None:
    assert setting_names_documented() == setting_names_in_code()


def test_the_example_settings_file_filled_in_as_the_guide_says_passes_serves_checks() -> None:
    """The guide copies .env.example to broker.env and fills in what serve requires."""
    filled_in = {**SECRETS, "BROKER_PUBLIC_URL": "https://broker.example.com"}
    from_compose = compose()["services"]["broker"]["environment"]
    environ = {**filled_in, **{key: str(value) for key, value in from_compose.items()}}
    settings = load_settings(environ=environ, env_file=ROOT / ".env.example")
    assert check_for_production(settings) == []
    assert settings.redis_cluster is False and settings.log_level == "INFO"


# --- Dockerfile -----------------------------------------------------------------------------


def test_the_image_is_slim_and_runs_as_a_numeric_non_root_user() -> None:
    bases = dockerfile("FROM")
    assert bases and all("-slim" in base for base in bases)
    (user,) = dockerfile("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0)


def test_the_image_serves_the_api_port_it_exposes_and_checks_its_health_there() -> None:
    command = exec_form(dockerfile("ENTRYPOINT")[0]) + exec_form(dockerfile("CMD")[0])
    assert command[0] == "broker"
    port = serve_port(command[1:])
    exposed = {int(item) for line in dockerfile("EXPOSE") for item in line.split()}
    assert port in exposed
    (healthcheck,) = dockerfile("HEALTHCHECK")
    probe = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", healthcheck)
    assert probe, healthcheck
    assert int(probe.group(1)) == port
    assert probe.group(2) == "/healthz" and probe.group(2) in route_paths()


def test_the_build_context_leaves_out_everything_but_the_package() -> None:
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    ignored = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignored[0] == "*"
    assert {line for line in ignored if line.startswith("!")} == {
        "!pyproject.toml",
        "!README.md",
        "!deploy/requirements.lock",
        "!broker/",
    }
    copied = " ".join(dockerfile("COPY"))
    assert ".env" not in copied and "tests" not in copied


def test_the_image_installs_the_locked_versions_and_nothing_unpinned() -> None:
    installs = [line for line in dockerfile("RUN") if "pip install" in line]
    assert installs[0].endswith("--require-hashes -r /src/deploy/requirements.lock")
    # The broker's own package after it adds no dependency the lock did not pin.
    assert all("--no-deps" in line for line in installs[1:]) and len(installs) == 2


# --- compose --------------------------------------------------------------------------------


def service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"][name]
    return found


def gateway_setting(directive: str) -> str:
    """The value of a directive the gateway config states once, e.g. `listen`."""
    (value,) = re.findall(rf"^\s*{re.escape(directive)} ([^;]+);", gateway_config(), re.MULTILINE)
    return str(value)


def redis_server_options() -> dict[str, str]:
    """compose's `redis-server --name value ...` as {name: value}."""
    program, *arguments = service("redis")["command"]
    assert program == "redis-server" and len(arguments) % 2 == 0
    return dict(zip(arguments[::2], arguments[1::2], strict=True))


def test_compose_runs_replicas_of_one_broker_service_redis_and_the_gateway() -> None:
    assert set(compose()["services"]) == {"broker", "redis", "gateway"}
    assert service("broker")["deploy"]["replicas"] >= 2
    assert (ROOT / service("broker")["build"]["dockerfile"]).is_file()
    gateway = service("gateway")
    assert gateway["image"].startswith("nginxinc/nginx-unprivileged:")
    source, target, mode = gateway["volumes"][0].split(":")
    assert (DEPLOY / source).resolve() == DEPLOY / "nginx" / "broker.conf"
    # The images' nginx.conf includes conf.d/*.conf inside http{}, where the file belongs.
    assert (target, mode) == ("/etc/nginx/conf.d/default.conf", "ro")


def test_the_gateway_finds_the_broker_replicas_by_service_name_through_composes_dns() -> None:
    """One name for every replica, looked up while nginx runs: `--scale broker=N` just works."""
    host, port = gateway_setting("set $broker_replicas").split(":")
    assert host in compose()["services"] and "deploy" in service(host)
    assert int(port) == serve_port(exec_form(dockerfile("CMD")[0]))
    resolver, *options = gateway_setting("resolver").split()
    assert resolver == "127.0.0.11"  # Docker's DNS on a user-defined network
    assert any(option.startswith("valid=") for option in options)
    # An upstream block would resolve its names once, when nginx starts.
    assert not re.search(r"^\s*upstream ", gateway_config(), re.MULTILINE)
    listen = int(gateway_setting("listen"))
    assert service("gateway")["ports"][0].split(":")[-1] == str(listen)


def test_every_compose_service_checks_its_health_with_a_tool_its_image_has() -> None:
    broker_probe = service("broker")["healthcheck"]["test"]
    assert broker_probe[:3] == ["CMD", "python", "-c"]  # the image has no curl
    probe = re.search(r"'http://127\.0\.0\.1:(\d+)(/\w+)'", broker_probe[3])
    assert probe, broker_probe
    assert int(probe.group(1)) == serve_port(exec_form(dockerfile("CMD")[0]))
    assert probe.group(2) in {"/readyz", "/healthz"} and probe.group(2) in route_paths()
    assert service("redis")["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    gateway_probe = service("gateway")["healthcheck"]["test"]
    assert gateway_probe[:2] == ["CMD", "curl"]
    own_health = f"http://127.0.0.1:{gateway_setting('listen')}/gateway/healthz"
    assert gateway_probe[-1] == own_health
    assert re.search(r"location = /gateway/healthz \{[^}]*return 200", gateway_config())


def test_compose_starts_each_service_once_what_it_needs_is_healthy() -> None:
    assert service("broker")["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert service("gateway")["depends_on"] == {"broker": {"condition": "service_healthy"}}


def test_redis_keeps_the_brokers_keys_on_disk_and_never_evicts_them() -> None:
    options = redis_server_options()
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] in {"everysec", "always"}
    assert options["--maxmemory-policy"] == "noeviction"
    assert re.fullmatch(r"\d+[kmg]b", options["--maxmemory"])
    assert any(volume.endswith(":/data") for volume in service("redis")["volumes"])


def test_the_gateway_runs_read_only_unprivileged_and_without_capabilities() -> None:
    gateway = service("gateway")
    assert gateway["read_only"] is True
    # The unprivileged image writes its pid file and temporary files under /tmp only.
    assert gateway["tmpfs"] == ["/tmp"]  # noqa: S108 (a path in the container, not here)
    assert gateway["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in gateway["security_opt"]
    uid, _, gid = gateway["user"].partition(":")
    assert int(uid) > 0 and int(gid) > 0
    assert int(gateway_setting("listen")) > 1024  # no CAP_NET_BIND_SERVICE needed


def test_compose_trusts_forwarded_headers_from_the_gateway_alone() -> None:
    gateway_address = service("gateway")["networks"]["backend"]["ipv4_address"]
    assert service("broker")["environment"]["BROKER_TRUSTED_PROXIES"] == gateway_address
    # However many replicas run, none can be given the gateway's address.
    (network,) = compose()["networks"]["backend"]["ipam"]["config"]
    dynamic = ipaddress.ip_network(network["ip_range"])
    assert ipaddress.ip_address(gateway_address) in ipaddress.ip_network(network["subnet"])
    assert ipaddress.ip_address(gateway_address) not in dynamic


def test_compose_settings_are_real_and_pass_the_production_checks() -> None:
    broker = service("broker")
    environment = {key: str(value) for key, value in broker["environment"].items()}
    assert set(environment) <= setting_names_in_code()
    redis_host = re.match(r"redis://([\w-]+):", environment["REDIS_URL"])
    assert redis_host and redis_host.group(1) in compose()["services"]
    settings = load_settings(
        environ={**environment, **SECRETS, "BROKER_PUBLIC_URL": "https://b.example"},
        env_file=None,
    )
    assert check_for_production(settings) == []
    grace_s = int(broker["stop_grace_period"].removesuffix("s"))
    assert grace_s > settings.shutdown_timeout_s
    assert broker["env_file"] == "broker.env"


# --- Kubernetes -----------------------------------------------------------------------------


def test_every_manifest_parses_and_the_kustomization_lists_them_all() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert set(kubernetes_objects()) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "Kustomization",
    }


def container() -> dict[str, Any]:
    containers = kubernetes_objects()["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def config_data() -> dict[str, str]:
    data: dict[str, str] = kubernetes_objects()["ConfigMap"]["data"]
    return data


def test_the_deployment_listens_where_its_ports_say() -> None:
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    assert ports["http"] == serve_port(container()["args"])
    assert ports["metrics"] == int(config_data()["BROKER_METRICS_PORT"])
    annotations = kubernetes_objects()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_probes_ask_routes_the_broker_has_on_its_api_port() -> None:
    names = {port["name"] for port in container()["ports"]}
    paths = route_paths() | {"/metrics"}
    probes = {kind: container()[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    for probe in [*probes.values(), container()["startupProbe"]["httpGet"]]:
        assert probe["path"] in paths
        assert probe["port"] == "http" and probe["port"] in names


def test_the_config_map_holds_real_settings_that_pass_the_production_checks() -> None:
    data = config_data()
    assert set(data) <= setting_names_in_code()
    assert not set(data) & set(SECRETS), "secrets belong in the Secret"
    settings = load_settings(environ={**data, **SECRETS}, env_file=None)
    assert check_for_production(settings) == []
    env_from = container()["envFrom"]
    assert {"configMapRef": {"name": kubernetes_objects()["ConfigMap"]["metadata"]["name"]}} in (
        env_from
    )
    assert {"secretRef": {"name": "broker-secrets"}} in env_from
    assert "broker-secrets" in (DEPLOY / "README.md").read_text()


def test_the_pod_stops_gracefully_within_its_grace_period() -> None:
    pod = kubernetes_objects()["Deployment"]["spec"]["template"]["spec"]
    pause = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    shutdown_s = int(config_data()["BROKER_SHUTDOWN_TIMEOUT_S"])
    assert pod["terminationGracePeriodSeconds"] > int(pause[1]) + shutdown_s


def test_the_pod_runs_as_the_images_user_without_privileges() -> None:
    pod = kubernetes_objects()["Deployment"]["spec"]["template"]["spec"]
    (user,) = dockerfile("USER")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == user.split(":")[0]
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "memory" in container()["resources"]["limits"]
    assert set(container()["resources"]["requests"]) == {"cpu", "memory"}


def test_service_budget_autoscaler_and_policy_select_the_deployments_pods() -> None:
    objects = kubernetes_objects()
    deployment = objects["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    port_names = {port["name"] for port in container()["ports"]}

    def selects(selector: dict[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in selector.items())

    assert selects(deployment["spec"]["selector"]["matchLabels"])
    assert selects(objects["Service"]["spec"]["selector"])
    assert {port["targetPort"] for port in objects["Service"]["spec"]["ports"]} <= port_names
    assert selects(objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"])
    assert selects(objects["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"])
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["minReplicas"] >= 2 == deployment["spec"]["replicas"]
    assert objects["PodDisruptionBudget"]["spec"]["minAvailable"] < hpa["minReplicas"]


def test_the_network_policy_lets_the_gateway_reach_the_api_and_only_monitoring_the_metrics() -> (
    None
):
    ingress = kubernetes_objects()["NetworkPolicy"]["spec"]["ingress"]
    allowed = {
        rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]: [
            port["port"] for port in rule["ports"]
        ]
        for rule in ingress
    }
    assert allowed == {"ingress-nginx": ["http"], "monitoring": ["metrics"]}


# --- gateway --------------------------------------------------------------------------------


def test_the_gateway_overwrites_forwarded_for_and_caps_bodies_like_the_broker() -> None:
    config = gateway_config()
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in config
    assert "$proxy_add_x_forwarded_for" not in config
    (cap,) = re.findall(r"^\s*client_max_body_size (\d+)k;", config, flags=re.MULTILINE)
    assert int(cap) * 1024 == Settings().max_body_bytes
    assert re.search(r"location \^~ /metrics \{\s*return 404;", config)
    assert "non_idempotent" not in config.replace('do not add "non_idempotent"', "")


@pytest.mark.parametrize(
    "step",
    [
        "cp .env.example deploy/broker.env",
        "docker compose -f deploy/compose.yaml up",
        "create secret generic broker-secrets",
        "kubectl apply -k deploy/kubernetes",
        "kubectl apply -k deploy/kubernetes/monitoring",
        "--scale broker=",
    ],
)
def test_the_deploy_guide_gives_each_step(step: str) -> None:
    guide = (DEPLOY / "README.md").read_text()
    assert step in guide


def test_the_settings_file_of_the_guide_is_kept_out_of_git() -> None:
    assert "deploy/broker.env" in (ROOT / ".gitignore").read_text().split()


def test_the_deploy_guide_names_every_setting_serve_requires() -> None:
    guide = (DEPLOY / "README.md").read_text()
    for name in ("GLADIA_API_KEY", "BROKER_SECRET_KEYS", "BROKER_PUBLIC_URL", "REDIS_URL"):
        assert name in guide


def test_the_deploy_guide_names_only_settings_the_broker_has() -> None:
    guide = (DEPLOY / "README.md").read_text()
    assert setting_names_mentioned(guide) - setting_names_in_code() == set()
