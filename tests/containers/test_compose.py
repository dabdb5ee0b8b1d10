"""`make compose-test`: docker-compose.yml run for real with podman-compose, on CPU.

The CPU images are built on a Debian base made here, the export job writes the model repository into the compose
volume, the ``cpu`` profile serves it, and the host asks it through the project's client over gRPC and HTTP. Then
Locust runs from its own container against ``triton:8001``, the monitoring files are checked against the running
server, the restricted APIs against the key, and the container faults are provoked (an empty or a broken
repository, a failed export, a killed stub, compose stop). Everything the run made
(containers, volumes, networks) is removed at the end, also when a step fails; the images are kept, so that a
second run only rebuilds what changed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.containers import podman
from tests.polling import wait_for
from triton_ner.demo import SEED_SENTENCE
from triton_ner.health import wait_ready
from triton_ner.server.arguments import Ports, free_ports
from triton_ner.server.supervisor import RELOAD_PARAMETER

ADMIN_KEY = "compose-test-key"
OPENVINO_EXPORT = "--format openvino --precision bf16"
DASHBOARD = podman.PROJECT_ROOT / "docker" / "monitoring" / "grafana" / "dashboards" / "triton-ner.json"
PROMETHEUS_CONFIG = podman.PROJECT_ROOT / "docker" / "monitoring" / "prometheus.yml"
# Triton core's metrics (r24.10, as the served binary): from the offline sources of the backends' build
# (backends/README.md) when they are given, else from GitHub.
CORE_METRICS_URL = "https://raw.githubusercontent.com/triton-inference-server/core/r24.10/src/metrics.cc"


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    ports: Ports
    sizes: dict[str, int]

    def compose(self, *arguments: str, timeout: float = 600, check: bool = True,
                env: dict[str, str] | None = None):
        return podman.compose(self.project, *arguments, env=env or self.env, timeout=timeout, check=check)

    def url(self, port: int, path: str) -> str:
        return f"http://127.0.0.1:{port}{path}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    started = time.monotonic()
    folder = tmp_path_factory.mktemp("compose")
    podman.install_tools()
    env = podman.engine_environment(folder)
    podman.build_base_image(env)
    sizes = podman.build_images(folder, env)
    ports = free_ports()
    project = f"ner-compose-test-{os.getpid()}"
    # The OpenVINO IR beside the ONNX model: the stack serves config.pbtxt, one test the variant `auto` picks.
    env.update(NER_ADMIN_KEY=ADMIN_KEY, MODEL="fixture", TRITON_HTTP_PORT=str(ports.http),
               TRITON_GRPC_PORT=str(ports.grpc), TRITON_METRICS_PORT=str(ports.metrics), EXPORT_ARGS=OPENVINO_EXPORT)
    running = Stack(project, env, ports, sizes)
    try:
        # What `docker compose --profile cpu up` does: the export job, and the server once it succeeded
        # (podman-compose waits for the job to stop but not for its success, so the exit code is checked here).
        running.compose("--profile", "cpu", "run", "--rm", "-T", "export", timeout=1200)
        running.compose("--profile", "cpu", "up", "--detach", "--no-build", "triton-cpu")
        ready = wait_ready(f"127.0.0.1:{ports.http}", timeout=300)
        if not ready:
            logs = running.compose("--profile", "cpu", "logs", "triton-cpu", check=False)
            raise AssertionError(f"the triton-cpu container is not ready after 300 s:\n{logs.stdout[-4000:]}"
                                 f"{logs.stderr[-2000:]}")
        podman.log(f"stack ready {time.monotonic() - started:.0f} s after the start")
        yield running
    finally:
        left = podman.tear_down(project, env)
        podman.log(f"torn down; {time.monotonic() - started:.0f} s in all")
        assert not left, f"left behind: {left}"


def _client(stack: Stack, protocol: str, *texts: str) -> list[list[dict]]:
    port = stack.ports.grpc if protocol == "grpc" else stack.ports.http
    executable = Path(sys.executable).parent / "ner-client"
    done = podman.run([str(executable), "--protocol", protocol, "--url", f"127.0.0.1:{port}", "--output", "json",
                     *texts], timeout=60)
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_the_seed_sentence_from_the_host_through_the_project_client(stack, protocol):
    [entities] = _client(stack, protocol, SEED_SENTENCE)
    podman.log(f"{protocol}: {json.dumps(entities)}")
    assert [(e["entity_group"], e["word"]) for e in entities] == [("PER", "Wolfgang"), ("LOC", "Berlin")]


def test_the_images_sizes(stack):
    for image, size in stack.sizes.items():
        podman.log(f"{image}: {size / 1e6:,.0f} MB")
    # The serving and load images carry no PyTorch: each is far below the export image (which has it).
    export = stack.sizes[podman.TARGETS["export"]]
    for target in ("cpu", "locust"):
        assert stack.sizes[podman.TARGETS[target]] < export / 1.5, stack.sizes


def test_the_serving_image_has_no_pytorch(stack):
    done = podman.run(["podman", "run", "--rm", "--entrypoint", "python3", podman.TARGETS["cpu"], "-c",
                       "import importlib.util as u; print([m for m in ('torch', 'onnx') "
                       "if u.find_spec(m)])"], timeout=120, env=stack.env)
    assert done.stdout.strip() == "[]"


def test_locust_from_its_container_against_triton_8001_without_failures(stack):
    # Headless Locust in the locust image, on the compose network: "triton" is the server's alias there.
    done = stack.compose("--profile", "cpu", "--profile", "locust", "run", "--rm", "-T", "--no-deps", "locust",
                         "--headless", "--users", "8", "--spawn-rate", "8", "--run-time", "20s",
                         "--grpc-url", "triton:8001", "--http-url", "triton:8000", "--only-summary",
                         "GrpcNerUser", timeout=300, check=False)
    summary = done.stdout + done.stderr
    podman.log("locust: " + " | ".join(line.strip() for line in summary.splitlines() if "Aggregated" in line))
    assert done.returncode == 0, summary[-3000:]
    aggregated = [line for line in summary.splitlines() if line.strip().startswith("Aggregated")]
    assert aggregated, summary[-3000:]
    requests, failures = (int(x) for x in re.findall(r"\d+", aggregated[0].split("Aggregated", 1)[1])[:2])
    assert requests > 20 and failures == 0, aggregated[0]


def _locust_api(port: int, path: str, form: dict[str, str] | None = None) -> dict:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", data=data, timeout=10) as response:
        return json.loads(response.read())


def test_locust_master_and_workers_as_the_compose_file_runs_them(stack):
    # The locust profile as users run it: the master's web UI on the host, workers on the compose network; a
    # swarm started through the UI's API must reach the server through every worker without a failure.
    port = free_ports().http
    env = {**stack.env, "LOCUST_PORT": str(port)}
    stack.compose("--profile", "cpu", "--profile", "locust", "up", "--detach", "--no-build", "--no-deps",
                  "--scale", "locust-worker=2", "locust", "locust-worker", timeout=300, env=env)

    def workers() -> int:
        try:
            return len(_locust_api(port, "/stats/requests")["workers"])
        except (OSError, ValueError, KeyError):
            return 0

    assert wait_for(lambda: workers() == 2, timeout=120), f"{workers()} of 2 workers joined the master"
    _locust_api(port, "/swarm", {"user_count": "4", "spawn_rate": "4"})
    time.sleep(15)
    stats = _locust_api(port, "/stats/requests")
    _locust_api(port, "/stop", {})
    total = next(row for row in stats["stats"] if row["name"] == "Aggregated")
    podman.log(f"locust master + 2 workers: {total['num_requests']} requests, {total['num_failures']} failed, "
               f"{stats['total_rps']:.0f} requests/s, {len(stats['workers'])} workers")
    assert total["num_requests"] > 20 and total["num_failures"] == 0, stats.get("errors")
    assert all(w["state"] != "missing" for w in stats["workers"]), stats["workers"]


def test_promtool_accepts_the_prometheus_configuration():
    podman.install_tools()
    done = podman.run(["promtool", "check", "config", str(PROMETHEUS_CONFIG)], timeout=60)
    assert "SUCCESS" in done.stdout + done.stderr


def _gpu_metrics_of_triton() -> set[str]:
    """The GPU metrics Triton 2.51 defines (core's metrics.cc): a server without a GPU does not export them."""
    sources = os.environ.get("TRITON_BACKEND_SOURCES")
    if sources:
        with tarfile.open(Path(sources) / "core.tar.gz") as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith("src/metrics.cc"))
            source = archive.extractfile(member).read().decode()
    else:
        with urllib.request.urlopen(CORE_METRICS_URL, timeout=60) as response:
            source = response.read().decode()
    return set(re.findall(r'"(nv_gpu_[a-z0-9_]+)"', source))


