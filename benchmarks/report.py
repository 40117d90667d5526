"""Presenting a run: the text table (with taskqueue's ratio to each system), JSON and a PNG chart.

A peer is compared with the taskqueue column on the same broker: Celery on RabbitMQ with
taskqueue on RabbitMQ, every other peer (all on Redis) with taskqueue on Redis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .runner import METRICS

LABELS = {
    "throughput_n": "throughput batch size",
    "throughput": "throughput, end to end",
    "enqueue": "enqueue only",
    "latency_p50": "round trip p50",
    "latency_p95": "round trip p95",
    "latency_p99": "round trip p99",
    "chord": "chord 1000 + tsum",
    "chain": "chain of 100",
    "mixed_p50": "mixed small p50",
    "mixed_p99": "mixed small p99",
    "mixed_makespan": "mixed long makespan",
    "rss_idle": "worker RSS idle",
    "rss_loaded": "worker RSS after throughput",
    "uss_idle": "worker USS idle",
    "uss_loaded": "worker USS after throughput",
}


# The taskqueue columns, and the peers compared with a taskqueue column other than "taskqueue".
TASKQUEUE_COLUMNS = ("taskqueue", "taskqueue-amqp")
BASELINES = {"celery-amqp": "taskqueue-amqp"}


def baseline(system: str) -> str | None:
    """The taskqueue column whose figure `system`'s is divided into (None for a taskqueue column)."""
    if system in TASKQUEUE_COLUMNS:
        return None
    return BASELINES.get(system, "taskqueue")


def ratios(table: dict, systems: list[str]) -> dict[str, dict[str, float | None]]:
    """metric -> peer -> its baseline's figure / the peer's (the JSON's `ratios_taskqueue_over`)."""
    return {metric: {system: ratio(table, metric, system, base) for system in systems
                     if (base := baseline(system)) is not None}
            for metric in table if metric != "throughput_n"}


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value < 1 else f"{value:.2f}"


def _fmt_ratio(r: float) -> str:
    """Two decimals, or two significant digits below 0.1 (so 0.003 does not print as 0.00)."""
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


def ratio(table: dict, metric: str, system: str, base: str = "taskqueue") -> float | None:
    """taskqueue's figure divided by `system`'s."""
    ours, theirs = table.get(metric, {}).get(base), table.get(metric, {}).get(system)
    if ours is None or not theirs:
        return None
    return ours / theirs


def format_table(table: dict, systems: list[str]) -> str:
    """Rows are metrics; each peer cell is `value (taskqueue/peer ratio)`, taskqueue on the peer's broker."""
    header = ["metric", *systems]
    rows = [header]
    for metric, (_scenario, _key, unit, higher_better) in METRICS.items():
        values = table.get(metric, {})  # a JSON written before a metric existed has no row for it
        if metric == "throughput_n":
            rows.append([f"{LABELS[metric]} ({unit})", *[_fmt(values.get(s)) for s in systems]])
            continue
        cells = [f"{LABELS[metric]} ({unit}, {'higher' if higher_better else 'lower'} is better)"]
        for system in systems:
            cell = _fmt(values.get(system))
            base = baseline(system)
            r = ratio(table, metric, system, base) if base is not None else None
            cells.append(f"{cell} ({_fmt_ratio(r)}x)" if r is not None else cell)
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    note = "(x) = taskqueue's figure / that system's figure; '-' = failed or not applicable (see 'errors' in the JSON)"
    if any(baseline(system) not in (None, "taskqueue") for system in systems):
        note += "\n" + "; ".join(f"{system}'s (x) is against {base}" for system in systems
                                 if (base := baseline(system)) not in (None, "taskqueue"))
    return "\n".join([*lines, note])


def format_markdown(table: dict, systems: list[str]) -> str:
    lines = ["| metric | " + " | ".join(systems) + " |", "|---|" + "---:|" * len(systems)]
    for metric, (_scenario, _key, unit, higher_better) in METRICS.items():
        values = table.get(metric, {})
        if metric == "throughput_n":
            sizes = " | ".join(_fmt(values.get(s)) for s in systems)
            lines.append(f"| {LABELS[metric]} ({unit}) | {sizes} |")
            continue
        cells = []
        for system in systems:
            base = baseline(system)
            r = ratio(table, metric, system, base) if base is not None else None
            value = _fmt(values.get(system))
            cells.append(f"{value} ({_fmt_ratio(r)}×)" if r is not None else value)
        lines.append(f"| {LABELS[metric]} ({unit}, {'↑' if higher_better else '↓'}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# Celery's best django-db set-up on each broker, against taskqueue on the same broker (issue #19's
# acceptance: the RabbitMQ margins match the Redis ones).
SAME_BROKER_PAIRS = [("Redis", "taskqueue", "celery-db-reuse"), ("RabbitMQ", "taskqueue-amqp", "celery-amqp")]
MARGIN_METRICS = ["throughput", "enqueue", "latency_p50", "latency_p99", "chord", "chain", "mixed_p50"]


def format_broker_margins(table: dict, systems: list[str]) -> str:
    """One line per broker whose pair ran: taskqueue's figure / Celery's (django-db, reused
    connections), for the main metrics, so the two brokers' margins read side by side."""
    lines = []
    for broker, ours, theirs in SAME_BROKER_PAIRS:
        if ours not in systems or theirs not in systems:
            continue
        cells = []
        for metric in MARGIN_METRICS:
            r = ratio(table, metric, theirs, ours)
            if r is not None:
                cells.append(f"{metric.replace('latency_', '')} {_fmt_ratio(r)}x")
        lines.append(f"  {broker + ':':9} {ours} / {theirs}: " + (", ".join(cells) or "-"))
    if not lines:
        return ""
    return "\n".join(["taskqueue / Celery's best django-db set-up, on the same broker "
                      "(throughput and enqueue: higher is better; times: lower):", *lines])


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


CHART_METRICS = ["throughput", "enqueue", "latency_p50", "latency_p99", "chord", "chain", "mixed_p50", "mixed_p99",
                 "mixed_makespan", "rss_idle", "rss_loaded"]


def write_chart(path: Path, table: dict, systems: list[str], title: str) -> None:
    """One bar panel per metric, one bar per system (the taskqueue columns highlighted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    palette = iter(["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"])
    highlight = {"taskqueue": "#d62728", "taskqueue-amqp": "#ff9896"}
    colors = [highlight.get(s) or next(palette) for s in systems]
    fig, axes = plt.subplots(3, 4, figsize=(18, 12.5))
    for ax in axes.flat[len(CHART_METRICS):]:
        ax.set_visible(False)
    for ax, metric in zip(axes.flat, CHART_METRICS, strict=False):
        _scenario, _key, unit, higher_better = METRICS[metric]
        values = [table.get(metric, {}).get(s) for s in systems]
        bars = ax.bar(range(len(systems)), [v or 0 for v in values], color=colors)
        for bar, value in zip(bars, values, strict=True):
            label = "n/a" if value is None else _fmt(value)
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                        fontsize=8)
        ax.set_title(f"{LABELS[metric]} ({unit}, {'higher' if higher_better else 'lower'} is better)", fontsize=9)
        ax.set_xticks(range(len(systems)), systems, rotation=30, ha="right", fontsize=8)
        if metric.startswith(("latency", "mixed_p")) and any(values) and max(v or 0 for v in values) > 20 * min(
                v for v in values if v):
            ax.set_yscale("log")
        ax.margins(y=0.15)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
