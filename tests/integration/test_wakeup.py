"""The scheduler wake-up fix (``triton_ner/server/wakeup.c``) in the real local Triton: its two dynamic batchers
(``ner_text``'s and ``ner_model``'s) wake every few milliseconds, so a wake-up that Triton loses costs that much and
not the batcher's 500 ms; no other thread of the server is touched. The latency it removes is measured by the
ceiling's windows (``make bench``, ``docs/ceiling.md``)."""

import time
from pathlib import Path

import pytest

from triton_ner.server import wakeup
from triton_ner.server.arguments import free_ports
from triton_ner.server.launcher import TritonServer

BATCHERS = 2  # the steps with dynamic batching; the ensemble has none


def _voluntary_switches(pid: int) -> dict[str, int]:
    """Each thread's voluntary context switches so far: how often it went to sleep."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue  # ended meanwhile
        found[task.name] = next(int(line.split()[1]) for line in status.splitlines()
                                if line.startswith("voluntary_ctxt_switches"))
    return found


def _idle_wakeups_per_s(repository: Path) -> list[int]:
    """Every thread's sleeps over one idle second of a fresh server, most first."""
    with TritonServer(repository, free_ports()) as server:
        time.sleep(1.0)
        before = _voluntary_switches(server.process.pid)
        time.sleep(1.0)
        after = _voluntary_switches(server.process.pid)
    return sorted((after[t] - before.get(t, 0) for t in after), reverse=True)


@pytest.fixture(scope="module")
def built():
    if wakeup.library() is None:
        wakeup.build()  # make setup builds it; a test run alone may come first
    return wakeup.library()


def test_the_batchers_wake_every_few_ms_with_the_fix_and_nothing_else_changes(repository, built, monkeypatch):
    fixed = _idle_wakeups_per_s(repository)
    monkeypatch.setattr(wakeup, "library", lambda: None)
    plain = _idle_wakeups_per_s(repository)
    # Idle, a batcher waits 500 ms at a time: twice a second without the fix, about 500 times with it.
    assert min(fixed[:BATCHERS]) >= 100, fixed[:8]
    assert fixed[BATCHERS] < 50 and plain[0] < 50, (fixed[:8], plain[:8])


def test_the_preload_goes_first_and_keeps_the_callers(built):
    environment = wakeup.preload({"LD_PRELOAD": "/opt/other.so", "PATH": "/bin"})
    assert environment["LD_PRELOAD"] == f"{built}:/opt/other.so" and environment["PATH"] == "/bin"
    assert wakeup.preload(environment)["LD_PRELOAD"] == environment["LD_PRELOAD"]
