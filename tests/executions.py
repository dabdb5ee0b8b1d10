"""Triton's own statistics of one model (``/v2/models/<model>/stats``), read before and after a window of requests:
how many batch rows it took, in how many executions, and the batch size of each execution. What shows that the
dynamic batcher put requests together, rather than a test's hope that it did."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import tritonclient.grpc as grpcclient


@dataclass(frozen=True)
class Executions:
    """A model's counters: ``inferences`` (batch rows: one per request of one row), ``executions`` (the backend's
    ``execute`` calls) and ``batches`` (the number of executions of each batch size)."""

    inferences: int
    executions: int
    batches: Counter[int]

    def __sub__(self, before: Executions) -> Executions:
        return Executions(self.inferences - before.inferences, self.executions - before.executions,
                          self.batches - before.batches)

    def shared(self) -> bool:
        """Whether requests shared executions: fewer executions than rows."""
        return 0 < self.executions < self.inferences


def executions(url: str, model: str) -> Executions:
    """The counters of ``model`` on the server at ``url`` (gRPC) so far."""
    client = grpcclient.InferenceServerClient(url)
    try:
        stats = client.get_inference_statistics(model).model_stats[0]
    finally:
        client.close()
    return Executions(stats.inference_count, stats.execution_count,
                      Counter({b.batch_size: b.compute_infer.count for b in stats.batch_stats}))


def since(before: Executions, url: str, model: str, inferences: int, timeout: float = 30.0) -> Executions:
    """The counters of ``model`` since ``before``, once they count ``inferences`` rows (or after ``timeout``
    seconds). A backend reports an execution after it has sent the responses, so a client can hold every answer
    before Triton's counters do."""
    found = executions(url, model) - before
    deadline = time.monotonic() + timeout
    while found.inferences < inferences and time.monotonic() < deadline:
        time.sleep(0.05)
        found = executions(url, model) - before
    return found