def test_every_metric_of_the_dashboard_is_on_the_running_servers_metrics(stack):
    # Let one request reach every step, so that the per-model series exist.
    _client(stack, "grpc", SEED_SENTENCE)
    with urllib.request.urlopen(stack.url(stack.ports.metrics, "/metrics"), timeout=10) as response:
        served = podman.metric_names(response.read().decode())
    wanted = set(re.findall(r"\bnv_[a-z0-9_]+", json.dumps(json.loads(DASHBOARD.read_text()))))
    gpu = _gpu_metrics_of_triton()
    assert gpu, "no GPU metric found in Triton core's src/metrics.cc"
    podman.log(f"dashboard metrics: {sorted(wanted)}")
    assert wanted & served, "the server exports none of the dashboard's metrics"
    absent = sorted(wanted - served - gpu)
    assert not absent, f"named by the dashboard but neither on /metrics nor a GPU metric of Triton: {absent}"
    # The latency panels read the summaries the server has switched on (--metrics-config=summary_latencies).
    assert "nv_inference_request_summary_us" in served


def test_the_restricted_apis_need_the_key_and_inference_does_not(stack):
    index = stack.url(stack.ports.http, "/v2/repository/index")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(index, data=b"{}", method="POST"), timeout=10)
    refused.value.close()
    assert refused.value.code == 403
    keyed = urllib.request.Request(index, data=b"{}", method="POST", headers={"admin-key": ADMIN_KEY})
    with urllib.request.urlopen(keyed, timeout=10) as response:
        assert {"name": "ner", "version": "1", "state": "READY"}.items() <= next(
            m for m in json.loads(response.read()) if m["name"] == "ner").items()
    assert _client(stack, "http", SEED_SENTENCE)[0]


