"""Tables of the results: plain text for the terminal and Markdown for BENCHMARKS.md."""

from __future__ import annotations

from benchlib.results import Outcome, Workload


def _fmt_rate(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _fmt_cpu(value: float) -> str:
    if value >= 0.01:
        return f"{value:.3f}"
    if value >= 0.0001:
        return f"{value * 1000:.2f} ms"
    return f"{value * 1e6:.0f} us"


def _fmt_mem(value: int) -> str:
    return f"{value / 1e6:.1f} MB"


def rows(wl: Workload) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a workload's table (one row per case and server)."""
    extra_keys: list[tuple[str, str]] = []
    for case in wl.cases:
        for out in case.outcomes:
            for run in out.runs:
                for key in run.extra:
                    label = EXTRA_LABELS.get(key, key)
                    if (key, label) not in extra_keys:
                        extra_keys.append((key, label))
    unit = wl.cases[0].unit if wl.cases else "per s"
    ratio_label = ("mailsuite / server" if not wl.ratio_of
                   else f"mailsuite / server ({EXTRA_LABELS.get(wl.ratio_of, wl.ratio_of)})")
    first = f"{unit} (median)" if not wl.lower_is_better else f"time ({unit}, median)"
    header = ["case", "server", first, ratio_label, "CPU s per unit",
              "peak memory", *[label for _, label in extra_keys], "runs"]
    table: list[list[str]] = []
    for case in wl.cases:
        ms = next((o for o in case.outcomes if o.server == "mailsuite" and o.ok), None)
        for out in case.outcomes:
            if not out.ok:
                reason = out.skipped or ("failed: " + "; ".join(out.errors)[:300])
                table.append([case.label, out.server, "not measured", "", "", "",
                              *["" for _ in extra_keys], reason])
                continue
            ratio = ""
            if ms is not None and out.server != "mailsuite":
                if wl.ratio_of:
                    mine, theirs = ms.median_extra(wl.ratio_of), out.median_extra(wl.ratio_of)
                    if mine is not None and theirs:
                        ratio = f"{mine / theirs:.2f}"
                else:
                    ratio = f"{ms.median_rate() / out.median_rate():.2f}"
            extras = []
            for key, _label in extra_keys:
                v = out.median_extra(key)
                extras.append("" if v is None else EXTRA_FORMAT.get(key, _fmt_rate)(v))
            runs = f"{len(out.runs)}"
            if out.errors:
                runs += f" ({len(out.errors)} failed: {out.errors[0][:200]})"
            table.append([case.label, out.server, _fmt_rate(out.median_rate()), ratio,
                          _fmt_cpu(out.median_cpu_per_unit()), _fmt_mem(out.peak_memory()),
                          *extras, runs])
    return header, table


EXTRA_LABELS = {
    "accept_rate": "accept msg/s",
    "bytes_per_conn": "memory per connection",
    "p50_ms": "median latency",
    "connections": "connections",
    "mb_per_s": "MB/s",
    "rss_total": "RSS total",
    "login_rate": "logins/s",
    "rss_per_conn": "RSS per connection",
    "cold_select": "cold SELECT",
    "warm_select": "warm SELECT",
    "base_memory": "memory before",
}
EXTRA_FORMAT = {
    "bytes_per_conn": lambda v: f"{v / 1024:.1f} KiB",
    "p50_ms": lambda v: f"{v:.2f} ms",
    "connections": lambda v: f"{v:.0f}",
    "mb_per_s": lambda v: f"{v:.1f}" if v >= 1 else f"{v:.3f}",
    "rss_total": lambda v: f"{v / 1e6:.1f} MB",
    "login_rate": lambda v: f"{v:.1f}",
    "rss_per_conn": lambda v: f"{v / 1024:.1f} KiB",
    "cold_select": lambda v: f"{v:.2f} s",
    "warm_select": lambda v: f"{v:.2f} s",
    "base_memory": lambda v: f"{v / 1e6:.1f} MB",
}


def markdown(wl: Workload) -> str:
    out = [f"### {wl.title}", ""]
    if wl.method:
        out += [wl.method, ""]
    if wl.skipped:
        out += [f"**Not run:** {wl.skipped}", ""]
    if wl.cases:
        header, table = rows(wl)
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join("---" for _ in header) + "|")
        for row in table:
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
        out.append("")
    if wl.raw_text:
        out += ["```", wl.raw_text.rstrip(), "```", ""]
    for note in wl.notes:
        out.append(f"- {note}")
    if wl.notes:
        out.append("")
    return "\n".join(out)


def text(wl: Workload) -> str:
    out = [f"== {wl.title}"]
    if wl.skipped:
        out.append(f"   not run: {wl.skipped}")
    if wl.cases:
        header, table = rows(wl)
        widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header) - 1)]
        for row in [header, *table]:
            cells = [c.ljust(w) for c, w in zip(row[:-1], widths)]
            out.append("  " + "  ".join(cells) + "  " + row[-1])
    if wl.raw_text:
        out.append(wl.raw_text.rstrip())
    for note in wl.notes:
        out.append(f"   - {note}")
    return "\n".join(out)


def outcome_line(out: Outcome) -> str:
    if out.skipped:
        return f"skipped ({out.skipped})"
    if not out.runs:
        return "failed: " + "; ".join(out.errors)[:300]
    return (f"{_fmt_rate(out.median_rate())}/s, CPU {_fmt_cpu(out.median_cpu_per_unit())}/unit, "
            f"peak {_fmt_mem(out.peak_memory())}")
