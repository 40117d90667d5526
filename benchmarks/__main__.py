"""Benchmarks for taskqueue on this machine.

``python -m benchmarks run [--quick] [--rounds N] [--tasks N] [--systems a,..] [--scenarios a,..] [--database-queues]``
    Compares taskqueue with Celery 5 (three result set-ups), Huey and Dramatiq on Redis, and
    taskqueue with Celery (django-db results) on RabbitMQ when it answers: throughput,
    round-trip latency, chord, chain and worker memory, 2 worker processes each, scenarios in
    alternation, medians of rounds; then, once per system, the mixed load (small round trips while
    1-second tasks arrive, 8 worker processes). Prints the machine facts, the table and the context
    limits of Redis, PostgreSQL and RabbitMQ (one producer's publishes with confirms); writes
    benchmarks/results/latest.json and latest.png.
    With --database-queues (or named with --systems): taskqueue's database broker (taskqueue-db on
    PostgreSQL, taskqueue-sqlite on SQLite) and the database queues (django-tasks-db, procrastinate,
    huey-pg; huey-sqlite, django-tasks-db-sqlite), each compared with taskqueue on the same database.
    See docs/performance.md.

``python -m benchmarks latency [--rounds N]``
    taskqueue's delay().get() round trip only: p50/p95/p99.

``python -m benchmarks admin [--rows N] [--rounds N] [--keep]``
    The admin's pages with 1,000,000 result rows on a throwaway PostgreSQL database: server time
    of the list (each filter, search by id), the detail, a 1,000-member chord, the dashboard and
    /metrics. See benchmarks/admin_scale.py and docs/performance.md ("Admin at scale").

``python -m benchmarks awaits [--tasks N] [--seconds S] [--concurrency C] [--rounds R] [--systems a,b]``
    Many tasks that wait on I/O sent at once to one worker process: taskqueue's asyncio pool
    (`async def` tasks) against the peers' thread pools. See benchmarks/awaits.py.

``python -m benchmarks idle [--seconds S] [--systems a,b] [--pauses N] [--pause-seconds P]``
    What an idle `runworker -c 2` costs, one system at a time: CPU as a share of one core over S
    seconds (default 20), and the round trip of the first task after the idle spell against a warm
    one, then the median of N (5) more first round trips, each after P (3) seconds of nothing. By
    default taskqueue on each broker: Redis, the database broker on PostgreSQL and on SQLite,
    RabbitMQ (when it answers). See benchmarks/idle.py.

``python -m benchmarks scale [--brokers redis,database,sqlite] [--quick] [--sizes N,N,...] [--backlog N] [--rows N]``
    How cost grows with the work, one broker at a time: chords of 1,000 / 10,000 / 100,000
    members (time a member, peak memory of the workers, Redis and the PostgreSQL backends), enqueue
    and reserve with 0 and 1,000,000 messages waiting, get() with 0 and 10,000,000 result rows, and
    `manage.py taskqueue cleanup` of those rows while round trips run. `--quick`: chords of 1,000
    and 10,000, 100,000 waiting, 1,000,000 rows. See benchmarks/scale.py and docs/performance.md
    ("Growth"); writes benchmarks/results/scale.json.

``python -m benchmarks chart [--output NAME]``
    Re-print the table and re-draw the PNG from benchmarks/results/NAME.json.

Throwaway PostgreSQL databases and RabbitMQ vhosts are named bench_*; Redis DBs 13 (taskqueue),
14 (Celery) and 15 (Huey, Dramatiq, redis-benchmark) are used through their own keys only, never
flushed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

from .adapters import ALL_SYSTEMS, AMQP_SYSTEMS, DATABASE_PEERS, DATABASE_SYSTEMS, SYSTEMS
from .common import RESULTS_DIR, rabbitmq_problem


def latency_only(rounds: int) -> None:
    from .adapters.taskqueue_adapter import TaskqueueAdapter

    adapter = TaskqueueAdapter()
    adapter.setup()
    try:
        adapter.start(warmup=50)
        result = adapter.latency(rounds, budget_s=float("inf"))
    finally:
        adapter.stop()
        adapter.teardown()
    print(f"taskqueue delay().get() round trip over {result['samples']} calls (Redis broker, PostgreSQL results): "
          f"p50 {result['p50_ms']:.2f} ms, p95 {result['p95_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms")


def print_facts(facts: dict) -> None:
    print(f"machine: {facts['cores']} cores ({facts['physical_cores']} physical) {facts['cpu_model']}, "
          f"{facts['memory_gb']} GB, {facts['platform']}")
    rabbitmq = f", RabbitMQ {facts['rabbitmq']}" if facts.get("rabbitmq") else ""
    print(f"Python {facts['python']}, Redis {facts['redis']}, PostgreSQL {facts['postgresql']}{rabbitmq}")
    print("packages: " + ", ".join(f"{k} {v}" for k, v in facts["packages"].items() if v))


def print_limits(limits: dict) -> None:
    redis, pg = limits["redis"], limits["postgresql"]
    if "lpush_per_s" in redis:
        print(f"Redis (redis-benchmark -q -t lpush,rpop -n 100000): LPUSH {redis['lpush_per_s']:,.0f}/s, "
              f"RPOP {redis.get('rpop_per_s', 0):,.0f}/s")
    else:
        print(f"Redis: {redis}")
    if "single_insert_commits_per_s" in pg:
        print(f"PostgreSQL via the Django ORM: {pg['single_insert_commits_per_s']:,.0f} single-row insert commits/s, "
              f"bulk_create {pg['bulk_create_rows_per_s']:,.0f} rows/s (synchronous_commit={pg['synchronous_commit']})")
    else:
        print(f"PostgreSQL: {pg}")
    rabbitmq = limits.get("rabbitmq", {})
    if "confirmed_publish" in rabbitmq:
        kinds = ", ".join(f"{label} {f['per_s']:,.0f}/s (p50 {f['p50_ms']:.2f} ms)"
                          for label, f in rabbitmq["confirmed_publish"].items())
        print(f"RabbitMQ, one producer, each publish waiting for its confirm: {kinds}")
    elif rabbitmq:
        print(f"RabbitMQ: {rabbitmq}")


def select_systems(requested: str | None, database_queues: bool = False) -> list[str]:
    """The --systems list, or every system; the RabbitMQ ones are left out of the default with a
    note when RabbitMQ does not answer, and asked for by name they stop the run with the reason.
    `database_queues`: also taskqueue's database broker and the database queues, on both databases."""
    extra = [*DATABASE_SYSTEMS, *DATABASE_PEERS] if database_queues else []
    if requested is None:
        problem = rabbitmq_problem()
        if problem is None:
            return [*SYSTEMS, *extra]
        print(f"note: skipping {', '.join(AMQP_SYSTEMS)}: {problem}", flush=True)
        return [s for s in SYSTEMS if s not in AMQP_SYSTEMS] + extra
    systems = [s.strip() for s in requested.split(",") if s.strip()]
    systems += [s for s in extra if s not in systems]
    unknown = set(systems) - set(ALL_SYSTEMS)
    if unknown:
        sys.exit(f"unknown systems: {', '.join(sorted(unknown))} (choose from {', '.join(ALL_SYSTEMS)})")
    on_rabbitmq = [s for s in systems if s in AMQP_SYSTEMS]
    if on_rabbitmq and (problem := rabbitmq_problem()):
        sys.exit(f"{', '.join(on_rabbitmq)} need RabbitMQ: {problem}")
    return systems


