"""Security of the served ensemble: Triton's admin APIs behind a key, gRPC over TLS and mutual TLS from the
launcher to the client, and the Python steps' code never evaluating, unpickling or writing what requests send."""

import ast
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from triton_ner.client import NerClient, ServerUnreachable
from triton_ner.core import names
from triton_ner.export.configs import repository_configs
from triton_ner.health import wait_ready
from triton_ner.server.arguments import RESTRICTED_APIS, GrpcTls, admin_headers, free_ports
from triton_ner.server.launcher import TritonServer

ROOT = Path(__file__).resolve().parents[2]
KEY = "s3cret-admin"
SEED = "My name is Wolfgang and I live in Berlin"

# One HTTP call per restricted API: (method, path).
HTTP_CALLS = {
    "model-repository": ("POST", "/v2/repository/index"),
    "model-config": ("GET", f"/v2/models/{names.ENSEMBLE}/config"),
    "shared-memory": ("GET", "/v2/systemsharedmemory/status"),
    "logging": ("GET", "/v2/logging"),
    "trace": ("GET", "/v2/trace/setting"),
}
# The same over gRPC: a method of tritonclient's gRPC client and its arguments.
GRPC_CALLS = {
    "model-repository": ("get_model_repository_index", ()),
    "model-config": ("get_model_config", (names.ENSEMBLE,)),
    "shared-memory": ("get_system_shared_memory_status", ()),
    "logging": ("get_log_settings", ()),
    "trace": ("get_trace_settings", ()),
}


def _mutual(certificates: Path) -> dict:
    return {"root_certificates": certificates / "ca.crt", "certificate_chain": certificates / "client.crt",
            "private_key": certificates / "client.key"}


@pytest.fixture(scope="module")
def admin_server(repository, certificates):
    """The launcher with an admin key and gRPC over mutual TLS, as a deployment would run it."""
    c = certificates
    tls = GrpcTls(c / "server.crt", c / "server.key", c / "ca.crt", mutual=True)
    with TritonServer(repository, free_ports(), admin_key=KEY, grpc_tls=tls) as server:
        yield server


def http_call(server: TritonServer, api: str, headers: dict | None = None) -> tuple[int, str]:
    method, path = HTTP_CALLS[api]
    request = urllib.request.Request(f"http://{server.http_url}{path}", method=method, headers=headers or {},
                                     data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_every_admin_api_is_tested():
    assert set(HTTP_CALLS) == set(GRPC_CALLS) == set(RESTRICTED_APIS)


@pytest.mark.parametrize("api", RESTRICTED_APIS)
def test_an_admin_api_over_http_needs_the_key(admin_server, api):
    status, body = http_call(admin_server, api)
    assert status == 403 and "This API is restricted, expecting header 'admin-key'" in body, (status, body)
    assert http_call(admin_server, api, {"admin-key": "wrong"})[0] == 403
    status, body = http_call(admin_server, api, admin_headers(KEY))
    assert status == 200, body


@pytest.mark.parametrize("api", RESTRICTED_APIS)
def test_an_admin_api_over_grpc_needs_the_key(admin_server, certificates, api):
    mutual = {name: str(path) for name, path in _mutual(certificates).items()}
    client = grpcclient.InferenceServerClient(admin_server.grpc_url, ssl=True, **mutual)
    method, args = GRPC_CALLS[api]
    try:
        with pytest.raises(InferenceServerException, match="This protocol is restricted, expecting header "
                                                           "'triton-grpc-protocol-admin-key'"):
            getattr(client, method)(*args)
        getattr(client, method)(*args, headers=admin_headers(KEY, "grpc"))
    finally:
        client.close()


def test_inference_needs_no_key(admin_server, certificates):
    with NerClient(admin_server.http_url, "http") as client:
        assert [e["word"] for e in client.predict(SEED)] == ["Wolfgang", "Berlin"]
    with NerClient(admin_server.grpc_url, **_mutual(certificates)) as client:
        assert [e["word"] for e in client.predict(SEED)] == ["Wolfgang", "Berlin"]
        client.check()  # health and metadata stay open too


def test_mutual_tls_refuses_a_client_without_a_certificate(admin_server, certificates):
    with pytest.raises(ServerUnreachable):
        with NerClient(admin_server.grpc_url, root_certificates=certificates / "ca.crt", retries=0) as client:
            client.predict(SEED)


def test_ner_serve_takes_the_key_from_the_environment_and_serves_grpc_over_tls(repository, certificates, tmp_path):
    c = certificates
    ports = free_ports()
    serve = subprocess.Popen(
        [sys.executable, "-m", "triton_ner.serve", "--model-repository", str(repository), "--quiet",
         "--http-port", str(ports.http), "--grpc-port", str(ports.grpc), "--metrics-port", str(ports.metrics),
         "--grpc-use-ssl", "--grpc-server-cert", str(c / "server.crt"), "--grpc-server-key", str(c / "server.key")],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "NER_ADMIN_KEY": KEY})
    try:
        server = TritonServer(repository, ports)  # only for its URLs
        assert wait_ready(server.http_url, 120, alive=lambda: serve.poll() is None), serve.communicate()[1]
        assert http_call(server, "logging")[0] == 403
        assert http_call(server, "logging", admin_headers(KEY))[0] == 200
        with NerClient(server.grpc_url, root_certificates=c / "ca.crt") as client:  # TLS, no client certificate
            assert [e["word"] for e in client.predict(SEED)] == ["Wolfgang", "Berlin"]
        with pytest.raises(ServerUnreachable), NerClient(server.grpc_url, retries=0) as client:  # plain text
            client.predict(SEED)
    finally:
        serve.terminate()
        _, stderr = serve.communicate(timeout=60)
    assert serve.returncode == 0, stderr


