"""The Kubernetes manifests (deploy/kubernetes): every overlay renders with ``kubectl kustomize``, validates against
the schemas of a stated Kubernetes version and of the custom resources' CRDs, and its parts refer to each other
correctly (selectors, named ports, the Secret, images, grace periods, the scaling queries' labels).

The schemas: the core kinds against Kubernetes 1.30 (the oldest release with the ``sleep`` preStop action, on by
default) and 1.37 (the newest ``kubernetes-validate`` knows), strictly (an unknown field fails). KEDA's
ScaledObject against KEDA 2.16's CRD and the PodMonitor against prometheus-operator 0.80's, as the cloudcoil
models generated from those CRDs carry them. No cluster: what the API server would default or admit beyond its
schemas, and whether the images run, is not proven here.
"""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
import sys
from typing import Any

import kubernetes_validate
import pytest
import tomllib
import typer
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject
from cloudcoil.models.prometheus_operator.v1 import PodMonitor

from tests.kubernetes import KUBERNETES, OVERLAYS, PROJECT_ROOT, only, render, scaling_queries, selectors
from triton_ner import serve
from triton_ner.core import names

KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
CUSTOM_KINDS = {"ScaledObject": ScaledObject, "PodMonitor": PodMonitor}
EXPECTED = {("Namespace", "ner"), ("Deployment", "ner-triton"), ("Service", "ner-triton"),
            ("Service", "ner-triton-headless"), ("PodDisruptionBudget", "ner-triton"), ("PodMonitor", "ner-triton"),
            ("ScaledObject", "ner-triton")}
# The container's variable that holds the Secret's admin key (ner-serve and the images' entrypoint read it).
KEY_VARIABLE = "NER_ADMIN_KEY"
SERVER_ENTRYPOINT = PROJECT_ROOT / "docker" / "entrypoint-server.sh"
VERSION = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
COMPOSE = PROJECT_ROOT / "docker-compose.yml"
IMAGES = {"gpu": f"distilbert-ner-triton-gpu:{VERSION}", "cpu": f"distilbert-ner-triton-cpu:{VERSION}",
          "export": f"distilbert-ner-triton-export:{VERSION}"}


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(f"overlays/{request.param}")


