"""The server's stub processes and their CPU time, from /proc, and a kill that cannot hit a reused process number."""

from __future__ import annotations

import os
import signal
from pathlib import Path

# The Python backend's shared-memory regions are /dev/shm/<prefix><uuid>; this is its default prefix, to which the
# launcher adds a token of each server so that what a killed server leaves can be found and removed.
SHM_PREFIX = "triton_python_backend_shm_region_"
SHM_DIR = Path("/dev/shm")


def child_processes(pid: int) -> list[tuple[int, str, list[str]]]:
    """The child processes of ``pid`` from /proc: (pid, state, command line); a zombie has state "Z" and no
    command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]  # the name may hold ")"
            if int(parent) == pid:
                found.append((int(entry.name), state, (entry / "cmdline").read_bytes().decode().split("\0")))
        except (OSError, ValueError):
            pass  # gone meanwhile
    return found


def stubs_among(children: list[tuple[int, str, list[str]]]) -> dict[int, str]:
    """The live Python-backend stubs among ``children`` (what :func:`child_processes` listed): process id -> model
    name. A stub's first argument is ``<repository>/<model>/1/model.py``."""
    return {pid: Path(args[1]).parts[-3] for pid, state, args in children
            if state != "Z" and len(args) > 1 and args[1].endswith("/1/model.py")}


def stub_processes(server_pid: int) -> dict[int, str]:
    """The live Python-backend stubs of the server ``server_pid``: process id -> model name."""
    return stubs_among(child_processes(server_pid))


def cpu_seconds(pid: int) -> float | None:
    """CPU time so far (user and system, seconds) of ``pid``, from /proc; None when it is gone."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def tree_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time so far (user and system, seconds) of the served tree of ``pid``, by part: ``tritonserver``, and
    each model's Python-backend stubs together under the model's name."""
    seconds: dict[str, float] = {}
    for process, part in {pid: "tritonserver", **stub_processes(pid)}.items():
        if (spent := cpu_seconds(process)) is not None:
            seconds[part] = seconds.get(part, 0.0) + spent
    return seconds


def kill_stub(server_pid: int, pid: int) -> bool:
    """SIGKILL ``pid`` if it is still a live stub of the server ``server_pid``; False if it is not (it left).

    The process is pinned by a pidfd before the check, so a number reused after the stub left is not signalled.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if pid not in stub_processes(server_pid):
            return False
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(pidfd)
