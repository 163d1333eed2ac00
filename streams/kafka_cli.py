"""The Kafka tool subcommands of ``policyloop``; streams/cli.py wires ``add_kafka_commands``.

policyloop topics create [--partitions N]          create the contract topics (idempotent)
policyloop produce FILE [--rate N] [--batch N] [--wall-clock] [--create-topics]
                                                    publish a replay file to its topics
policyloop dump --out DIR [--idle-ms MS]             output topics -> replay output layout

Each takes ``--bootstrap-servers`` and ``--topic-prefix``, which override the environment
(streams/settings.py). Exit status: 0 ok, 1 Kafka or I/O failure (one line on stderr),
2 bad settings, arguments or missing input.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson
from aiokafka.errors import KafkaError

from streams.settings import Settings, SettingsError


def add_kafka_commands(subparsers: Any) -> None:
    """Add ``topics``, ``produce`` and ``dump`` to an ``add_subparsers()`` object."""
    topics = subparsers.add_parser("topics", help="Kafka topics of the contract")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    create = topics_sub.add_parser("create", help="create every input and output topic")
    create.add_argument("--partitions", type=int, help="partitions (default: from settings)")
    _connection_flags(create)
    create.set_defaults(func=_cmd_topics_create)

    produce = subparsers.add_parser("produce", help="publish a replay file to Kafka")
    produce.add_argument("file")
    produce.add_argument("--rate", type=float, help="records a second (default: unthrottled)")
    produce.add_argument(
        "--batch",
        type=int,
        default=50_000,
        help="records between submissions of every partition's open batch (default: 50000); "
        "small values keep all partitions moving together, as a live feed would",
    )
    produce.add_argument(
        "--wall-clock",
        action="store_true",
        help="stamp records with the broker's clock instead of the line's timestamp_ms (a "
        "historical file stamped with its event time can fall to time-based retention)",
    )
    produce.add_argument("--create-topics", action="store_true", help="create missing topics first")
    _connection_flags(produce)
    produce.set_defaults(func=_cmd_produce)

    dump = subparsers.add_parser("dump", help="output topics -> replay output layout")
    dump.add_argument("--out", required=True)
    dump.add_argument("--idle-ms", type=int, default=2000, help="stop after this long idle")
    _connection_flags(dump)
    dump.set_defaults(func=_cmd_dump)


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-servers", help="overrides POLICYLOOP_BOOTSTRAP_SERVERS")
    parser.add_argument("--topic-prefix", help="overrides POLICYLOOP_TOPIC_PREFIX")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_overrides(
        bootstrap_servers=args.bootstrap_servers, topic_prefix=args.topic_prefix
    )


def _run(args: argparse.Namespace, command: Any) -> int:
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"policyloop {args.command}: {exc}", file=sys.stderr)
        return 2
    try:
        code: int = asyncio.run(command(args, settings))
    except (KafkaError, OSError, RuntimeError, TimeoutError) as exc:
        print(
            f"policyloop {args.command}: {type(exc).__name__}: {exc} "
            f"(bootstrap servers {settings.bootstrap_servers})",
            file=sys.stderr,
        )
        return 1
    return code


def _cmd_topics_create(args: argparse.Namespace) -> int:
    return _run(args, _topics_create)


async def _topics_create(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka_topics import contract_topics, create_topics

    created = await create_topics(settings, args.partitions)
    for spec in contract_topics(settings, args.partitions):
        state = "created" if spec.name in created else "exists"
        print(f"{spec.name}\t{spec.partitions} partitions\t{dict(spec.config)}\t{state}")
    return 0


def _cmd_produce(args: argparse.Namespace) -> int:
    if not Path(args.file).is_file():
        print(f"policyloop produce: no such file: {args.file}", file=sys.stderr)
        return 2
    return _run(args, _produce)


async def _produce(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka_topics import create_topics
    from streams.produce import MissingTopicsError, produce_file

    if args.create_topics:
        await create_topics(settings)
    try:
        result = await produce_file(
            Path(args.file),
            settings,
            batch=args.batch,
            rate=args.rate,
            wall_clock=args.wall_clock,
        )
    except MissingTopicsError as exc:
        print(f"policyloop produce: {exc}", file=sys.stderr)
        return 2
    print(
        f"produced {result.records} records and {result.dead_letters} dead letters "
        f"({result.lines} lines) in {result.elapsed_s:.2f}s = {result.rate:,.0f} records/s "
        f"to {settings.bootstrap_servers}",
        file=sys.stderr,
    )
    print(orjson.dumps(result.sent, option=orjson.OPT_SORT_KEYS).decode())
    return 0


def _cmd_dump(args: argparse.Namespace) -> int:
    return _run(args, _dump)


async def _dump(args: argparse.Namespace, settings: Settings) -> int:
    from streams.dump import dump_outputs

    summary = await dump_outputs(settings, Path(args.out), idle_ms=args.idle_ms)
    records, elapsed = summary["records"], summary["elapsed_s"]
    busy = elapsed - summary["idle_s"]
    print(
        f"dumped {records} records in {elapsed:.2f}s ({summary['idle_s']:.1f}s of it idle) "
        f"= {records / max(busy, 1e-9):,.0f} records/s -> {args.out}",
        file=sys.stderr,
    )
    return 0
