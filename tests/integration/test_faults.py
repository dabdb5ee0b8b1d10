"""Faults of the served ensemble and of its launcher: a killed stub, SIGTERM under load, a damaged export, a killed
launcher. Each test runs a server of its own on a copy of the repository, since it damages or kills it.

The figures (recovery, requests lost and recovered, drain time) are printed: run with ``-s`` to see them.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import TextIO

import psutil
import pytest
import tritonclient.grpc as grpcclient

from tests.parity import assert_same
from tests.polling import seconds_until
from triton_ner.client import ClientError, NerClient
from triton_ner.core import names
from triton_ner.health import is_ready
from triton_ner.server.arguments import free_ports
from triton_ner.server.launcher import TritonServer
from triton_ner.server.processes import SHM_DIR, stub_processes
from triton_ner.server.supervisor import RELOAD_PARAMETER

SEED = "My name is Wolfgang and I live in Berlin"
WANT = ["Wolfgang", "Berlin"]


@pytest.fixture
def own_repository(repository, tmp_path):
    own = tmp_path / "model_repository"
    shutil.copytree(repository, own)
    return own


@pytest.fixture
def own_server(own_repository):
    server = TritonServer(own_repository, free_ports(), exit_timeout=20)
    yield server
    server.stop()


def stubs(server: TritonServer, model: str) -> set[int]:
    """Process ids of the live Python-backend stubs of ``model``: a restarted stub gets a new one."""
    return {pid for pid, name in stub_processes(server.process.pid).items() if name == model}


def model_ready(server: TritonServer, model: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{server.http_url}/v2/models/{model}/ready", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def leftovers(server: TritonServer) -> list[Path]:
    return sorted(SHM_DIR.glob(f"{server.shm_prefix}*"))


class Load:
    """``users`` threads sending ``SEED`` in a loop; a failed request is sent again until it succeeds, so what
    was lost and what was recovered can be counted. Every request has a deadline: nothing may hang."""

    def __init__(self, url: str, users: int = 4, timeout: float = 30):
        self.url, self.timeout = url, timeout
        self.results: list[tuple[float, float, str]] = []  # (sent, answered, "ok" or the error)
        self.recovered = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._user) for _ in range(users)]

    def _user(self) -> None:
        with NerClient(self.url, retries=0, timeout=self.timeout) as client:
            while not self._stop.is_set():
                failed = False
                while True:  # until this text is answered: a lost request is recovered by sending it again
                    sent = time.monotonic()
                    try:
                        entities = client.predict(SEED)
                    except ClientError as error:
                        self.results.append((sent, time.monotonic(), str(error)))
                        failed = True
                        time.sleep(0.05)
                        continue
                    assert [e["word"] for e in entities] == WANT
                    self.results.append((sent, time.monotonic(), "ok"))
                    self.recovered += failed
                    break

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 10)
        assert not any(thread.is_alive() for thread in self._threads), "a request hung"

    def failures(self) -> list[tuple[float, float, str]]:
        return [r for r in self.results if r[2] != "ok"]


def served_reload(server: TritonServer, model: str) -> str | None:
    """The supervisor's reload count in the config ``model`` serves: it changes when the new copy is swapped in."""
    with urllib.request.urlopen(f"http://{server.http_url}/v2/models/{model}/config", timeout=2) as response:
        return json.loads(response.read()).get("parameters", {}).get(RELOAD_PARAMETER, {}).get("string_value")


