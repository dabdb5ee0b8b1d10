"""The command lines against a real server: serve (start, SIGTERM, busy port) and the client."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from triton_ner.health import wait_ready
from triton_ner.server.arguments import free_ports


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(proc.name))
            except OSError:
                pass
    return [p for p in found if p != os.getpid()]


def _wait_ready(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    if not wait_ready(f"localhost:{port}", timeout, alive=lambda: process.poll() is None):
        assert process.poll() is None, process.communicate()[1]
        pytest.fail("server not ready")


def test_serve_runs_until_sigterm_and_leaves_no_stub(repository, tmp_path):
    # A copy of its own, so the processes found below belong to this server only.
    own = tmp_path / "repo"
    subprocess.run(["cp", "-r", str(repository), str(own)], check=True)
    ports = free_ports()
    serve = subprocess.Popen([sys.executable, "-m", "triton_ner.serve", "--model-repository", str(own), "--quiet",
                              "--http-port", str(ports.http), "--grpc-port", str(ports.grpc),
                              "--metrics-port", str(ports.metrics)], stderr=subprocess.PIPE, text=True)
    _wait_ready(ports.http, serve)
    assert len(_processes_mentioning(str(own))) >= 4  # tritonserver and one stub per Python model
    serve.send_signal(signal.SIGTERM)
    _, stderr = serve.communicate(timeout=60)
    assert serve.returncode == 0, stderr
    assert "serve: SIGTERM, stopping the server" in stderr
    assert _processes_mentioning(str(own)) == []


def test_serve_on_a_busy_port_is_one_line(triton, repository):
    ports = free_ports()
    result = subprocess.run([sys.executable, "-m", "triton_ner.serve", "--model-repository", str(repository),
                             "--http-port", str(triton.ports.http), "--grpc-port", str(ports.grpc),
                             "--metrics-port", str(ports.metrics)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"serve: error: the http port {triton.ports.http} is already in use: choose "
                                     "another one")


@pytest.mark.slow
def test_serve_refuses_steps_with_numpy2_in_one_line_before_anything_loads(repository, tmp_path, bare_gpu_python):
    """This Triton's Python backend (2.51, pybind11 2.10) crashes on numpy 2 at the first request: ner-serve names
    the cause and the fix instead, and starts no server and no stub."""
    own = tmp_path / "repo"
    subprocess.run(["cp", "-r", str(repository), str(own)], check=True)
    ports = free_ports()
    result = subprocess.run([sys.executable, "-m", "triton_ner.serve", "--model-repository", str(own),
                             "--steps-python", str(bare_gpu_python), "--http-port", str(ports.http),
                             "--grpc-port", str(ports.grpc), "--metrics-port", str(ports.metrics)],
                            capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("serve: error: the Python-backend steps would run numpy 2."), lines[0]
    assert str(bare_gpu_python) in lines[0] and "pip install 'numpy<2'" in lines[0]
    assert _processes_mentioning(str(own)) == []


def test_client_command_prints_json_lines(triton):
    result = subprocess.run([sys.executable, "-m", "triton_ner.client", "--url", triton.grpc_url,
                             "My name is Wolfgang and I live in Berlin", "Siemens is in Munich"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert [e["entity_group"] for e in first] == ["PER", "LOC"]
    assert [e["word"] for e in second] == ["Siemens", "Munich"]


def test_client_command_against_no_server_is_one_line():
    port = free_ports().grpc
    result = subprocess.run([sys.executable, "-m", "triton_ner.client", "--url", f"localhost:{port}", "Berlin"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("client: error:") and result.stderr.count("\n") == 1