def _pod(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return only(resources, "Deployment", "ner-triton")["spec"]["template"]


def _containers(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    spec = _pod(resources)["spec"]
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def _flag(container: dict[str, Any], name: str) -> str:
    values = [arg.split("=", 1)[1] for arg in container.get("args", []) if arg.startswith(f"{name}=")]
    assert len(values) == 1, f"{container['name']}: expected one {name}=..., found {values}"
    return values[0]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    """``{name: value or valueFrom}`` of the container's environment."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def _compose_images() -> set[str]:
    """The images docker-compose.yml builds, with ``${NAME:-default}`` read as its default."""
    services = yaml.safe_load(COMPOSE.read_text()).get("services", {})
    return {re.sub(r"\$\{[^}:]*:?-([^}]*)\}", r"\1", service["image"]) for service in services.values()
            if "image" in service}


def test_every_folder_renders_the_same_resources():
    assert {(r["kind"], r["metadata"]["name"]) for r in render("base")} == EXPECTED
    for name in OVERLAYS:
        resources = render(f"overlays/{name}")
        assert {(r["kind"], r["metadata"]["name"]) for r in resources} == EXPECTED
        assert {r["metadata"].get("namespace") for r in resources if r["kind"] != "Namespace"} == {"ner"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_kinds_validate_strictly(overlay, version):
    for resource in overlay[1]:
        if resource["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(resource, version, strict=True)


def test_the_validators_can_fail(overlay):
    deployment = copy.deepcopy(only(overlay[1], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"port": "http"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    scaled = copy.deepcopy(only(overlay[1], "ScaledObject"))
    del scaled["spec"]["scaleTargetRef"]
    with pytest.raises(ValueError, match="scaleTargetRef"):
        ScaledObject.model_validate(scaled)


def test_custom_resources_validate_against_their_crds(overlay):
    for resource in overlay[1]:
        model = CUSTOM_KINDS.get(resource["kind"])
        if model is None:
            continue
        # The models ignore unknown fields: reading back exactly what was given proves there was none, and that
        # no value was coerced (a string where the CRD has an integer).
        parsed = model.model_validate(resource)
        assert parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") == resource


def test_scaled_object_triggers(overlay):
    # The CRD leaves a trigger's metadata free-form: KEDA's Prometheus scaler needs these keys.
    scaled = only(overlay[1], "ScaledObject")["spec"]
    assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ner-triton"}
    assert 2 <= scaled["minReplicaCount"] < scaled["maxReplicaCount"]
    for trigger in scaled["triggers"]:
        assert trigger["type"] == "prometheus"
        assert trigger["metricType"] in ("Value", "AverageValue")
        assert {"serverAddress", "query", "threshold"} <= set(trigger["metadata"])
        assert float(trigger["metadata"]["threshold"]) > 0
    # No replica count in the Deployment: `kubectl apply` would reset the autoscaler's.
    assert "replicas" not in only(overlay[1], "Deployment")["spec"]


def test_selectors_match_the_pods(overlay):
    resources = overlay[1]
    labels = _pod(resources)["metadata"]["labels"]
    deployment = only(resources, "Deployment")["spec"]
    assert _matches(deployment["selector"]["matchLabels"], labels)
    for service in (r for r in resources if r["kind"] == "Service"):
        assert _matches(service["spec"]["selector"], labels), service["metadata"]["name"]
    for kind in ("PodDisruptionBudget", "PodMonitor"):
        assert _matches(only(resources, kind)["spec"]["selector"]["matchLabels"], labels), kind
    for constraint in deployment["template"]["spec"]["topologySpreadConstraints"]:
        assert _matches(constraint["labelSelector"]["matchLabels"], labels)


def test_named_ports_are_the_containers(overlay):
    resources = overlay[1]
    triton = _containers(resources)["triton"]
    ports = {port["name"]: port["containerPort"] for port in triton["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    for flag, name in (("--http-port", "http"), ("--grpc-port", "grpc"), ("--metrics-port", "metrics")):
        assert int(_flag(triton, flag)) == ports[name]
    for service in (r for r in resources if r["kind"] == "Service"):
        for port in service["spec"]["ports"]:
            assert port["targetPort"] == port["name"] and port["name"] in ports, service["metadata"]["name"]
    assert only(resources, "Service", "ner-triton-headless")["spec"]["clusterIP"] == "None"
    for probe, path in (("startupProbe", "/v2/health/ready"), ("readinessProbe", "/v2/health/ready"),
                        ("livenessProbe", "/v2/health/live")):
        assert triton[probe]["httpGet"] == {"path": path, "port": "http"}
    # The startup probe allows the model load minutes; the others then react within seconds.
    startup = triton["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert [e["port"] for e in only(resources, "PodMonitor")["spec"]["podMetricsEndpoints"]] == ["metrics"]


def test_termination_outlasts_the_drain(overlay):
    pod = _pod(overlay[1])["spec"]
    triton = _containers(overlay[1])["triton"]
    drain = triton["lifecycle"]["preStop"]["sleep"]["seconds"] + int(_flag(triton, "--exit-timeout-secs"))
    assert drain < pod["terminationGracePeriodSeconds"]


def test_restricted_apis_need_the_key_from_the_secret(overlay):
    triton = _containers(overlay[1])["triton"]
    # The image's entrypoint (ner-serve) puts the restricted APIs behind the key: no command may replace it.
    assert "command" not in triton
    assert not [arg for arg in triton["args"] if "restricted" in arg]
    assert _env(triton)[KEY_VARIABLE] == {"secretKeyRef": {"name": "ner-triton-admin", "key": "admin-key"}}
    # The key is created in the cluster, never committed: no Secret is rendered.
    assert not [r for r in overlay[1] if r["kind"] == "Secret"]


def test_pods_meet_the_restricted_pod_security_standard(overlay):
    resources = overlay[1]
    assert only(resources, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = _pod(resources)["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for name, container in _containers(resources).items():
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert context["readOnlyRootFilesystem"] is True, name


def test_the_images_entrypoint_is_ner_serve_with_the_key_of_the_secret():
    # What the Deployment leaves to docker/entrypoint-server.sh: ner-serve, whose --admin-key (the restricted APIs
    # behind the header admin-key) reads NER_ADMIN_KEY; an empty key is refused before anything starts.
    script = SERVER_ENTRYPOINT.read_text()
    assert "exec ner-serve --tritonserver=tritonserver " in script
    [admin_key] = [p for p in typer.main.get_command(serve.app).params if p.name == "admin_key"]
    assert admin_key.envvar == KEY_VARIABLE
    done = subprocess.run(["sh", str(SERVER_ENTRYPOINT)], env={"PATH": "/usr/bin:/bin", KEY_VARIABLE: ""},
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1 and done.stderr.startswith(f"error: {KEY_VARIABLE} is empty"), done.stderr


def test_volumes_and_the_model_repository(overlay):
    pod = _pod(overlay[1])["spec"]
    containers = _containers(overlay[1])
    volumes = {volume["name"] for volume in pod["volumes"]}
    for name, container in containers.items():
        assert {mount["name"] for mount in container["volumeMounts"]} <= volumes, name
    # The export writes MODEL_REPOSITORY, the volume's mount; Triton reads its own MODEL_REPOSITORY, the same
    # volume mounted read-only.
    for name, container in containers.items():
        mount = next(m for m in container["volumeMounts"] if m["name"] == "model-repository")
        assert _env(container)["MODEL_REPOSITORY"] == mount["mountPath"] == "/models", name
        assert mount.get("readOnly", False) is (name == "triton")


def test_images_are_the_compose_builds_and_pinned(overlay):
    name, resources = overlay
    containers = _containers(resources)
    images = {container: spec["image"] for container, spec in containers.items()}
    assert images == {"export": IMAGES["export"], "triton": IMAGES[name]}
    for image in images.values():
        tag = image.rpartition(":")[2]
        assert ":" in image and tag != "latest", image
    if COMPOSE.exists():
        assert set(images.values()) <= _compose_images(), f"images not built by {COMPOSE.name}"


def test_gpu_overlay_asks_for_a_gpu_and_the_gpu_configs():
    resources = render("overlays/gpu")
    containers = _containers(resources)
    triton = containers["triton"]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert _env(triton)["TRITON_CONFIG"] == "gpu"
    assert _env(containers["export"])["EXPORT_ARGS"] == "--precision fp16"
    pod = _pod(resources)["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_cpu_overlay_asks_for_no_gpu():
    resources = render("overlays/cpu")
    containers = _containers(resources)
    assert all("nvidia.com/gpu" not in str(c.get("resources")) for c in containers.values())
    assert "nodeSelector" not in _pod(resources)["spec"]


def test_cpu_overlay_serves_openvino_bf16_where_the_cpu_has_bf16(tmp_path):
    """The overlay's EXPORT_ARGS, given to the real ner-export as the export image's entrypoint gives them, write
    the variant that its TRITON_CONFIG=auto then picks on a CPU with BF16 instructions (config.pbtxt without)."""
    containers = _containers(render("overlays/cpu"))
    export_args = _env(containers["export"])["EXPORT_ARGS"]
    assert _env(containers["triton"])["TRITON_CONFIG"] == serve.AUTO
    subprocess.run([sys.executable, "-m", "triton_ner.export", "--model", "fixture", "--target", "both",
                    "--output", str(tmp_path / "repo"), *shlex.split(export_args)], check=True, capture_output=True)
    assert serve.auto_config_name(tmp_path / "repo", False, {"avx512f", "amx_bf16"}) == "openvino_bf16"
    assert serve.auto_config_name(tmp_path / "repo", False, {"avx512f"}) is None


def test_scaling_queries_select_this_deployment(overlay):
    # Triton's own labels (model, version) are checked against a real server in
    # tests/integration/test_kubernetes_metrics.py; here the labels Prometheus adds at scrape time.
    resources = overlay[1]
    monitor = only(resources, "PodMonitor")["spec"]
    job = _pod(resources)["metadata"]["labels"][monitor["jobLabel"]]
    queries = scaling_queries(resources)
    assert set(queries) == {"queue-time", "pending"}
    for query in queries.values():
        found = selectors(query)
        assert found, query
        for metric, labels in found:
            assert labels == {"namespace": "ner", "job": job, "model": names.MODEL}, metric


def test_the_kustomizations_name_existing_files():
    for kustomization in KUBERNETES.rglob("kustomization.yaml"):
        content = yaml.safe_load(kustomization.read_text())
        for entry in [*content.get("resources", []), *(p["path"] for p in content.get("patches", []) if "path" in p)]:
            assert (kustomization.parent / entry).exists(), f"{kustomization}: {entry}"