def run(args: argparse.Namespace) -> None:
    from . import machine, report
    from .runner import SCENARIOS, Options, medians
    from .runner import run as run_all

    systems = select_systems(args.systems, args.database_queues)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown or not scenarios:
        sys.exit(f"unknown scenarios: {', '.join(sorted(unknown)) or '(none given)'} "
                 f"(choose from {', '.join(SCENARIOS)})")
    options = Options(systems=systems, n=args.tasks or (1_000 if args.quick else 10_000),
                      rounds=args.rounds or (1 if args.quick else 3),
                      latency_rounds=args.latency_rounds or (100 if args.quick else 300),
                      latency_budget_s=args.latency_budget, throughput_budget_s=args.throughput_budget,
                      scenarios=[s for s in SCENARIOS if s in scenarios],
                      mixed_long_n=args.mixed_long or (30 if args.quick else 100))
    facts = machine.facts()
    print_facts(facts)
    print(f"options: {options}\n", flush=True)
    load_before = os.getloadavg()
    started = time.monotonic()
    samples, startup = run_all(options)
    elapsed = time.monotonic() - started
    facts["loadavg_before"], facts["loadavg_after"] = load_before, os.getloadavg()
    limits = {} if args.skip_limits else machine.context_limits()
    table = medians(samples, systems)

    print(f"\nmedians of {options.rounds} round(s), {elapsed:.0f} s; load average before "
          f"{load_before[0]:.2f}, after {facts['loadavg_after'][0]:.2f} (other work on this machine adds noise):")
    print(report.format_table(table, systems))
    for margins in (report.format_broker_margins(table, systems), report.format_database_margins(table, systems)):
        if margins:
            print(margins)
    for system, errors in samples.errors.items():
        for scenario, message in errors.items():
            print(f"  {system} {scenario}: {message.splitlines()[0][:160]}")
    if limits:
        print("\ncontext limits:")
        print_limits(limits)

    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    payload = {"date": stamp, "machine": facts, "options": vars(options), "elapsed_s": elapsed, "medians": table,
               "ratios_taskqueue_over": report.ratios(table, systems),
               "ratio_baselines": {s: report.baseline(s) for s in systems if report.baseline(s) is not None},
               "errors": samples.errors, "startup": startup, "samples": samples.data, "context_limits": limits,
               "markdown_table": report.format_markdown(table, systems)}
    out = RESULTS_DIR / f"{args.output}.json"
    report.write_json(out, payload)
    report.write_chart(RESULTS_DIR / f"{args.output}.png", table, systems,
                       f"taskqueue vs peers, {facts['cores']} cores, N={options.n}, medians of {options.rounds} "
                       f"round(s) ({stamp})")
    print(f"\nwrote {out} and {out.with_suffix('.png')}")


