"""k8s/: renders with kustomize, every object validates strictly, and the pieces refer to each other."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import yaml

from scripts.services import find_binary
from sd1job.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
K8S = REPO_ROOT / "k8s"
# The oldest Kubernetes the manifests are meant for (scripts/install-system-deps.sh installs kubectl 1.32).
K8S_VERSION = "1.32.0"
NAMESPACE = "sd1job"


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """Every object ``kubectl kustomize k8s/`` renders."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed: make test (scripts/install-system-deps.sh) installs it")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The rendered object of ``kind`` whose name is ``name`` (or ``name`` plus kustomize's hash)."""
    matches = [
        o
        for o in objects
        if o["kind"] == kind and (o["metadata"]["name"] == name or o["metadata"]["name"].startswith(name + "-"))
    ]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} matches"
    return matches[0]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(name, pod spec) of every Deployment and Job."""
    return [
        (o["metadata"]["name"], o["spec"]["template"]["spec"]) for o in objects if o["kind"] in {"Deployment", "Job"}
    ]


def test_every_rendered_object_validates_strictly(rendered: list[dict[str, Any]]) -> None:
    assert len(rendered) >= 15
    for obj in rendered:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_strict_validation_rejects_an_unknown_field(rendered: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(find(rendered, "Deployment", "minio"))
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_the_services_are_all_there_in_one_namespace(rendered: list[dict[str, Any]]) -> None:
    for kind, name in [
        ("Namespace", NAMESPACE),
        ("ServiceAccount", "sd1job-workflow"),
        ("Role", "sd1job-executor"),
        ("RoleBinding", "sd1job-executor"),
        ("ConfigMap", "sd1job-config"),
        ("PersistentVolumeClaim", "minio-data"),
        ("Job", "minio-create-bucket"),
        ("ConfigMap", "prometheus-config"),
        ("ConfigMap", "grafana-datasources"),
        ("ConfigMap", "grafana-dashboard-provider"),
        ("ConfigMap", "grafana-dashboards"),
    ]:
        find(rendered, kind, name)
    for name in ("minio", "pushgateway", "prometheus", "grafana"):
        find(rendered, "Deployment", name)
        find(rendered, "Service", name)
    for obj in rendered:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]
    # The job config keeps its exact name: the Argo workflow mounts it by name.
    assert find(rendered, "ConfigMap", "sd1job-config")["metadata"]["name"] == "sd1job-config"


def test_no_secret_is_rendered_and_the_example_holds_placeholders_only(rendered: list[dict[str, Any]]) -> None:
    assert not [o for o in rendered if o["kind"] == "Secret"]
    example = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    kubernetes_validate.validate(example, K8S_VERSION, strict=True)
    assert example["metadata"]["name"] == "sd1job-s3"
    assert set(example["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert all(value.startswith("REPLACE-") for value in example["stringData"].values())
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]


def test_rbac_grants_the_argo_executor_only_workflowtaskresults(rendered: list[dict[str, Any]]) -> None:
    role = find(rendered, "Role", "sd1job-executor")
    assert role["rules"] == [
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}
    ]
    binding = find(rendered, "RoleBinding", "sd1job-executor")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sd1job-workflow", "namespace": NAMESPACE}]


def test_every_reference_in_a_pod_resolves(rendered: list[dict[str, Any]]) -> None:
    """ConfigMaps, their keys, PVCs and Secret keys that pods use exist (the Secret per the example)."""
    configmaps = {o["metadata"]["name"]: o["data"] for o in rendered if o["kind"] == "ConfigMap"}
    claims = {o["metadata"]["name"] for o in rendered if o["kind"] == "PersistentVolumeClaim"}
    secret_keys = {"sd1job-s3": set(yaml.safe_load((K8S / "secret.example.yaml").read_text())["stringData"])}
    for name, spec in pod_specs(rendered):
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps, (name, volume)
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, (name, volume)
        mounts = {m["name"] for c in spec["containers"] for m in c.get("volumeMounts", [])}
        assert mounts == {v["name"] for v in spec.get("volumes", [])}, name
        for container in spec["containers"]:
            for env in container.get("env", []):
                source = env.get("valueFrom", {})
                if "configMapKeyRef" in source:
                    ref = source["configMapKeyRef"]
                    assert ref["key"] in configmaps[ref["name"]], (name, ref)
                if "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    assert ref.get("optional") or ref["key"] in secret_keys[ref["name"]], (name, ref)


def test_services_select_pods_and_name_their_ports(rendered: list[dict[str, Any]]) -> None:
    for service in (o for o in rendered if o["kind"] == "Service"):
        deployment = find(rendered, "Deployment", service["metadata"]["name"])
        template = deployment["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        port_names = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (service["metadata"]["name"], port)


def test_pods_run_non_root_with_pinned_images_and_bounded_memory(rendered: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(rendered):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        for container in spec["containers"]:
            image = container["image"]
            tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
            assert tag and tag != "latest", (name, image)
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], name
            assert "memory" in container["resources"]["limits"], name
            assert "cpu" in container["resources"]["requests"], name


def _service_url(rendered: list[dict[str, Any]], name: str, port_name: str) -> str:
    service = find(rendered, "Service", name)
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == port_name)
    return f"http://{name}:{port}"


def test_job_config_is_a_valid_sd1job_config_pointing_at_the_cluster_services(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    data = find(rendered, "ConfigMap", "sd1job-config")["data"]
    path = tmp_path / "config.yaml"
    path.write_text(data["config.yaml"])
    config = load_config(path)
    bucket_job = find(rendered, "Job", "minio-create-bucket")["spec"]["template"]["spec"]["containers"][0]
    bucket = next(e["value"] for e in bucket_job["env"] if e["name"] == "BUCKET")
    assert config.store.startswith(f"s3://{bucket}/")
    assert config.metrics.pushgateway == _service_url(rendered, "pushgateway", "http")
    assert data["AWS_ENDPOINT_URL"] == _service_url(rendered, "minio", "s3")
    assert data["AWS_REGION"]


def test_prometheus_scrapes_the_pushgateway_keeping_pushed_labels(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    text = find(rendered, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"]
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(text)
    result = subprocess.run(
        [find_binary("promtool"), "check", "config", str(config_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = yaml.safe_load(text)["scrape_configs"]
    pushgateway = urlparse(_service_url(rendered, "pushgateway", "http")).netloc
    scraping = [j for j in jobs if pushgateway in j["static_configs"][0]["targets"]]
    assert len(scraping) == 1 and scraping[0]["honor_labels"] is True
    container = find(rendered, "Deployment", "prometheus")["spec"]["template"]["spec"]["containers"][0]
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "config")
    assert f"--config.file={mount}/prometheus.yml" in container["args"]


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard(rendered: list[dict[str, Any]]) -> None:
    spec = find(rendered, "Deployment", "grafana")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}

    def mounted(configmap: str) -> tuple[str, dict[str, str]]:
        volume = next(n for n, v in volumes.items() if v.get("configMap", {}).get("name", "").startswith(configmap))
        return mounts[volume], find(rendered, "ConfigMap", configmap)["data"]

    path, data = mounted("grafana-datasources")
    assert path == "/etc/grafana/provisioning/datasources"
    (source,) = [d for text in data.values() for d in yaml.safe_load(text)["datasources"]]
    assert source["uid"] == "sd1job-prometheus" and source["type"] == "prometheus"
    assert source["url"] == _service_url(rendered, "prometheus", "http")

    path, data = mounted("grafana-dashboard-provider")
    assert path == "/etc/grafana/provisioning/dashboards"
    (provider,) = [p for text in data.values() for p in yaml.safe_load(text)["providers"]]
    dashboards_path, dashboards = mounted("grafana-dashboards")
    assert provider["options"]["path"] == dashboards_path
    shipped = json.loads((K8S / "grafana" / "sd1job-dashboard.json").read_text())
    assert json.loads(dashboards["sd1job-dashboard.json"]) == shipped
    home = next(e["value"] for e in container["env"] if e["name"] == "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home == f"{dashboards_path}/sd1job-dashboard.json"