def _cpu_has_bf16_instructions() -> bool:
    """Whether this machine's CPU has BF16 instructions, the rule `auto` is documented with (docs/deployment.md:
    AVX-512 BF16 or AMX, whose tiles compute in BF16). The flags come from ``lscpu``, not from the product's
    reader of ``/proc/cpuinfo``; the container runs on this CPU."""
    done = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, env={**os.environ, "LC_ALL": "C"})
    flags = next(line.split(":", 1)[1].split() for line in done.stdout.splitlines() if line.startswith("Flags:"))
    return "avx512_bf16" in flags or "amx_bf16" in flags


def test_the_cpu_image_serves_openvino_bf16_with_auto(stack):
    """TRITON_CONFIG=auto (the cpu profile's TRITON_CPU_CONFIG) on the export of EXPORT_ARGS="--format openvino
    --precision bf16": the serving image (OpenVINO, no PyTorch) serves configs/openvino_bf16.pbtxt on a CPU with BF16
    instructions, else config.pbtxt."""
    ports = free_ports()
    container = f"{stack.project}_triton-cpu-auto"
    podman.run(["podman", "run", "--detach", "--name", container, "--label",
                f"io.podman.compose.project={stack.project}", "--env", f"NER_ADMIN_KEY={ADMIN_KEY}",
                "--env", "TRITON_CONFIG=auto", "--shm-size", "1g", "--volume", f"{stack.project}_models:/models:ro",
                "--publish", f"127.0.0.1:{ports.http}:8000", "--publish", f"127.0.0.1:{ports.grpc}:8001",
                podman.TARGETS["cpu"]], timeout=120, env=stack.env, quiet=True)
    try:
        if not wait_ready(f"127.0.0.1:{ports.http}", timeout=300):
            logs = podman.run(["podman", "logs", container], timeout=60, env=stack.env, check=False, quiet=True)
            raise AssertionError(f"not ready after 300 s:\n{(logs.stdout + logs.stderr)[-3000:]}")
        request = urllib.request.Request(stack.url(ports.http, "/v2/models/ner_model/config"),
                                         headers={"admin-key": ADMIN_KEY})
        with urllib.request.urlopen(request, timeout=10) as response:
            parameters = json.loads(response.read())["parameters"]
        served = parameters["model_file"]["string_value"], parameters["precision"]["string_value"]
        podman.log(f"auto in the CPU image: {served}")
        assert served == (("model_bf16.xml", "bf16") if _cpu_has_bf16_instructions() else ("model.onnx", "fp32"))
        [entities] = _client(Stack(stack.project, stack.env, ports, stack.sizes), "grpc", SEED_SENTENCE)
        assert [(e["entity_group"], e["word"]) for e in entities] == [("PER", "Wolfgang"), ("LOC", "Berlin")]
    finally:
        podman.run(["podman", "rm", "--force", container], timeout=120, env=stack.env, check=False, quiet=True)


