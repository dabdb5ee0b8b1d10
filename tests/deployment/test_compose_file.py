"""The container deployment checked where no container runs (the GPU service above all): docker-compose.yml against
the Compose specification's schema and as a real Compose implementation renders it, the Dockerfiles linted, the
container scripts checked, the Grafana files wired to each other and every panel's PromQL parsed. `make compose-test`
(tests/containers) runs the CPU side for real, and checks the dashboard's metric names against a running server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.containers import podman
from triton_ner.server.launcher import EXIT_TIMEOUT

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# schema/compose-spec.json of github.com/compose-spec/compose-spec at 170098ba07d9 (2026-06-23), Apache-2.0.
SCHEMA = PROJECT_ROOT / "tests" / "data" / "compose-spec.json"
DOCKERFILES = [PROJECT_ROOT / "docker" / "Dockerfile", PROJECT_ROOT / "docker" / "Dockerfile.gpu"]
SCRIPTS = [*sorted((PROJECT_ROOT / "docker").glob("*.sh")), PROJECT_ROOT / ".ci" / "run"]
GRAFANA = PROJECT_ROOT / "docker" / "monitoring" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "triton-ner.json"
# Grafana's own variables in the panels' queries, replaced by what Grafana would put there before PromQL is parsed.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$model": ".*"}
BIN = Path(sys.executable).parent


def _schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]


def _config(*profiles: str, **variables: str) -> subprocess.CompletedProcess:
    """``podman-compose config`` of docker-compose.yml with ``profiles`` and environment ``variables``."""
    podman.install_tools()  # podman-compose asks the podman binary for its version first
    env = {k: v for k, v in os.environ.items() if k != "NER_ADMIN_KEY"} | variables
    arguments = [argument for profile in profiles for argument in ("--profile", profile)]
    return subprocess.run([str(BIN / "podman-compose"), "--file", str(podman.COMPOSE_FILE), *arguments, "config"],
                          capture_output=True, text=True, timeout=120, check=False, env=env, cwd=PROJECT_ROOT)


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    """docker-compose.yml with every profile, as podman-compose resolves it (variables interpolated)."""
    done = _config("cpu", "locust", "monitoring", NER_ADMIN_KEY="key")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_the_compose_file_follows_the_compose_specification():
    assert _schema_errors(yaml.safe_load(podman.COMPOSE_FILE.read_text())) == []


def test_the_schema_check_can_fail():
    document = yaml.safe_load(podman.COMPOSE_FILE.read_text())
    document["services"]["triton"]["deploy"]["resources"]["reservations"]["devices"][0]["count"] = [1]
    document["services"]["export"]["restart_policy"] = "never"
    assert len(_schema_errors(document)) == 2


def test_the_rendered_file_follows_the_compose_specification_too(rendered):
    assert _schema_errors(rendered) == []


def test_the_servers_start_only_after_a_successful_export(rendered):
    services = rendered["services"]
    for name in ("triton", "triton-cpu"):
        assert services[name]["depends_on"]["export"]["condition"] == "service_completed_successfully"
        assert {"models:/models:ro"} <= set(services[name]["volumes"]), services[name]["volumes"]
        assert {p.split(":")[-1] for p in services[name]["ports"]} == {"8000", "8001", "8002"}
    assert "models:/models" in services["export"]["volumes"]


def test_the_servers_get_their_exit_timeout_and_a_margin_before_a_stop_kills_them(rendered):
    # docker compose stop: SIGTERM, then SIGKILL after stop_grace_period (default 10 s); ner-serve, the images'
    # entrypoint, gives what is in flight its exit timeout (no --exit-timeout-secs in the file: its default).
    for name in ("triton", "triton-cpu"):
        service = rendered["services"][name]
        assert "command" not in service and "entrypoint" not in service, name
        grace = service["stop_grace_period"]
        assert grace.endswith("s") and int(grace[:-1]) >= EXIT_TIMEOUT + 5, (name, grace)


def test_the_gpu_service_reserves_nvidia_gpus_and_the_cpu_one_answers_as_triton(rendered):
    services = rendered["services"]
    [device] = services["triton"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and int(device["count"]) == 1
    assert services["triton"]["environment"]["TRITON_CONFIG"] == "gpu"
    assert "deploy" not in services["triton-cpu"]
    assert services["triton-cpu"]["networks"]["default"]["aliases"] == ["triton"]
    for name in ("locust", "locust-worker"):
        assert "triton:8001" in services[name]["command"]


def test_gpu_count_and_ports_are_set_from_the_environment():
    done = _config(NER_ADMIN_KEY="key", GPU_COUNT="4", TRITON_GRPC_PORT="9001")
    assert done.returncode == 0, done.stderr
    triton = yaml.safe_load(done.stdout)["services"]["triton"]
    assert int(triton["deploy"]["resources"]["reservations"]["devices"][0]["count"]) == 4
    assert "9001:8001" in triton["ports"]


def test_each_profile_renders_its_services():
    expected = {(): {"export", "triton"}, ("cpu",): {"export", "triton", "triton-cpu"},
                ("locust",): {"export", "triton", "locust", "locust-worker"},
                ("monitoring",): {"export", "triton", "prometheus", "grafana"}}
    for profiles, services in expected.items():
        done = _config(*profiles, NER_ADMIN_KEY="key")
        assert done.returncode == 0, done.stderr
        assert set(yaml.safe_load(done.stdout)["services"]) == services, profiles


def test_without_the_admin_key_the_file_is_refused_naming_it():
    done = _config("cpu")
    assert done.returncode != 0
    assert "NER_ADMIN_KEY" in done.stderr.splitlines()[-1]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile):
    done = subprocess.run([str(BIN / "hadolint"), str(dockerfile)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_can_fail(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n")
    done = subprocess.run([str(BIN / "hadolint"), str(bad)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode != 0 and "DL3006" in done.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_shellcheck_finds_nothing_in_the_container_scripts(script):
    done = subprocess.run([str(BIN / "shellcheck"), str(script)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_images_run_as_a_non_root_user(dockerfile):
    users = [line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("USER ")]
    assert users and all(user.split(":")[0] not in ("root", "0") for user in users), users


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """A service's bind mounts as written in docker-compose.yml: container path -> folder of the project."""
    mounts = (volume.split(":") for volume in service["volumes"])
    return {target: (PROJECT_ROOT / source).resolve() for source, target, *_ in mounts if source.startswith("./")}


