"""Resident memory and CPU time of a served tree: tritonserver and every process under it (its Python-backend
stubs)."""

from __future__ import annotations

import threading

import psutil


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants now, in MiB."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


class MemorySampler:
    """The peak of :func:`tree_rss_mb` while a load runs (a context manager)."""

    def __init__(self, pid: int, every: float = 0.2):
        self.pid = pid
        self.every = every
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))
            except psutil.NoSuchProcess:
                return
            self._stop.wait(self.every)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def tree_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time so far (user and system, seconds) of the served tree of ``pid``, by part: ``tritonserver``, and
    each model's Python-backend stubs together under the model's name."""
    from triton_ner.server import stub_processes

    seconds: dict[str, float] = {}
    for process, part in {pid: "tritonserver", **stub_processes(pid)}.items():
        try:
            times = psutil.Process(process).cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[part] = seconds.get(part, 0.0) + times.user + times.system
    return seconds
