"""The launcher's refusals, without starting a server."""

import pytest

from triton_ner import server
from triton_ner.server import ServerError, TritonServer, free_ports


def test_missing_binary_is_one_clear_error(repository, tmp_path, monkeypatch):
    monkeypatch.setattr(server, "_pytriton_dirs", lambda: (tmp_path / "tritonserver", tmp_path / "libs"))
    with pytest.raises(ServerError, match="no tritonserver binary in"):
        TritonServer(repository, free_ports()).start()


def test_repository_without_export_is_refused(tmp_path):
    with pytest.raises(ServerError, match="has no exported model"):
        TritonServer(tmp_path, free_ports()).start()


def test_environment_puts_this_interpreter_first():
    import sys
    import sysconfig
    from pathlib import Path

    env = server.server_environment()
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["LD_LIBRARY_PATH"].split(":")[0] == sysconfig.get_config_var("LIBDIR")
