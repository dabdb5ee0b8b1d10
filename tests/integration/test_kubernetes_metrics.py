"""What the Kubernetes manifests expect of Triton, checked against a real local Triton: the autoscaler's queries
name series that ``/metrics`` really exposes, and the Deployment's settings start a server whose restricted APIs
open only with the key."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.kubernetes import OVERLAYS, only, render, scaling_queries, selectors
from triton_ner.client import NerClient
from triton_ner.server import TritonServer, admin_headers, free_ports

pytestmark = pytest.mark.integration
SEED = "My name is Wolfgang and I live in Berlin"
# Labels Prometheus adds when it scrapes (PodMonitor), absent from Triton's own output.
SCRAPE_LABELS = {"namespace", "job", "pod", "instance", "container", "endpoint"}
# Flags TritonServer sets itself (repository and ports are this machine's).
LAUNCHER_FLAGS = ("--model-repository", "--http-port", "--grpc-port", "--metrics-port", "--exit-on-error",
                  "--exit-timeout-secs")
_SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", re.MULTILINE)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')


def _series(metrics_port: int) -> list[tuple[str, dict[str, str]]]:
    with urllib.request.urlopen(f"http://localhost:{metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return [(name, dict(_LABEL.findall(labels))) for name, labels in _SERIES.findall(text)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scaling_queries_name_series_that_triton_exposes(overlay, triton):
    with NerClient(triton.grpc_url) as client:
        client.predict([SEED] * 4)  # the inference series exist from load on; a request makes them move
    exposed = _series(triton.ports.metrics)
    queries = scaling_queries(render(f"overlays/{overlay}"))
    for trigger, query in queries.items():
        for metric, labels in selectors(query):
            own = {key: value for key, value in labels.items() if key not in SCRAPE_LABELS}
            matching = [found for name, found in exposed if name == metric and own.items() <= found.items()]
            assert matching, f"{trigger}: no series {metric}{own} in Triton's /metrics"
    success = [labels for name, labels in exposed if name == "nv_inference_request_success"
               and labels.get("model") == "ner_model"]
    assert success and float(_value(triton.ports.metrics, "nv_inference_request_success", "ner_model")) >= 1


def _value(metrics_port: int, metric: str, model: str) -> str:
    with urllib.request.urlopen(f"http://localhost:{metrics_port}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"{metric}{{") and f'model="{model}"' in line:
                return line.rsplit(" ", 1)[1]
    raise AssertionError(f"no {metric} for {model}")


def test_the_deployments_settings_start_triton_with_the_restricted_apis(repository):
    triton_container = next(c for c in only(render("overlays/cpu"), "Deployment")["spec"]["template"]["spec"]
                            ["containers"] if c["name"] == "triton")
    env = {e["name"]: e.get("value") for e in triton_container["env"]}
    flags = dict(arg.split("=", 1) for arg in triton_container["args"])
    # What the image's entrypoint makes of them: the restricted APIs of ner-serve --admin-key (the unit tests
    # check that the entrypoint's are the same), the configs of TRITON_CONFIG, the Deployment's arguments added.
    key = "test-admin-key"
    extra = tuple(f"{flag}={value}" for flag, value in flags.items() if not flag.startswith(LAUNCHER_FLAGS))
    with TritonServer(repository, free_ports(), admin_key=key, config_name=env["TRITON_CONFIG"] or None,
                      exit_timeout=int(flags.pop("--exit-timeout-secs")), extra_args=extra) as server:
        with NerClient(server.grpc_url) as client:  # inference is open
            assert client.predict(SEED)[0]["word"] == "Wolfgang"
        index = f"http://{server.http_url}/v2/repository/index"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(index, data=b"{}", method="POST"), timeout=10)
        refused.value.close()
        assert refused.value.code == 403
        allowed = urllib.request.Request(index, data=b"{}", method="POST", headers=admin_headers(key))
        with urllib.request.urlopen(allowed, timeout=10) as response:
            assert response.status == 200
        grpc = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            with pytest.raises(InferenceServerException, match="restricted"):
                grpc.get_model_repository_index()
            models = grpc.get_model_repository_index(headers=admin_headers(key, "grpc"), as_json=True)["models"]
            assert "ner" in {model["name"] for model in models}
        finally:
            grpc.close()