def test_killed_stubs_are_restored_by_the_launcher_and_nothing_hangs(own_repository, pipelines, parity_texts):
    """Triton 2.51 does not restart a dead stub; the launcher's supervisor reloads its model (new stubs) and, after
    the exit timeout, stops the replaced copy's surviving stub, so kills do not pile up idle stubs. Two kills in a
    row, under 4 users."""
    server = TritonServer(own_repository, free_ports(), exit_timeout=5)  # the replaced copy's stub goes after 5 s
    try:
        server.start()
        first = stubs(server, names.MODEL)
        assert len(first) == 2  # two instances of the model step
        rounds = []
        with Load(server.grpc_url) as load:
            time.sleep(2)
            for count in ("1", "2"):
                before = stubs(server, names.MODEL)
                killed = time.monotonic()
                os.kill(min(before), signal.SIGKILL)
                # Swapped in: the served config carries the new count, and two new stubs serve it.
                restored = killed + seconds_until(lambda count=count, before=before: served_reload(
                    server, names.MODEL) == count and len(stubs(server, names.MODEL) - before) == 2, 60)
                new = stubs(server, names.MODEL) - before
                reaped = restored + seconds_until(lambda new=new: stubs(server, names.MODEL) == new,
                                                server.exit_timeout + 10)
                assert model_ready(server, names.ENSEMBLE)
                rounds.append((killed, restored, reaped))
                time.sleep(1)  # load after the recovery
        lost = load.failures()
        slowest = max(r[1] - r[0] for r in load.results)
        kinds = sorted({r[2][:120] for r in lost})
        for killed, restored, reaped in rounds:
            hit = [r for r in load.results if r[1] >= killed and r[0] < restored]  # in flight at the kill, or sent
            print(f"\nstub of {names.MODEL} killed under load (4 users): new copy (2 new stubs) serving "
                  f"{restored - killed:.2f} s after the kill, the replaced copy's idle stub stopped "
                  f"{reaped - restored:.2f} s after that; {sum(r[2] != 'ok' for r in hit)} of the {len(hit)} "
                  "requests in flight at the kill or sent before the swap failed")
        print(f"{len(load.results)} requests in all, {len(lost)} failed {kinds}, {load.recovered} texts recovered "
              f"by sending again; slowest request {slowest:.2f} s")
        assert len(stubs(server, names.MODEL)) == 2 and not stubs(server, names.MODEL) & first  # no idle stub kept
        for (_, restored, _), until in zip(rounds, [kill for kill, *_ in rounds[1:]] + [float("inf")], strict=True):
            # Every request sent after a swap and answered before the next kill is right; a failed one was in
            # flight at a kill or sent before the swap.
            assert all(r[2] == "ok" for r in load.results if r[0] >= restored and r[1] < until)
        assert all(any(r[1] >= killed and r[0] < restored for killed, restored, *_ in rounds) for r in lost)
        assert (load.recovered > 0) == bool(lost) and load.recovered <= len(lost)  # every lost text answered later
        assert slowest < 10  # a request on the dead stub fails within seconds; none hangs
        pipe = pipelines("simple")
        with NerClient(server.grpc_url, retries=0, timeout=30) as client:
            for text in parity_texts[:10]:
                assert_same(client.predict(text), pipe(text), text[:40])
        # Triton 2.51 alone would wait out the exit timeout for the two copies it never releases, and exit 1.
        pgid = server.process.pid
        stopping = time.monotonic()
        server.stop()
        stopped = time.monotonic() - stopping
        print(f"stopped {stopped:.2f} s after the stop began, with 2 replaced copies (exit timeout "
              f"{server.exit_timeout} s)")
        assert stopped < server.exit_timeout
        seconds_until(lambda: not group_alive(pgid), 5)  # killed stubs are gone once their new parent reaps them
        assert leftovers(server) == []
    finally:
        server.stop()


def _heavy_request(url: str, results: list, index: int) -> None:
    texts = [" ".join([SEED] * 300)] * 16  # 16 texts of 3,000 words, 56,000 tokens: seconds of work
    try:
        with NerClient(url, retries=0, timeout=120) as client:
            entities = client.predict(texts)
        results[index] = ("ok", time.monotonic(), len(entities[0]))
    except ClientError as error:
        results[index] = (str(error), time.monotonic(), 0)


def _model_runs(grpc_url: str) -> int:
    """Executions of the model step so far (Triton's statistics)."""
    client = grpcclient.InferenceServerClient(grpc_url)
    try:
        return client.get_inference_statistics(names.MODEL).model_stats[0].execution_count
    finally:
        client.close()


