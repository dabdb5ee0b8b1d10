"""What every benchmark plot shares: log-scale concurrency ticks, a grid, small legends, one PNG."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def finish(figure: Figure, axes: Iterable[Axes], ticks: tuple[int, ...], path: Path) -> None:
    """Label ``axes`` at the concurrency ``ticks``, add grid and legend, and write ``figure`` to ``path``."""
    for axis in axes:
        axis.set_xticks(ticks, [str(t) for t in ticks])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