def test_tls_without_its_files_is_one_line(repository, tmp_path):
    result = subprocess.run([sys.executable, "-m", "triton_ner.serve", "--model-repository", str(repository),
                             "--grpc-use-ssl", "--grpc-server-cert", str(tmp_path / "nope.crt"),
                             "--grpc-server-key", str(tmp_path / "nope.key")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert result.stderr == f"serve: error: --grpc-server-cert {tmp_path / 'nope.crt'}: no such file\n"


# The Python steps: what runs inside Triton on request content.

STEP_CODE = sorted([*ROOT.glob("model_repository/*/1/model.py"), ROOT / "triton_ner" / "python_backend.py",
                    *(ROOT / "triton_ner" / "core").glob("*.py")])
EVALUATING = {"eval", "exec", "compile", "__import__", "breakpoint"}
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "marshal", "shelve", "joblib", "subprocess", "ctypes"}
WRITING = {"write_text", "write_bytes", "mkdir", "unlink", "rmdir", "rename", "replace", "touch", "remove",
           "makedirs", "rmtree", "save", "savez", "dump"}


def _problems(path: Path) -> list[str]:
    """Calls in ``path`` that evaluate code, unpickle, run programs or write files."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where}: imports {m}" for m in modules if m.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.Call):
            function = node.func
            name = function.id if isinstance(function, ast.Name) else getattr(function, "attr", "")
            # The built-ins only: torch's module.eval() and the Python backend's request.exec() are methods.
            if (isinstance(function, ast.Name) and name in EVALUATING) or name in WRITING:
                found.append(f"{where}: calls {name}")
            if name in ("load", "loads") and isinstance(function, ast.Attribute) and getattr(
                    function.value, "id", "") in ("pickle", "yaml", "torch"):
                found.append(f"{where}: calls {function.value.id}.{name}")
            if name == "open":
                mode = node.args[1] if len(node.args) > 1 else next(
                    (k.value for k in node.keywords if k.arg == "mode"), None)
                if mode is not None and not (isinstance(mode, ast.Constant) and set(str(mode.value)) <= set("rbt")):
                    found.append(f"{where}: opens a file for writing")
            if any(k.arg == "allow_pickle" for k in node.keywords):
                found.append(f"{where}: allow_pickle")
    return found


def test_the_python_steps_never_evaluate_unpickle_or_write():
    assert len(STEP_CODE) >= 8 and all(path.exists() for path in STEP_CODE)
    assert [problem for path in STEP_CODE for problem in _problems(path)] == []


def test_the_scan_finds_what_it_looks_for(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nfrom subprocess import run\neval(text)\nmodel.eval()\nopen(path, 'w')\n"
                   "Path(p).write_text(t)\nnp.load(f, allow_pickle=True)\nopen(path)\nopen(path, mode='a+')\n")
    assert [problem.split(": ", 1)[1] for problem in _problems(bad)] == [
        "imports pickle", "imports subprocess", "calls eval", "opens a file for writing", "calls write_text",
        "allow_pickle", "opens a file for writing"]


def test_what_one_request_may_allocate_is_bounded_by_configuration():
    """Each bound is a parameter of the generated configs, enforced before any allocation that grows with the
    request (the refusals themselves are tested in test_server.py and the bad-input table)."""
    configs = repository_configs()
    tokenizer = configs[f"{names.TEXT_STEP}/config.pbtxt"]
    assert int(tokenizer.parameters["max_text_bytes"].string_value) <= 2**20
    assert int(tokenizer.parameters["max_tokens_per_request"].string_value) <= 2**17
    assert int(tokenizer.parameters["max_windows"].string_value) <= 1024
    for path, config in configs.items():
        if path.endswith("config.pbtxt") and config.backend == "python":
            assert config.dynamic_batching.default_queue_policy.max_queue_size > 0, path
