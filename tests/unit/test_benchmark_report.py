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


# The database queues (issue #20): each compared with taskqueue's database broker on its database.
DB_TABLE = {
    "throughput": {"taskqueue-db": 3_000.0, "django-tasks-db": 300.0, "procrastinate": 500.0, "huey-pg": 1_000.0,
                   "taskqueue-sqlite": 1_500.0, "huey-sqlite": 900.0, "django-tasks-db-sqlite": 200.0},
    "latency_p50": {"taskqueue-db": 2.0, "django-tasks-db": 8.0, "procrastinate": 5.0, "huey-pg": 6.0,
                    "taskqueue-sqlite": 3.0, "huey-sqlite": 7.0, "django-tasks-db-sqlite": None},
    "chord": {"taskqueue-db": 1.0, "django-tasks-db": None, "procrastinate": None, "huey-pg": 4.0},
}
DB_SYSTEMS = ["taskqueue-db", "django-tasks-db", "procrastinate", "huey-pg", "taskqueue-sqlite", "huey-sqlite",
              "django-tasks-db-sqlite"]


def test_each_database_queue_is_compared_with_taskqueue_on_the_same_database():
    from benchmarks.adapters import DATABASE_PEERS, POSTGRES_PEERS, SQLITE_PEERS

    assert {peer: report.baseline(peer) for peer in DATABASE_PEERS} == {
        **dict.fromkeys(POSTGRES_PEERS, "taskqueue-db"), **dict.fromkeys(SQLITE_PEERS, "taskqueue-sqlite")}
    assert report.baseline("taskqueue-db") is None and report.baseline("taskqueue-sqlite") is None
    ratios = report.ratios(DB_TABLE, DB_SYSTEMS)
    assert ratios["throughput"] == {"django-tasks-db": 10.0, "procrastinate": 6.0, "huey-pg": 3.0,
                                    "huey-sqlite": 1_500 / 900, "django-tasks-db-sqlite": 7.5}
    assert ratios["latency_p50"]["huey-sqlite"] == 3.0 / 7.0 and ratios["latency_p50"]["django-tasks-db-sqlite"] is None
    text = report.format_table(DB_TABLE, DB_SYSTEMS)
    throughput = next(line for line in text.splitlines() if line.startswith("throughput, end to end"))
    assert "1,000 (3.00x)" in throughput and "900 (1.67x)" in throughput and "1,500 (" not in throughput
    assert "django-tasks-db, procrastinate, huey-pg: (x) against taskqueue-db" in text
    assert "huey-sqlite, django-tasks-db-sqlite: (x) against taskqueue-sqlite" in text


def test_the_database_margins_line_takes_the_best_peer_per_metric():
    assert report.best_peer(DB_TABLE, "throughput", ["django-tasks-db", "procrastinate", "huey-pg"]) == "huey-pg"
    assert report.best_peer(DB_TABLE, "latency_p50", ["django-tasks-db", "procrastinate", "huey-pg"]) == "procrastinate"
    assert report.best_peer(DB_TABLE, "chord", ["django-tasks-db", "procrastinate"]) is None  # no canvas: no figure
    lines = report.format_database_margins(DB_TABLE, DB_SYSTEMS).splitlines()
    assert "PostgreSQL throughput >= 3x and p50 <= 0.5x" in lines[0]
    assert lines[1].split() == ["PostgreSQL:", "taskqueue-db", "/", "the", "best", "of", "django-tasks-db,",
                                "procrastinate,", "huey-pg:", "throughput", "3.00x", "(huey-pg),", "p50", "0.40x",
                                "(procrastinate),", "chord", "0.25x", "(huey-pg)"]
    # A peer that failed (no p50) is left out of that metric's best rather than counted as best.
    assert lines[2].split() == ["SQLite:", "taskqueue-sqlite", "/", "the", "best", "of", "huey-sqlite,",
                                "django-tasks-db-sqlite:", "throughput", "1.67x", "(huey-sqlite),", "p50", "0.43x",
                                "(huey-sqlite)"]


def test_the_database_margins_need_the_taskqueue_column_and_a_peer_of_that_database():
    assert report.format_database_margins(DB_TABLE, ["taskqueue-db", "huey-sqlite"]) == ""
    only_pg = report.format_database_margins(DB_TABLE, ["taskqueue-db", "procrastinate"]).splitlines()
    assert len(only_pg) == 2 and only_pg[1].split()[:7] == ["PostgreSQL:", "taskqueue-db", "/", "the", "best", "of",
                                                            "procrastinate:"]
    assert report.format_database_margins(TABLE, SYSTEMS_RUN) == ""


def test_the_database_queues_are_selectable_by_name_but_not_in_the_default_run(monkeypatch):
    from benchmarks.adapters import DATABASE_PEERS

    assert set(DATABASE_PEERS).isdisjoint(SYSTEMS)
    assert select_systems("taskqueue-db,django-tasks-db,procrastinate,huey-pg") == [
        "taskqueue-db", "django-tasks-db", "procrastinate", "huey-pg"]
    assert select_systems("taskqueue-sqlite,huey-sqlite,django-tasks-db-sqlite")[1:] == [
        "huey-sqlite", "django-tasks-db-sqlite"]
    monkeypatch.setattr(common, "AMQP_PORT", free_port())
    assert not set(DATABASE_PEERS) & set(select_systems(None))
    with_them = select_systems(None, database_queues=True)  # python -m benchmarks run --database-queues
    assert with_them[:len(with_them) - 7] == select_systems(None)
    assert with_them[-7:] == ["taskqueue-db", "taskqueue-sqlite", *DATABASE_PEERS]
    assert select_systems("huey-pg", database_queues=True).count("huey-pg") == 1


def test_copies_runs_n_commands_under_one_shell_that_waits_for_them():
    line = common.copies(["python", "-m", "x", "--name", "a b"], 2)
    assert line[:2] == ["/bin/sh", "-c"]
    assert line[2] == "trap \"wait; exit 0\" TERM INT; python -m x --name 'a b' & python -m x --name 'a b' & wait"
