"""A measured figure against its bound, as every benchmark reports it: the row type and its Markdown table."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Check:
    """What is measured, the value, the bound, and whether the value must be at least (or at most) the bound."""

    text: str
    measured: float
    bound: float
    at_least: bool

    @property
    def holds(self) -> bool:
        return self.measured >= self.bound if self.at_least else self.measured <= self.bound

    def summary(self) -> dict:
        return asdict(self) | {"holds": self.holds}


def checks_table(checks: list[dict]) -> str:
    """The table of checks, from :meth:`Check.summary` (what the JSON files hold)."""
    lines = ["| target | measured | bound | holds |", "|---|---|---|---|"]
    lines += [f"| {c['text']} | {c['measured']:.2f} | {'≥' if c['at_least'] else '≤'} {c['bound']:g} | "
              f"{'yes' if c['holds'] else 'NO'} |" for c in checks]
    return "\n".join(lines)
