"""Presenting a run: the text table (with taskqueue's ratio to each system), JSON and a PNG chart.

A peer is compared with the taskqueue column on the same broker: Celery on RabbitMQ with
taskqueue on RabbitMQ, the database queues with taskqueue's database broker on the same database
(PostgreSQL: taskqueue-db, SQLite: taskqueue-sqlite), every other peer (all on Redis) with
taskqueue on Redis."""

from __future__ import annotations

import itertools
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
TASKQUEUE_COLUMNS = ("taskqueue", "taskqueue-amqp", "taskqueue-db", "taskqueue-sqlite")
# The database queues, by database: the taskqueue column each is compared with, and its peers.
DATABASE_PEERS = {"taskqueue-db": ("PostgreSQL", ["django-tasks-db", "procrastinate", "huey-pg"]),
                  "taskqueue-sqlite": ("SQLite", ["huey-sqlite", "django-tasks-db-sqlite"])}
BASELINES = {"celery-amqp": "taskqueue-amqp",
             **{peer: ours for ours, (_db, peers) in DATABASE_PEERS.items() for peer in peers}}


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
    against: dict[str, list[str]] = {}
    for system in systems:
        if (base := baseline(system)) not in (None, "taskqueue"):
            against.setdefault(base, []).append(system)
    if against:
        note += "\n" + "; ".join(f"{peers[0]}'s (x) is against {base}" if len(peers) == 1
                                 else f"{', '.join(peers)}: (x) against {base}" for base, peers in against.items())
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
    groups = [(broker, ours, [theirs]) for broker, ours, theirs in SAME_BROKER_PAIRS]
    title = ("taskqueue / Celery's best django-db set-up, on the same broker "
             "(throughput and enqueue: higher is better; times: lower):")
    return format_margins(table, systems, groups, MARGIN_METRICS, title, label_width=9, best_of=False)


# Issue #20's goals against the database queues: on PostgreSQL, throughput at least 3x and round-trip
# p50 at most 0.5x the best of them; on SQLite, ahead of every one (1x).
DATABASE_MARGIN_METRICS = ["throughput", "enqueue", "latency_p50", "latency_p99", "chord", "chain"]


def best_peer(table: dict, metric: str, peers: list[str]) -> str | None:
    """The peer with the best figure for `metric` (highest rate, shortest time), None if none has one."""
    higher_better = METRICS[metric][3]
    figures = [(value, peer) for peer in peers if (value := table.get(metric, {}).get(peer))]
    if not figures:
        return None
    return (max if higher_better else min)(figures)[1]


def format_database_margins(table: dict, systems: list[str]) -> str:
    """One line per database whose taskqueue column ran beside at least one of its peers: taskqueue's
    figure / the best peer's for each main metric, naming that peer (the best may differ by metric)."""
    groups = [(database, ours, peers) for ours, (database, peers) in DATABASE_PEERS.items()]
    title = ("taskqueue's database broker / the best database queue on the same database, per metric "
             "(issue #20's goals: PostgreSQL throughput >= 3x and p50 <= 0.5x; SQLite ahead of all):")
    return format_margins(table, systems, groups, DATABASE_MARGIN_METRICS, title, label_width=11, best_of=True)


def format_margins(table: dict, systems: list[str], groups: list[tuple[str, str, list[str]]], metrics: list[str],
                   title: str, label_width: int, best_of: bool) -> str:
    """Under `title`, one line per group `(label, taskqueue column, peers)` whose taskqueue column ran
    beside at least one of its peers: for each of `metrics`, taskqueue's figure / the best figure among
    the peers that ran; with `best_of`, the line and each figure name those peers and that best one
    (with one peer per group, as the brokers' pairs, it is simply that peer's). "" if no line."""
    lines = []
    for label, ours, peers in groups:
        ran = [peer for peer in peers if peer in systems]
        if ours not in systems or not ran:
            continue
        cells = []
        for metric in metrics:
            best = best_peer(table, metric, ran)
            r = ratio(table, metric, best, ours) if best is not None else None
            if r is not None:
                cells.append(f"{metric.replace('latency_', '')} {_fmt_ratio(r)}x" + (f" ({best})" if best_of else ""))
        against = f"the best of {', '.join(ran)}" if best_of else ", ".join(ran)
        lines.append(f"  {label + ':':{label_width}} {ours} / {against}: " + (", ".join(cells) or "-"))
    if not lines:
        return ""
    return "\n".join([title, *lines])


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

    palette = itertools.cycle(["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                               "#bcbd22", "#17becf", "#aec7e8"])
    highlight = {"taskqueue": "#d62728", "taskqueue-amqp": "#ff9896", "taskqueue-db": "#c0392b",
                 "taskqueue-sqlite": "#f1948a"}
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
