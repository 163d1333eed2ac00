"""The ``policyloop`` command line.

policyloop simulate --seed N --days D --out FILE   a synthetic market in the replay format
policyloop replay INPUT --out DIR [--jobs N]       the pipeline over a file
policyloop schemas export [--check] [--dir DIR]    generated JSON Schemas + AsyncAPI
policyloop demo [--out DIR]                        simulate, replay and summarise
policyloop policy show|history|rollback VERSION    the policy archive (--archive FILE)
policyloop worker                                  the pipeline on Kafka (POLICYLOOP_* env)
policyloop topics create | produce FILE | dump --out DIR   Kafka tools
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.settings import Settings
    from streams.worker.runner import RunnerOptions


def _cmd_simulate(args: argparse.Namespace) -> int:
    from streams.simulator import SimulationConfig, simulate

    config = SimulationConfig(seed=args.seed, days=args.days, symbols=args.symbols)
    started = time.perf_counter()
    simulate(config, Path(args.out))
    print(
        f"simulated {args.days} days, seed {args.seed} -> {args.out} "
        f"({time.perf_counter() - started:.1f}s)",
        file=sys.stderr,
    )
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from streams.replay import run_replay

    input_path = Path(args.input)
    if not input_path.is_file():
        print(f"policyloop replay: no such file: {input_path}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    progress = _progress("replay") if args.progress else None
    if args.jobs < 1:
        print("policyloop replay: --jobs must be at least 1", file=sys.stderr)
        return 2
    result = run_replay(input_path, Path(args.out), progress=progress, jobs=args.jobs)
    elapsed = time.perf_counter() - started
    totals = result.summary["input_totals"]
    print(
        f"replayed {totals['records']} records ({result.lines} lines) in {elapsed:.2f}s "
        f"= {totals['records'] / max(elapsed, 1e-9):,.0f} records/s -> {args.out}",
        file=sys.stderr,
    )
    return 0


def _cmd_schemas(args: argparse.Namespace) -> int:
    from streams.schema_export import export

    stale = export(Path(args.dir), check=args.check)
    if args.check:
        if stale:
            print("schemas are stale (run `policyloop schemas export`): " + ", ".join(stale))
            return 1
        print("schemas are up to date")
        return 0
    print(
        f"wrote {len(stale)} changed schema files to {args.dir}"
        if stale
        else "schemas already up to date"
    )
    return 0


def worker_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """``settings`` with the ``policyloop worker`` tuning flags that were given: a flag left
    out keeps the value of the environment (or its default). SettingsError when out of range."""
    return settings.with_overrides(
        checkpoint_interval_s=args.checkpoint_interval,
        idle_flush_s=args.idle_flush,
        idle_timeout_s=args.idle_timeout,
        pipeline_batch_records=args.max_records,
    )


def worker_options(args: argparse.Namespace, settings: Settings) -> RunnerOptions:
    """The runner options ``policyloop worker`` runs with (see ``worker_settings``)."""
    from streams.worker.runner import RunnerOptions

    return RunnerOptions.from_settings(worker_settings(args, settings))


def _cmd_worker(args: argparse.Namespace) -> int:
    from streams.settings import Settings, SettingsError
    from streams.worker import app
    from streams.worker.runner import RunnerOptions

    try:
        settings = worker_settings(args, Settings.from_env())
    except SettingsError as exc:
        print(f"policyloop worker: {exc}", file=sys.stderr)
        return 2
    roles = ("sequencer", "pipeline") if args.role == "all" else (args.role,)
    options = RunnerOptions.from_settings(settings)
    app.run_worker(settings, roles=roles, options=options, loglevel=args.loglevel)
    return 0


def _add_worker_command(sub: Any) -> None:
    from streams.settings import settings_help

    work = sub.add_parser(
        "worker",
        help="run the pipeline on Kafka (settings from POLICYLOOP_*)",
        description="Run the pipeline as a streaming service on Kafka. Settings come from\n"
        "the environment; the tuning flags below override it only when given.",
        epilog="environment:\n" + settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    work.add_argument(
        "--role",
        choices=("all", "sequencer", "pipeline"),
        default="all",
        help="the stages this process runs (default: all, i.e. both)",
    )
    work.add_argument(
        "--checkpoint-interval",
        type=float,
        metavar="SECONDS",
        help="seconds between state checkpoints (default: POLICYLOOP_CHECKPOINT_INTERVAL_S)",
    )
    work.add_argument(
        "--idle-timeout",
        type=float,
        metavar="SECONDS",
        help="seconds an input partition is caught up with nothing new before it stops "
        "holding the watermark back (default: POLICYLOOP_IDLE_TIMEOUT_S)",
    )
    work.add_argument(
        "--idle-flush",
        type=float,
        metavar="SECONDS",
        help="seconds with every input partition idle before buffered records are released, "
        "as replay does at the end of its file (default: POLICYLOOP_IDLE_FLUSH_S)",
    )
    work.add_argument(
        "--max-records",
        type=int,
        metavar="N",
        help="sequenced records per pipeline transaction (default: "
        "POLICYLOOP_PIPELINE_BATCH_RECORDS)",
    )
    work.add_argument(
        "--loglevel",
        default="warning",
        help="log level of the worker process: debug, info, warning, error (default: warning)",
    )
    work.set_defaults(func=_cmd_worker)


def _cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return run_demo(Path(args.out), seed=args.seed, days=args.days)


def _progress(label: str) -> Callable[[int], None]:
    state = {"last": 0.0}

    def report(lines: int) -> None:
        now = time.perf_counter()
        if now - state["last"] >= 1.0:
            state["last"] = now
            print(f"  {label}: {lines:,} lines", file=sys.stderr, flush=True)

    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="policyloop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="write a deterministic synthetic market")
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--days", type=int, default=30)
    sim.add_argument("--symbols", type=int, default=24)
    sim.add_argument("--out", required=True)
    sim.set_defaults(func=_cmd_simulate)

    rep = sub.add_parser("replay", help="run the pipeline over a replay file")
    rep.add_argument("input")
    rep.add_argument("--out", required=True)
    rep.add_argument("--progress", action="store_true", help="print progress to stderr")
    rep.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="run the strategy lanes in N processes (default 1: all in this one); the "
        "output is byte-identical for every N",
    )
    rep.set_defaults(func=_cmd_replay)

    sch = sub.add_parser("schemas", help="JSON Schemas and AsyncAPI document")
    sch_sub = sch.add_subparsers(dest="schemas_command", required=True)
    exp = sch_sub.add_parser("export", help="write schemas/ (or --check them)")
    exp.add_argument("--dir", default="schemas")
    exp.add_argument("--check", action="store_true", help="exit 1 when schemas are stale")
    exp.set_defaults(func=_cmd_schemas)

    from streams.kafka_cli import add_kafka_commands
    from streams.policy_cli import add_policy_commands

    add_policy_commands(sub)
    add_kafka_commands(sub)

    _add_worker_command(sub)

    demo = sub.add_parser("demo", help="simulate a market, replay it and summarise")
    demo.add_argument("--out", default="demo-out")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--days", type=int, default=30)
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