def _references(node: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in a JSON document."""
    if isinstance(node, dict):
        return [*([node[key]] if key in node else []), *(r for value in node.values() for r in _references(value, key))]
    if isinstance(node, list):
        return [r for value in node for r in _references(value, key)]
    return []


def test_grafana_finds_its_datasource_and_dashboard_where_compose_mounts_them():
    grafana = yaml.safe_load(podman.COMPOSE_FILE.read_text())["services"]["grafana"]
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    [provider] = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "triton-ner.yml").read_text())["providers"]
    assert mounts[provider["options"]["path"]] == DASHBOARD.parent
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert mounts[str(home.parent)] / home.name == DASHBOARD
    [source] = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == f"http://prometheus:{_prometheus_port()}"
    dashboard = json.loads(DASHBOARD.read_text())
    used = _references(dashboard, "datasource")
    assert used and all(ds == {"type": source["type"], "uid": source["uid"]} for ds in used), used


def _prometheus_port() -> str:
    """The port Prometheus listens on inside the compose network (the container side of its published port)."""
    [port] = yaml.safe_load(podman.COMPOSE_FILE.read_text())["services"]["prometheus"]["ports"]
    return port.rsplit(":", 1)[-1]


def _promql_errors(dashboard: dict[str, Any], folder: Path) -> str:
    """What ``promtool check rules`` says of every panel query of ``dashboard``, each as a recording rule."""
    queries = _references(dashboard, "expr")
    rules = []
    for number, query in enumerate(queries):
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, f"a Grafana variable this test does not know: {query}"
        rules.append({"record": f"panel_query_{number}", "expr": query})
    path = folder / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    podman.install_tools()  # promtool: Debian's prometheus package
    done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=120,
                          check=False)
    if done.returncode == 0 and f"SUCCESS: {len(rules)} rules found" in done.stdout:
        return ""
    return done.stdout + done.stderr


def test_every_panel_has_queries_and_a_unique_id():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        references = [target["refId"] for target in panel["targets"]]
        assert references and len(set(references)) == len(references), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]


def test_every_panel_query_is_valid_promql(tmp_path):
    assert _promql_errors(json.loads(DASHBOARD.read_text()), tmp_path) == ""


def test_the_promql_check_can_fail(tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    dashboard["panels"][0]["targets"][0]["expr"] = "sum(rate(nv_inference_request_success[$__rate_interval])"
    assert "unclosed left parenthesis" in _promql_errors(dashboard, tmp_path)


def _package_folders() -> set[str]:
    """The source folders of the wheel's packages, as setuptools finds them: under the nearest package-dir mapping
    of pyproject.toml, else as the name says."""
    import tomllib

    setup = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped: dict[str, str] = setup["package-dir"]

    def folder(name: str) -> str:
        parts = name.split(".")
        prefix = next((k for k in range(len(parts), 0, -1) if ".".join(parts[:k]) in mapped), 0)
        return "/".join([mapped[".".join(parts[:prefix])], *parts[prefix:]] if prefix else parts)

    return {folder(name) for name in setup["packages"]}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_images_build_from_every_package_folder(dockerfile):
    text = dockerfile.read_text()
    copied = {line.split()[1] for line in text.splitlines() if line.startswith("COPY ") and "--from" not in line}
    folders = _package_folders()
    top = {f.split("/")[0] for f in folders}
    assert top <= copied, f"{dockerfile.name} does not copy {sorted(top - copied)}"
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    assert all(f"!{folder}/" in ignored for folder in top), "a package folder is left out of the build context"
    skeleton = next((line for line in text.splitlines() if "mkdir -p" in line), None)
    if skeleton:  # the dependency layer's empty package skeleton must name every package folder
        made = skeleton.split("mkdir -p", 1)[1].split()
        missing = [f for f in folders if not any(m == f or m.startswith(f + "/") for m in made)]
        assert not missing, f"the skeleton ({skeleton.strip()}) lacks {missing}"
