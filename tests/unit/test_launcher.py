"""The launcher's refusals, without starting a server."""

from pathlib import Path

import pytest

from triton_ner.core.errors import ServerError
from triton_ner.server import arguments, installation, logs, preflight
from triton_ner.server.arguments import free_ports
from triton_ner.server.launcher import TritonServer


def test_missing_binary_is_one_clear_error(repository, tmp_path, monkeypatch):
    monkeypatch.setattr(installation, "triton_dirs",
                        lambda runtime=None: (tmp_path / "tritonserver", tmp_path / "libs"))
    with pytest.raises(ServerError, match=f"^no tritonserver at {tmp_path / 'tritonserver' / 'bin'}/tritonserver$"):
        TritonServer(repository, free_ports()).start()


def test_a_tritonserver_not_on_path_is_one_clear_error(repository, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ServerError, match="^no tritonserver at tritonserver$"):
        TritonServer(repository, free_ports(), tritonserver="tritonserver").start()


def test_an_installed_tritonserver_runs_with_its_own_backends_and_this_environment(repository, tmp_path):
    binary = tmp_path / "tritonserver"
    binary.write_text("")
    launcher = TritonServer(repository, free_ports(), tritonserver=binary, extra_args=("--log-verbose=1",))
    command = launcher.command(None)
    assert command[0] == str(binary)
    assert not [arg for arg in command if arg.startswith("--backend-directory")]  # Triton's default folder
    assert command[-1] == "--log-verbose=1"


def test_repository_without_export_is_refused(tmp_path):
    with pytest.raises(ServerError, match="has no exported model"):
        TritonServer(tmp_path, free_ports()).start()


def test_environment_puts_this_interpreter_first():
    import sys
    import sysconfig
    from pathlib import Path

    env = installation.server_environment()
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["LD_LIBRARY_PATH"].split(":")[0] == sysconfig.get_config_var("LIBDIR")


def _command(**settings) -> list[str]:
    return TritonServer("repo", free_ports(), **settings).command(Path("backends"))


def test_admin_key_restricts_the_admin_apis_on_both_protocols():
    command = _command(admin_key="s3cret=")
    apis = "model-repository,model-config,shared-memory,logging,trace"
    assert f"--http-restricted-api={apis}:admin-key=s3cret=" in command
    assert f"--grpc-restricted-protocol={apis}:admin-key=s3cret=" in command
    # Without a key, only the repository API is restricted, by a key of the launcher alone: stop() unloads the
    # ensemble through it, and in explicit model control anyone could unload models.
    assert [arg.split("=")[0] + "=" + arg.split("=")[1].split(":")[0] for arg in _command() if "restricted" in arg] == [
        "--http-restricted-api=model-repository", "--grpc-restricted-protocol=model-repository"]
    assert arguments.admin_headers("k", "grpc") == {"triton-grpc-protocol-admin-key": "k"}
    assert arguments.admin_headers("k", "http") == {"admin-key": "k"}


@pytest.mark.parametrize("key", ["two words", "line\nbreak", "ünï"])
def test_an_admin_key_that_no_header_can_carry_is_refused(key):
    with pytest.raises(ServerError, match="^the admin key must be printable ASCII without spaces$"):
        _command(admin_key=key)


def test_grpc_tls_arguments_and_refusals(tmp_path):
    for name in ("server.crt", "server.key", "ca.crt"):
        (tmp_path / name).write_text("")
    tls = arguments.GrpcTls(tmp_path / "server.crt", tmp_path / "server.key", tmp_path / "ca.crt", mutual=True)
    assert tls.args() == ["--grpc-use-ssl=true", f"--grpc-server-cert={tmp_path / 'server.crt'}",
                          f"--grpc-server-key={tmp_path / 'server.key'}", f"--grpc-root-cert={tmp_path / 'ca.crt'}",
                          "--grpc-use-ssl-mutual=true"]
    assert tls.args()[0] in _command(grpc_tls=tls)
    with pytest.raises(ServerError, match=f"^--grpc-server-key {tmp_path / 'nope.key'}: no such file$"):
        arguments.GrpcTls(tmp_path / "server.crt", tmp_path / "nope.key").args()
    with pytest.raises(ServerError, match=r"^mutual TLS needs the CA of the client certificates \(--grpc-root-cert\)$"):
        arguments.GrpcTls(tmp_path / "server.crt", tmp_path / "server.key", mutual=True).args()


def test_a_start_failure_is_the_model_that_failed_to_load_in_one_line():
    lines = [
        'E1128 17:45:50.817395 31329 server.cc:241] "CudaDriverHelper has not been initialized."',
        'I1128 17:45:54.394000 31329 model_lifecycle.cc:1] "loading: ner_model:1"',
        'E1128 17:45:54.394609 31329 backend_model.cc:692] "ERROR: Failed to create instance: InvalidProtobuf"',
        'E1128 17:45:54.394760 31329 model_lifecycle.cc:642] "failed to load \'ner_model\' version 1: Internal: '
        'InvalidProtobuf: Load model from /r/ner_model/1/model.onnx failed:Protobuf parsing failed.\\n\\nAt:\\n  '
        '/x/runtime.py(36): onnx_runner"',
    ]
    assert logs.start_failure(lines) == ("failed to load 'ner_model' version 1: Internal: InvalidProtobuf: Load "
                                           "model from /r/ner_model/1/model.onnx failed:Protobuf parsing failed.")
    assert logs.start_failure(lines[:3]) == "ERROR: Failed to create instance: InvalidProtobuf"
    assert logs.start_failure(lines[:2]) is None


def test_a_damaged_export_is_refused_naming_the_file(tmp_path):
    import json

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "tokenizer.json").write_text("{}")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"artifacts": {"a/tokenizer.json": "0", "a/model.onnx": "0"}}))
    with pytest.raises(ServerError, match=f"^{tmp_path / 'a' / 'model.onnx'} is missing \\(listed in manifest.json\\)"):
        preflight.check_repository(tmp_path)
    (tmp_path / "a" / "model.onnx").write_bytes(b"")
    preflight.check_repository(tmp_path)
    (tmp_path / "a" / "tokenizer.json").write_text('{"truncated": ')
    with pytest.raises(ServerError, match=f"^{tmp_path / 'a' / 'tokenizer.json'} is damaged \\(not JSON: "):
        preflight.check_repository(tmp_path)
    manifest.write_text("{")
    with pytest.raises(ServerError, match=f"^{manifest} is damaged \\(JSONDecodeError: "):
        preflight.check_repository(tmp_path)