def _heavy_requests_in_flight(grpc_url: str, count: int) -> tuple[list, list[threading.Thread]]:
    """``count`` heavy requests sent at once, returned when they are in flight: the text step has tokenized some
    of them and called the model step (requests sent together have reached the server by then), and none is
    answered yet. Their results, filled in as they end, and their threads."""
    results: list = [None] * count
    threads = [threading.Thread(target=_heavy_request, args=(grpc_url, results, i)) for i in range(count)]
    for thread in threads:
        thread.start()
    seconds_until(lambda: _model_runs(grpc_url) > 0, 60)
    assert results == [None] * count, f"a request ended before it could be stopped: {results}"
    return results, threads


def test_stopping_under_load_finishes_in_flight_refuses_new_and_leaves_nothing(own_server):
    """What ``stop()`` does, in its steps: drain the ensemble, then SIGTERM."""
    own_server.start()
    pgid = own_server.process.pid
    results, threads = _heavy_requests_in_flight(own_server.grpc_url, 3)
    stopping = time.monotonic()
    drainer = threading.Thread(target=own_server.drain)
    drainer.start()
    time.sleep(0.3)
    with NerClient(own_server.grpc_url, retries=0, timeout=10) as client, pytest.raises(ClientError) as refused:
        client.predict(SEED)
    refusal = time.monotonic() - stopping
    drainer.join()
    drained = time.monotonic() - stopping
    own_server.process.send_signal(signal.SIGTERM)
    own_server.process.wait(own_server.exit_timeout + 10)
    exited = time.monotonic() - stopping
    for thread in threads:
        thread.join(30)
    time.sleep(1)  # the stubs exit after the server
    print(f"\nstop with {len(results)} heavy requests in flight: drained in {drained:.2f} s, exited "
          f"{exited:.2f} s after the stop began (exit timeout {own_server.exit_timeout} s); in-flight answered "
          f"{[round(r[1] - stopping, 2) for r in results]} s after it; a new request {refusal:.2f} s after it: "
          f"{refused.value}")
    assert [r[0] for r in results] == ["ok"] * 3
    assert [r[2] for r in results] == [600] * 3  # every entity of every text
    assert "is not ready" in str(refused.value) or "unavailable" in str(refused.value).lower()
    assert exited < own_server.exit_timeout
    assert own_server.process.returncode == 0
    assert not group_alive(pgid)  # no stub left, before stop() would kill one
    assert leftovers(own_server) == []  # the stubs' shared memory is gone too


def _serve(repository: Path, ports, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "triton_ner.serve", "--model-repository", str(repository),
                             "--quiet", "--http-port", str(ports.http), "--grpc-port", str(ports.grpc),
                             "--metrics-port", str(ports.metrics), *args],
                            stderr=subprocess.PIPE, text=True, env=env)


def _servers_of(repository: Path) -> list[psutil.Process]:
    """Every process (tritonserver, stubs) whose command line names the repository."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(repository) in " ".join(process.info["cmdline"] or []) and "triton_ner.serve" not in " ".join(
                process.info["cmdline"] or []):
            found.append(process)
    return found


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _ours(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("ner-triton-*"))


@pytest.fixture
def scratch_tmp(tmp_path):
    """An empty TMPDIR for a launcher: the launcher's folders left there are what it leaked."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    return folder


def test_a_killed_launcher_leaves_no_server_on_its_ports(own_repository, scratch_tmp):
    ports = free_ports()
    serve = _serve(own_repository, ports, env={**os.environ, "TMPDIR": str(scratch_tmp)})
    seconds_until(lambda: is_ready(f"localhost:{ports.http}"), 120)
    servers = _servers_of(own_repository)
    assert len(servers) >= 4  # tritonserver and a stub per Python model instance
    serve.kill()  # SIGKILL: no handler runs
    serve.communicate()
    gone = seconds_until(lambda: not _servers_of(own_repository), 60)
    print(f"\nlauncher SIGKILLed: tritonserver and {len(servers) - 1} stubs gone {gone:.2f} s later")
    assert all(_port_free(port) for port in vars(ports).values())
    seconds_until(lambda: not _ours(scratch_tmp), 10)  # the watchdog removes the launcher's temporary folder


