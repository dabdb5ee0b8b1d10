"""What the Kubernetes manifests expect of Triton, checked against a real local Triton: the autoscaler's queries
name series that ``/metrics`` really exposes, and the Deployment's settings start a server whose restricted APIs
open only with the key."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.kubernetes import OVERLAYS, only, render, scaling_queries, selectors
from triton_ner.client import NerClient
from triton_ner.health import wait_ready
from triton_ner.server.arguments import admin_headers, free_ports
from triton_ner.server.installation import backend_directory, server_environment
from triton_ner.server.launcher import TritonServer
from triton_ner.server.processes import child_processes

SEED = "My name is Wolfgang and I live in Berlin"
# Labels Prometheus adds when it scrapes (PodMonitor), absent from Triton's own output.
SCRAPE_LABELS = {"namespace", "job", "pod", "instance", "container", "endpoint"}
SERVER_ENTRYPOINT = Path(__file__).resolve().parents[2] / "docker" / "entrypoint-server.sh"
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


def test_the_deployments_settings_start_the_images_entrypoint_with_the_restricted_apis(repository, tmp_path):
    """docker/entrypoint-server.sh run here as the Deployment runs it: its environment (the key, TRITON_CONFIG,
    MODEL_REPOSITORY) and its arguments, then this machine's free ports (the last value of an option wins) and,
    after --, the wheel's backend folder in place of the image's /opt/tritonserver/backends."""
    triton_container = next(c for c in only(render("overlays/cpu"), "Deployment")["spec"]["template"]["spec"]
                            ["containers"] if c["name"] == "triton")
    env = {e["name"]: e.get("value") for e in triton_container["env"]}
    key = "test-admin-key"
    ports = free_ports()
    binaries = tmp_path / "bin"  # `tritonserver` on PATH, as in both images
    binaries.mkdir()
    (binaries / "tritonserver").symlink_to(TritonServer(repository).binary())  # the wheel's
    environment = server_environment()
    environment.update(NER_ADMIN_KEY=key, TRITON_CONFIG=env["TRITON_CONFIG"], MODEL_REPOSITORY=str(repository),
                       PATH=f"{binaries}{os.pathsep}{environment['PATH']}")
    args = [*triton_container["args"], f"--http-port={ports.http}", f"--grpc-port={ports.grpc}",
            f"--metrics-port={ports.metrics}", "--", f"--backend-directory={backend_directory(tmp_path / 'b')}"]
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(["sh", str(SERVER_ENTRYPOINT), *args], env=environment, stdout=output,
                                   stderr=subprocess.STDOUT)
    try:
        assert wait_ready(f"localhost:{ports.http}", 180, alive=lambda: process.poll() is None), \
            log.read_text()[-3000:]
        # The Deployment's exit timeout reaches Triton (and the launcher's drain): tritonserver is ner-serve's child.
        [command] = [args for _, _, args in child_processes(process.pid) if args[0] == str(binaries / "tritonserver")]
        assert f"--exit-timeout-secs={_flag_value(triton_container, '--exit-timeout-secs')}" in command
        with NerClient(f"localhost:{ports.grpc}") as client:  # inference is open
            assert client.predict(SEED)[0]["word"] == "Wolfgang"
        index = f"http://localhost:{ports.http}/v2/repository/index"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(index, data=b"{}", method="POST"), timeout=10)
        refused.value.close()
        assert refused.value.code == 403
        allowed = urllib.request.Request(index, data=b"{}", method="POST", headers=admin_headers(key))
        with urllib.request.urlopen(allowed, timeout=10) as response:
            assert response.status == 200
        grpc = grpcclient.InferenceServerClient(f"localhost:{ports.grpc}")
        try:
            with pytest.raises(InferenceServerException, match="restricted"):
                grpc.get_model_repository_index()
            models = grpc.get_model_repository_index(headers=admin_headers(key, "grpc"), as_json=True)["models"]
            assert "ner" in {model["name"] for model in models}
        finally:
            grpc.close()
        process.send_signal(signal.SIGTERM)  # what the kubelet sends after the preStop sleep
        process.wait(60)
        assert process.returncode == 0, log.read_text()[-3000:]
        assert "serve: SIGTERM, stopping the server" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _flag_value(container: dict, flag: str) -> str:
    return next(arg.split("=", 1)[1] for arg in container["args"] if arg.startswith(f"{flag}="))
