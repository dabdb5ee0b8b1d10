"""A TorchScript model run at a few fixed shapes, each with its own static buffers and, on CUDA, a captured graph.

A call is padded up to the smallest shape that holds it (rows to a power of two, tokens to one of the text step's
padded lengths) and replayed: one copy of the token ids and the mask in (one pinned buffer), one graph launch, one
copy of the logits out. On CPU the same shapes and buffers are used and the model is called on them, which is the
path the tests run; only the capture and the replay need a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from triton_ner.core.batching import GPU_MAX_ROWS, MAX_TOKENS_PER_RUN, PAD_LENGTHS

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Shapes:
    """The shapes a :class:`GraphRunner` holds: every padded length of ``lengths`` with rows 1, 2, 4, ... up to
    ``max_rows`` and at most ``max_tokens`` padded tokens (at least one row)."""

    lengths: tuple[int, ...]
    max_rows: int
    max_tokens: int

    def rows(self, length: int) -> tuple[int, ...]:
        """The row counts of ``length``'s shapes, smallest first."""
        most = max(1, min(self.max_rows, self.max_tokens // length))
        found, rows = [], 1
        while rows < most:
            found.append(rows)
            rows *= 2
        return (*found, most)

    def all(self) -> list[tuple[int, int]]:
        """Every ``(rows, length)`` shape, the most padded tokens first (the order of capture)."""
        return sorted(((r, n) for n in self.lengths for r in self.rows(n)), key=lambda s: (-s[0] * s[1], -s[1]))

    def fit(self, rows: int, length: int) -> tuple[int, int]:
        """The shape a call of ``rows`` x ``length`` is padded to: the smallest padded length that holds it and its
        smallest row count that holds it (its largest, when the call must be split)."""
        padded = next((n for n in sorted(self.lengths) if n >= length), None)
        if padded is None:
            raise ValueError(f"{length} tokens: the longest shape is {max(self.lengths)}")
        counts = self.rows(padded)
        return next((r for r in counts if r >= rows), counts[-1]), padded


def served_shapes(max_rows: int = GPU_MAX_ROWS, max_tokens: int = MAX_TOKENS_PER_RUN,
                  max_length: int = PAD_LENGTHS[-1]) -> Shapes:
    """The shapes of the cuda variant's runner: the text step's padded lengths up to ``max_length``."""
    return Shapes(tuple(n for n in PAD_LENGTHS if n <= max_length), max_rows, max_tokens)


class GraphRunner:
    """``(input_ids, attention_mask) -> float32 logits`` over a TorchScript module at the fixed :class:`Shapes`.

    On ``cuda`` each shape is run three times and then captured as a CUDA graph in one memory pool shared by all
    shapes (largest first, so that smaller ones reuse its blocks); a call replays its shape's graph. TorchScript's
    optimizing executor is off while the module runs here, so no kernel is compiled during a capture. Not for use by
    two threads at once: the buffers are shared.
    """

    def __init__(self, module: torch.jit.ScriptModule, shapes: Shapes, device: str = "cpu"):
        import torch

        self.torch, self.module, self.shapes, self.device = torch, module, shapes, torch.device(device)
        self.cuda = self.device.type == "cuda"
        # (host tokens, device tokens, the graph, its output on the device and on the host) by shape; the last
        # three once captured.
        self.buffers: dict[tuple[int, int], tuple[Any, ...]] = {}
        if self.cuda:
            self._capture()

    def _buffers(self, shape: tuple[int, int]) -> tuple[Any, ...]:
        """The host and device token buffers of ``shape``, ``[2, rows, length]``: ids, then the mask."""
        if shape not in self.buffers:
            torch = self.torch
            host = torch.zeros((2, *shape), dtype=torch.int64, pin_memory=self.cuda)
            device = host.to(self.device) if self.cuda else host
            self.buffers[shape] = (host, device, None, None)
        return self.buffers[shape]

    def _forward(self, tokens: torch.Tensor) -> torch.Tensor:
        with self.torch.jit.optimized_execution(False):
            return self.module(tokens[0], tokens[1]).float()

    def _capture(self) -> None:
        torch = self.torch
        pool = torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream(self.device)
        with torch.inference_mode(), torch.cuda.device(self.device):
            for shape in self.shapes.all():
                host, tokens, _, _ = self._buffers(shape)
                tokens[1].fill_(1)
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):
                        self._forward(tokens)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    out = self._forward(tokens)
                out_host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
                self.buffers[shape] = (host, tokens, graph, (out, out_host))
            torch.cuda.synchronize(self.device)

    def memory_bytes(self) -> int:
        """GPU memory the caching allocator holds on this runner's device (weights, buffers, graph pool); 0 on CPU."""
        return int(self.torch.cuda.memory_reserved(self.device)) if self.cuda else 0

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        rows, length = input_ids.shape
        shape = self.shapes.fit(rows, length)
        if rows > shape[0]:  # more rows than the largest shape of this length: in pieces of that shape
            return np.concatenate([self(input_ids[i:i + shape[0]], attention_mask[i:i + shape[0]])
                                   for i in range(0, rows, shape[0])])
        host, tokens, graph, outputs = self._buffers(shape)
        view = host.numpy()
        view[:, rows:] = 0
        view[:, :rows, length:] = 0  # padded tokens: masked, so the real ones' logits do not depend on them
        view[0, :rows, :length], view[1, :rows, :length] = input_ids, attention_mask
        with self.torch.inference_mode():
            if graph is None:
                return self._forward(tokens)[:rows, :length].numpy()
            tokens.copy_(host, non_blocking=True)
            graph.replay()
            out, out_host = outputs
            out_host[:rows].copy_(out[:rows], non_blocking=True)
            self.torch.cuda.current_stream(self.device).synchronize()
        return out_host[:rows, :length].numpy().copy()