def chart(args: argparse.Namespace) -> None:
    import json

    from . import report

    payload = json.loads((RESULTS_DIR / f"{args.output}.json").read_text())
    systems, table, options = payload["options"]["systems"], payload["medians"], payload["options"]
    print(report.format_table(table, systems))
    for margins in (report.format_broker_margins(table, systems), report.format_database_margins(table, systems)):
        if margins:
            print(margins)
    report.write_chart(RESULTS_DIR / f"{args.output}.png", table, systems,
                       f"taskqueue vs peers, {payload['machine']['cores']} cores, N={options['n']}, medians of "
                       f"{options['rounds']} round(s) ({payload['date']})")
    print(f"wrote {RESULTS_DIR / args.output}.png")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lat = sub.add_parser("latency", help="taskqueue's round trip only")
    lat.add_argument("--rounds", type=int, default=300)
    r = sub.add_parser("run", help="compare taskqueue with Celery, Huey and Dramatiq (Redis) and Celery (RabbitMQ)")
    r.add_argument("--quick", action="store_true",
                   help="N=1,000, one round, 100 round trips, 30 slow tasks in the mixed load")
    r.add_argument("--rounds", type=int, default=None, help="rounds per scenario (default 3, 1 with --quick)")
    r.add_argument("--tasks", "-n", type=int, default=None, help="tasks in the throughput scenario (default 10,000)")
    r.add_argument("--latency-rounds", type=int, default=None, help="round trips per latency run (default 300)")
    r.add_argument("--latency-budget", type=float, default=10.0,
                   help="stop a latency run after this many seconds even if fewer round trips were made")
    r.add_argument("--throughput-budget", type=float, default=40.0,
                   help="shrink a system's throughput batch (to a multiple of 1,000) if a 1,000-task probe says "
                        "N would take longer than this many seconds")
    r.add_argument("--systems", default=None,
                   help=f"comma-separated subset of {','.join(ALL_SYSTEMS)} (default: {','.join(SYSTEMS)}; "
                        f"{','.join(AMQP_SYSTEMS)} only when RabbitMQ answers on 127.0.0.1:5672 and rabbitmqctl can "
                        "make their vhosts; the database broker and the database queues only when named)")
    r.add_argument("--database-queues", action="store_true",
                   help="also run taskqueue's database broker (taskqueue-db, taskqueue-sqlite) and the database "
                        f"queues ({','.join(DATABASE_PEERS)}), each compared on its own database")
    r.add_argument("--scenarios", default="throughput,latency,chord,chain,mixed",
                   help="comma-separated subset of throughput,latency,chord,chain,mixed (default: all)")
    r.add_argument("--mixed-long", type=int, default=None,
                   help="1-second tasks in the mixed load (default 100, 30 with --quick)")
    r.add_argument("--skip-limits", action="store_true",
                   help="skip redis-benchmark, the PostgreSQL insert rates and the RabbitMQ confirm rates")
    r.add_argument("--output", default="latest", help="basename of the JSON/PNG files in benchmarks/results/")
    a = sub.add_parser("admin", help="time the admin's pages with 1,000,000 result rows")
    a.add_argument("--rows", type=int, default=1_000_000)
    a.add_argument("--rounds", type=int, default=5)
    a.add_argument("--keep", action="store_true", help="keep the database (bench_admin_<pid>) afterwards")
    w = sub.add_parser("awaits", help="many waiting tasks on one worker process: asyncio pool against threads")
    w.add_argument("--tasks", "-n", type=int, default=100)
    w.add_argument("--seconds", type=float, default=1.0)
    w.add_argument("--concurrency", type=int, default=100)
    w.add_argument("--rounds", type=int, default=3)
    w.add_argument("--systems", default="taskqueue,celery-redis,huey,dramatiq")
    i = sub.add_parser("idle", help="CPU of an idle worker per broker, and the first task after idle")
    i.add_argument("--seconds", type=float, default=20.0)
    i.add_argument("--pauses", type=int, default=5, help="more first round trips, each after a pause (default 5)")
    i.add_argument("--pause-seconds", type=float, default=3.0, help="each pause (default 3 s)")
    i.add_argument("--systems", default=None,
                   help="default: taskqueue,taskqueue-db,taskqueue-sqlite (and taskqueue-amqp when RabbitMQ answers)")
    g = sub.add_parser("scale", help="chords, waiting backlogs and result rows as they grow, per broker")
    g.add_argument("--brokers", default="redis,database,sqlite", help="comma-separated subset of redis,database,sqlite")
    g.add_argument("--quick", action="store_true", help="chords of 1k and 10k, 100k waiting, 1M result rows")
    g.add_argument("--sizes", default=None, help="chord sizes, comma-separated (default 1000,10000,100000)")
    g.add_argument("--backlog", type=int, default=None, help="messages waiting (default 1,000,000)")
    g.add_argument("--rows", type=int, default=None, help="expired result rows (default 10,000,000)")
    g.add_argument("--parts", default="chords,backlog,results", help="comma-separated subset of chords,backlog,results")
    g.add_argument("--enqueue", type=int, default=10_000, help="messages sent and reserved a round (default 10,000)")
    g.add_argument("--rounds", type=int, default=5, help="rounds at each backlog level (default 5)")
    g.add_argument("--batch", type=int, default=5_000, help="the cleanup's --batch-size (default 5,000)")
    g.add_argument("--output", default="scale", help="basename of the JSON in benchmarks/results/")
    c = sub.add_parser("chart", help="re-draw the table and PNG from a saved JSON")
    c.add_argument("--output", default="latest", help="basename in benchmarks/results/")
    args = parser.parse_args()
    sys.path.insert(0, os.getcwd())
    if args.command == "latency":
        latency_only(args.rounds)
    elif args.command == "chart":
        chart(args)
    elif args.command == "awaits":
        from . import awaits

        summary = awaits.run(args.systems.split(","), args.tasks, args.seconds, args.concurrency, args.rounds)
        awaits.report(summary, args.tasks, args.seconds, args.concurrency)
    elif args.command == "idle":
        from . import idle

        idle.main(args.systems, args.seconds, args.pauses, args.pause_seconds)
    elif args.command == "scale":
        from . import scale

        scale.run(args.brokers, args.quick, args.sizes, args.backlog, args.rows, args.parts, args.output,
                  args.enqueue, args.rounds, args.batch)
    elif args.command == "admin":
        from . import admin_scale

        admin_scale.run(args.rows, args.rounds, args.keep)
    else:
        run(args)


if __name__ == "__main__":
    main()