def _server_on(stack: Stack, volume: str) -> tuple[int, list[str]]:
    """Run the CPU server image on ``volume`` (at /models); its exit code and the lines it wrote."""
    done = podman.run(["podman", "run", "--rm", "--env", f"NER_ADMIN_KEY={ADMIN_KEY}", "--volume",
                       f"{volume}:/models:ro", podman.TARGETS["cpu"]], timeout=120, env=stack.env, check=False)
    return done.returncode, (done.stdout + done.stderr).splitlines()


def _volume(stack: Stack, name: str) -> str:
    """A named volume of the test's project (removed by the teardown with the rest)."""
    full = f"{stack.project}_{name}"
    podman.run(["podman", "volume", "create", "--label", f"io.podman.compose.project={stack.project}", full],
               timeout=60, env=stack.env, quiet=True)
    return full


def test_the_server_on_an_empty_repository_exits_non_zero_in_one_line(stack):
    code, lines = _server_on(stack, _volume(stack, "empty"))
    assert code != 0 and len(lines) == 1, lines
    assert "manifest.json is missing" in lines[0], lines


def test_the_server_on_a_broken_repository_names_the_missing_file(stack):
    broken = _volume(stack, "broken")
    # A copy of the export with the model file gone (the export image has a shell).
    podman.run(["podman", "run", "--rm", "--entrypoint", "sh", "--volume", f"{stack.project}_models:/export:ro",
                "--volume", f"{broken}:/models", podman.TARGETS["export"], "-c",
                "cp -R /export/. /models/ && rm /models/ner_model/1/model.onnx"], timeout=120, env=stack.env)
    code, lines = _server_on(stack, broken)
    assert code != 0 and len(lines) == 1, lines
    assert "ner_model/1/model.onnx" in lines[0] and "missing" in lines[0], lines


def test_a_failed_export_stops_the_stack_with_its_exit_code(stack):
    # A model the export cannot get (the Hub is unreachable here, and no fallback): the job fails in one line with
    # its exit code, and the stack brought up behind it stops with that code. (Docker Compose does not even start
    # the server then: service_completed_successfully. podman-compose waits only for the job to stop, so here the
    # server starts, refuses the empty volume in one line and exits too; its exit code races the job's in
    # podman-compose's `--exit-code-from`, hence the containers' own exit codes are read.)
    project = f"{stack.project}-failed"
    env = {**stack.env, "MODEL": "no-such-owner/no-such-model", "FALLBACK_TO_FIXTURE": "0"}
    ports = free_ports()
    env.update(TRITON_HTTP_PORT=str(ports.http), TRITON_GRPC_PORT=str(ports.grpc),
               TRITON_METRICS_PORT=str(ports.metrics))
    try:
        exported = podman.compose(project, "--profile", "cpu", "run", "--rm", "-T", "export", env=env, timeout=600,
                                  check=False)
        said = exported.stdout + exported.stderr
        errors = [line for line in said.splitlines() if "error" in line]
        assert exported.returncode == 1, said[-2000:]
        assert len(errors) == 1 and "export: error:" in errors[0], said[-2000:]
        assert "no-such-owner/no-such-model" in errors[0], errors
        whole = podman.compose(project, "--profile", "cpu", "up", "--no-build", "--abort-on-container-failure",
                               "export", "triton-cpu", env=env, timeout=600, check=False)
        assert whole.returncode == exported.returncode, (whole.stdout + whole.stderr)[-3000:]
        # podman-compose may return before it has stopped every container (seen once in CI on a busy machine):
        # wait for the job's own exit code, then for the stack to be down.
        waited = podman.run(["podman", "wait", f"{project}_export_1"], timeout=120, env=env, check=False)
        assert waited.stdout.strip() == str(exported.returncode), waited.stdout + waited.stderr

        def states() -> dict[str, tuple[str, int]]:
            listed = podman.run(["podman", "ps", "--all", "--filter", f"label=io.podman.compose.project={project}",
                                 "--format", "json"], timeout=60, env=env, quiet=True)
            return {c["Labels"]["io.podman.compose.service"]: (c["State"], c["ExitCode"])
                    for c in json.loads(listed.stdout)}

        assert wait_for(lambda: all(state != "running" for state, _ in states().values()), timeout=60), \
            states()
        assert states()["export"] == ("exited", exported.returncode), states()
        refusals = [line for line in whole.stdout.splitlines() if "[triton-cpu]" in line and "error:" in line]
        assert all("manifest.json is missing" in line for line in refusals), refusals
    finally:
        left = podman.tear_down(project, env)
        assert not left, f"left behind: {left}"


