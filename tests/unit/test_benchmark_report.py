"""The benchmark's table and system selection with the RabbitMQ columns: each peer's ratio is
taken against taskqueue on the same broker, and the RabbitMQ systems need RabbitMQ."""

import pytest

from benchmarks import common, report
from benchmarks.__main__ import select_systems
from benchmarks.adapters import AMQP_SYSTEMS, SYSTEMS
from tests.helpers import free_port

TABLE = {
    "throughput_n": {"taskqueue": 10_000, "celery-db-reuse": 10_000, "taskqueue-amqp": 10_000, "celery-amqp": 5_000},
    "throughput": {"taskqueue": 5_000.0, "celery-db-reuse": 400.0, "taskqueue-amqp": 3_000.0, "celery-amqp": 300.0},
    "latency_p50": {"taskqueue": 1.0, "celery-db-reuse": 8.0, "taskqueue-amqp": 2.0, "celery-amqp": 10.0},
    "chord": {"taskqueue": 0.4, "celery-db-reuse": 6.0, "taskqueue-amqp": None, "celery-amqp": 5.0},
}
SYSTEMS_RUN = ["taskqueue", "celery-db-reuse", "taskqueue-amqp", "celery-amqp"]


def test_each_peer_is_compared_with_taskqueue_on_its_broker():
    assert report.baseline("celery-amqp") == "taskqueue-amqp"
    assert report.baseline("celery-db-reuse") == "taskqueue"
    assert report.baseline("huey") == "taskqueue"
    assert report.baseline("taskqueue") is None and report.baseline("taskqueue-amqp") is None
    ratios = report.ratios(TABLE, SYSTEMS_RUN)
    assert ratios["throughput"] == {"celery-db-reuse": 12.5, "celery-amqp": 10.0}
    assert ratios["latency_p50"] == {"celery-db-reuse": 0.125, "celery-amqp": 0.2}
    assert ratios["chord"]["celery-amqp"] is None  # taskqueue-amqp's chord failed: no ratio
    assert "throughput_n" not in ratios


def test_the_table_shows_the_rabbitmq_ratio_against_taskqueue_amqp_and_says_so():
    text = report.format_table(TABLE, SYSTEMS_RUN)
    throughput = next(line for line in text.splitlines() if line.startswith("throughput, end to end"))
    assert "400 (12.50x)" in throughput and "300 (10.00x)" in throughput
    assert "3,000 (" not in throughput  # a taskqueue column has no ratio
    assert "celery-amqp's (x) is against taskqueue-amqp" in text
    markdown = report.format_markdown(TABLE, SYSTEMS_RUN)
    assert "| 300 (10.00×) |" in markdown


def test_the_margins_line_puts_both_brokers_side_by_side():
    lines = report.format_broker_margins(TABLE, SYSTEMS_RUN).splitlines()
    assert lines[1].split() == ["Redis:", "taskqueue", "/", "celery-db-reuse:", "throughput", "12.50x,", "p50",
                                "0.12x,", "chord", "0.067x"]
    assert lines[2].split() == ["RabbitMQ:", "taskqueue-amqp", "/", "celery-amqp:", "throughput", "10.00x,", "p50",
                                "0.20x"]
    assert report.format_broker_margins(TABLE, ["taskqueue", "huey"]) == ""


def test_the_rabbitmq_systems_are_selectable_and_unknown_names_are_refused():
    assert AMQP_SYSTEMS == ["taskqueue-amqp", "celery-amqp"] and set(AMQP_SYSTEMS) <= set(SYSTEMS)
    assert select_systems("taskqueue,huey") == ["taskqueue", "huey"]
    with pytest.raises(SystemExit, match="unknown systems: celery-kafka"):
        select_systems("taskqueue,celery-kafka")


def test_without_rabbitmq_the_default_run_leaves_its_systems_out_and_naming_them_stops(monkeypatch, capsys):
    monkeypatch.setattr(common, "AMQP_PORT", free_port())  # nothing listens there
    assert "does not answer" in common.rabbitmq_problem(timeout=1)
    assert select_systems(None) == [s for s in SYSTEMS if s not in AMQP_SYSTEMS]
    assert "note: skipping taskqueue-amqp, celery-amqp: RabbitMQ at" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="celery-amqp need RabbitMQ: RabbitMQ at .* does not answer"):
        select_systems("taskqueue,celery-amqp")


def test_urls_name_the_vhost_quoted():
    assert common.amqp_url("bench_celery", scheme="pyamqp").endswith(f":{common.AMQP_PORT}/bench_celery")
    assert common.amqp_url("a/b").endswith("/a%2Fb")


def test_the_context_limits_name_rabbitmqs_confirmed_publish_rates(capsys):
    from benchmarks.__main__ import print_limits

    figures = {"quorum": {"per_s": 1100.0, "p50_ms": 0.88}, "classic transient": {"per_s": 7600.0, "p50_ms": 0.13}}
    print_limits({"redis": {}, "postgresql": {}, "rabbitmq": {"messages": 2000, "confirmed_publish": figures}})
    line = capsys.readouterr().out.splitlines()[-1]
    assert line == ("RabbitMQ, one producer, each publish waiting for its confirm: quorum 1,100/s (p50 0.88 ms), "
                    "classic transient 7,600/s (p50 0.13 ms)")