def _read_lines(stream: TextIO, lines: list[str]) -> None:
    """Each line of ``stream`` into ``lines`` as it comes, until the stream ends."""
    for line in stream:
        lines.append(line)


def test_a_second_ctrl_c_while_stopping_kills_at_once(own_repository):
    ports = free_ports()
    serve = _serve(own_repository, ports, "--exit-timeout", "60")
    lines: list[str] = []
    reader = threading.Thread(target=_read_lines, args=(serve.stderr, lines), daemon=True)
    reader.start()
    seconds_until(lambda: is_ready(f"localhost:{ports.http}"), 120)
    # Four heavy requests: seconds of work that the first Ctrl-C waits for.
    results, threads = _heavy_requests_in_flight(f"localhost:{ports.grpc}", 4)
    serve.send_signal(signal.SIGINT)
    seconds_until(lambda: "serve: SIGINT, stopping the server\n" in lines, 10)  # the first one is handled
    interrupted = time.monotonic()
    serve.send_signal(signal.SIGINT)
    serve.wait(30)
    took = time.monotonic() - interrupted
    reader.join(10)
    serve.stderr.close()
    for thread in threads:
        thread.join(60)
    stderr = "".join(lines)
    print(f"\nsecond Ctrl-C: launcher exited {took:.2f} s later; the requests in flight: {[r[0] for r in results]}")
    assert took < 5  # the kill, not the drain of seconds of work under a 60 s exit timeout
    assert not any(r[0] == "ok" for r in results)  # killed, not finished
    assert "serve: SIGINT, stopping the server" in stderr
    assert "serve: SIGINT again, killing the server" in stderr
    assert "Traceback" not in stderr
    assert _servers_of(own_repository) == []
    assert all(_port_free(port) for port in vars(ports).values())


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


DAMAGES = {
    "manifest missing": (lambda r: (r / names.MANIFEST).unlink(), "has no exported model (manifest.json is missing)"),
    "manifest not JSON": (lambda r: (r / names.MANIFEST).write_text("{"), "manifest.json is damaged"),
    "model file missing": (lambda r: (r / names.MODEL / "1" / "model.onnx").unlink(),
                           f"{names.MODEL}/1/model.onnx is missing (listed in manifest.json)"),
    "model file truncated": (lambda r: _truncate(r / names.MODEL / "1" / "model.onnx"),
                             f"failed to load '{names.MODEL}' version 1: "),
    "tokenizer folder missing": (lambda r: shutil.rmtree(r / names.TEXT_STEP / "1" / "tokenizer"),
                                 f"{names.TEXT_STEP}/1/tokenizer/"),
    "tokenizer file damaged": (lambda r: _truncate(r / names.TEXT_STEP / "1" / "tokenizer" / "tokenizer.json"),
                               f"{names.TEXT_STEP}/1/tokenizer/tokenizer.json is damaged (not JSON"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_export_is_one_line_naming_the_file(own_repository, scratch_tmp, damage):
    spoil, message = DAMAGES[damage]
    spoil(own_repository)
    ports = free_ports()
    serve = _serve(own_repository, ports, env={**os.environ, "TMPDIR": str(scratch_tmp)})
    _, stderr = serve.communicate(timeout=180)
    assert serve.returncode == 1
    assert stderr.startswith("serve: error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr
    if damage == "model file truncated":  # Triton's own words name the file
        assert f"{own_repository / names.MODEL / '1' / 'model.onnx'}" in stderr
    assert _ours(scratch_tmp) == []
    assert _servers_of(own_repository) == []