# Run in the server container (whose image has the project): SIGKILL one Python-backend stub of the model step,
# as the OOM killer or a crash would end it, and print its process id. PID 1 is tini, whose child is ner-serve,
# whose child is tritonserver.
KILL_A_STUB = """
import os, signal
from pathlib import Path
from triton_ner.server.processes import child_processes, stub_processes
assert Path('/proc/1/comm').read_text().strip() == 'tini', Path('/proc/1/comm').read_text()
try:
    import triton_ner_loadtest
except ImportError:
    pass
else:
    raise AssertionError('the serving image carries triton_ner_loadtest')
[ner_serve] = [pid for pid, _, args in child_processes(1) if 'ner-serve' in ' '.join(args)]
[server] = [pid for pid, _, args in child_processes(ner_serve) if args[0].endswith('tritonserver')]
stub = min(pid for pid, model in stub_processes(server).items() if model == 'ner_model')
os.kill(stub, signal.SIGKILL)
print(stub)
"""


def _server_container(stack: Stack) -> str:
    return f"{stack.project}_triton-cpu_1"


def _served_reload(stack: Stack) -> str | None:
    """The reload count in the model step's served config (ner-serve's supervisor raises it when it swaps in a
    new copy); None while the server does not answer."""
    request = urllib.request.Request(stack.url(stack.ports.http, "/v2/models/ner_model/config"),
                                     headers={"admin-key": ADMIN_KEY})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            parameters = json.loads(response.read()).get("parameters", {})
    except OSError:
        return None
    return parameters.get(RELOAD_PARAMETER, {}).get("string_value")


def test_a_stub_killed_in_the_container_is_restored(stack):
    # The image's entrypoint is ner-serve, which supervises the image's tritonserver (Triton 2.51 does not
    # restart a dead stub): the model is loaded again beside the serving copy and swapped in.
    assert _served_reload(stack) is None
    killed_pid = podman.run(["podman", "exec", _server_container(stack), "python3", "-c", KILL_A_STUB],
                            timeout=60, env=stack.env).stdout.strip()
    killed = time.monotonic()
    assert wait_for(lambda: _served_reload(stack) == "1", timeout=120, every=0.2)
    podman.log(f"stub {killed_pid} of ner_model killed in the container: new copy serving "
               f"{time.monotonic() - killed:.1f} s later")
    answers = _client(stack, "grpc", *[SEED_SENTENCE] * 8)
    assert [[(e["entity_group"], e["word"]) for e in a] for a in answers] == [[("PER", "Wolfgang"),
                                                                             ("LOC", "Berlin")]] * 8
    logs = stack.compose("--profile", "cpu", "logs", "triton-cpu")
    assert f"server: the stub of ner_model (pid {killed_pid}) died; reloading ner_model" in logs.stdout + logs.stderr


def test_compose_stop_drains_the_server_which_exits_0(stack):
    # After the kill above: Triton 2.51 alone would wait out its exit timeout (30 s) for the replaced copy and
    # exit 1; ner-serve unloads every model, which lets what is in flight finish, and stops it.
    container = _server_container(stack)
    stopping = time.monotonic()
    stack.compose("--profile", "cpu", "stop", "triton-cpu", timeout=120)
    took = time.monotonic() - stopping
    [state] = json.loads(podman.run(["podman", "inspect", container], timeout=60, env=stack.env, quiet=True).stdout)
    podman.log(f"docker compose stop: the server container exited with {state['State']['ExitCode']} after "
               f"{took:.1f} s")
    assert state["State"]["ExitCode"] == 0
    assert took < 30
    logs = podman.run(["podman", "logs", container], timeout=60, env=stack.env, quiet=True)
    said = logs.stdout + logs.stderr
    assert "serve: SIGTERM, stopping the server" in said
    assert "server: every model unloaded; stopping tritonserver at once" in said
