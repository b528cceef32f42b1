"""Result values of one benchmark run and their aggregation over several runs."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field


def brief(exc: BaseException, limit: int = 300) -> str:
    """A one-line account of a failure for a table cell.

    When the message carries a Python traceback (a server that died at start-up), the last
    ``SomeError: ...`` line of it is what matters; whitespace is collapsed.
    """
    text = f"{type(exc).__name__}: {exc}"
    errors = re.findall(r"^\s*([A-Za-z_.]+(?:Error|Exception|Exit)\b:.*)$", str(exc), re.MULTILINE)
    if errors:
        head = str(exc).split(";", 1)[0]
        text = f"{type(exc).__name__}: {head}; {errors[-1].strip()}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Run:
    """One measured run of one server on one case."""

    rate: float  # the case's unit per second (messages/s, commands/s...)
    cpu_seconds: float  # CPU used by the server's process tree during the run
    units: int  # messages / commands done in the run
    peak_memory: int  # bytes (PSS of the process tree, sampled)
    elapsed: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Outcome:
    """All runs of one server on one case, or why it could not run."""

    server: str
    runs: list[Run] = field(default_factory=list)
    skipped: str | None = None  # why the server was not measured (missing peer...)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.runs)

    def median_rate(self) -> float:
        return statistics.median(r.rate for r in self.runs)

    def median_cpu_per_unit(self) -> float:
        return statistics.median(r.cpu_seconds / r.units for r in self.runs if r.units)

    def peak_memory(self) -> int:
        return max(r.peak_memory for r in self.runs)

    def median_extra(self, key: str) -> float | None:
        values = [r.extra[key] for r in self.runs if key in r.extra]
        return statistics.median(values) if values else None


@dataclass
class Case:
    """One line group of a workload table: e.g. "2 KB, 20 clients" with one outcome per server."""

    label: str
    unit: str  # "msg/s", "cmd/s", ...
    outcomes: list[Outcome] = field(default_factory=list)


@dataclass
class Workload:
    """A workload's cases, how it was run, and notes to print under its table."""

    key: str
    title: str
    method: str
    cases: list[Case] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    raw_text: str | None = None  # verbatim output (store workload)
    ratio_of: str | None = None  # an extra key to compare instead of the rate (memory)
    lower_is_better: bool = False  # the first column is a time, not a rate
