"""The Faust app of ``policyloop worker``: lifecycle, web server, tasks and timers.

Faust runs the worker process (signals, logging, services), serves ``/metrics`` on its web
server, and runs the two stages as tasks. The stages use aiokafka's batch API directly
(``getmany``) rather than Faust's per-event streams, whose ~80 us per event would cap the
worker far below the pipeline's own rate; Faust's group membership is still what the stages
use underneath (aiokafka consumer groups). No business logic lives here.

Faust's app data directory (``datadir``) is ``settings.data_dir / <app name>``, never the
working directory.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import faust
from faust.app.base import BootStrategy
from prometheus_client import CollectorRegistry, generate_latest

from processors.core.base import MetricSample
from processors.core.metric_names import WATERMARK_SECONDS
from processors.pipeline import PipelineConfig
from streams.kafka_topics import NewTopicSpec, create_topics, topic_partitions
from streams.metrics import PipelineCollector
from streams.settings import Settings
from streams.worker.clients import Clients, KafkaClients
from streams.worker.framing import sequenced_message_limit
from streams.worker.runner import (
    GlobalRunner,
    LaneRunner,
    RunnerOptions,
    StageGroup,
    StageTopics,
    global_group,
    lane_group,
)
from streams.worker.sequencer import Sequencer
from streams.worker.stats import WorkerStats

log = logging.getLogger(__name__)

SEQUENCED = "policyloop-sequenced"
LANE_ITEMS = "policyloop-lane-items"
STATE = "policyloop-state"


def internal_topics(settings: Settings) -> dict[str, str]:
    return {
        "sequenced": settings.topic(SEQUENCED),
        "lane_items": settings.topic(LANE_ITEMS),
        "state": settings.topic(STATE),
    }


def stage_topics(settings: Settings) -> StageTopics:
    names = internal_topics(settings)
    return StageTopics(
        names["sequenced"], names["lane_items"], names["state"], settings.lane_partitions
    )


def internal_topic_specs(settings: Settings) -> list[NewTopicSpec]:
    names = internal_topics(settings)
    week = str(7 * 86_400_000)
    return [
        NewTopicSpec(
            names["sequenced"],
            settings.lane_partitions,
            {
                "cleanup.policy": "delete",
                "retention.ms": week,
                # every frame of an input record within max_record_bytes fits
                "max.message.bytes": str(sequenced_message_limit(settings.max_record_bytes)),
            },
        ),
        NewTopicSpec(
            names["lane_items"],
            1,
            {
                "cleanup.policy": "delete",
                "retention.ms": week,
                "max.message.bytes": str(LANE_ITEMS_MESSAGE_BYTES),
            },
        ),
        NewTopicSpec(
            names["state"],
            settings.lane_partitions + 1,  # one per lane runner, and the global runner's
            {"cleanup.policy": "compact", "max.message.bytes": str(2 * 1024 * 1024)},
        ),
    ]


LANE_ITEMS_MESSAGE_BYTES = 8 * 1024 * 1024
"""``max.message.bytes`` of the lane-items topic: a frame holds up to 2,000 items (decision
rows of ~200 bytes, summaries of a few KiB)."""


class WorkerService:
    """The stages of one worker process, with their shared metrics registry.

    ``clients`` builds the stages' Kafka clients (default: aiokafka with ``settings``);
    ``prepare`` creates topics with the admin client of ``settings`` either way.
    """

    def __init__(
        self,
        settings: Settings,
        options: RunnerOptions | None = None,
        config: PipelineConfig | None = None,
        roles: tuple[str, ...] = ("all",),
        clients: Clients | None = None,
    ):
        self.settings = settings
        self.clients: Clients = clients or KafkaClients(settings)
        self.options = options or RunnerOptions()
        self.config = config
        self.roles = roles
        self.registry = CollectorRegistry(auto_describe=True)
        self.stats = WorkerStats(self.registry)
        self.stopping = asyncio.Event()
        self.lanes: StageGroup | None = None
        self.global_runner: StageGroup | None = None
        self.registry.register(PipelineCollector(self._pipeline_samples))

    def _pipeline_samples(self) -> list[Any]:
        return stage_samples(self.lanes, self.global_runner)

    def metrics_text(self) -> bytes:
        return generate_latest(self.registry)

    async def prepare(self) -> dict[str, list[int]]:
        """Create missing topics; the input partitions the watermark must wait for."""
        from models.topics import INPUT_TOPICS

        specs = internal_topic_specs(self.settings)
        await create_topics(self.settings, extra_topics=specs)
        check_internal_partitions(
            specs, await topic_partitions(self.settings, [s.name for s in specs])
        )
        deployed = {self.settings.topic(name): name for name in INPUT_TOPICS}
        found = await topic_partitions(self.settings, list(deployed))
        return {deployed[name]: ids for name, ids in found.items()}

    async def run(self) -> None:
        partitions = await self.prepare()
        topics = stage_topics(self.settings)
        tasks = []
        if "all" in self.roles or "sequencer" in self.roles:
            sequencer = Sequencer(self.settings, topics.sequenced, self.stats, clients=self.clients)
            tasks.append(asyncio.create_task(sequencer.run(self.stopping)))
        if "all" in self.roles or "pipeline" in self.roles:
            self.lanes = lane_group(
                self.settings,
                topics,
                partitions,
                self.stats,
                self.options,
                self.config,
                clients=self.clients,
            )
            self.global_runner = global_group(
                self.settings, topics, self.stats, self.options, self.config, clients=self.clients
            )
            tasks.append(asyncio.create_task(self.lanes.run(self.stopping)))
            tasks.append(asyncio.create_task(self.global_runner.run(self.stopping)))
        await asyncio.gather(*tasks)


class InternalTopicsError(RuntimeError):
    """An internal topic exists with another number of partitions than the settings need."""


def check_internal_partitions(specs: list[NewTopicSpec], found: dict[str, list[int]]) -> None:
    """Refuse to start on internal topics made for another ``POLICYLOOP_LANE_PARTITIONS`` (or
    by an earlier version, with one sequenced partition): the lanes would be routed to
    partitions that do not exist, or checkpoints written where no runner reads them."""
    for spec in specs:
        have = len(found.get(spec.name, []))
        if have != spec.partitions:
            raise InternalTopicsError(
                f"internal topic {spec.name} has {have} partitions, these settings need "
                f"{spec.partitions} (from POLICYLOOP_LANE_PARTITIONS); set "
                "POLICYLOOP_LANE_PARTITIONS to what the topics were made for, or start a new "
                "POLICYLOOP_CONSUMER_GROUP (its sequencer reads the input topics from the "
                "start, its runners build their state anew)"
            )


def stage_samples(lanes: StageGroup | None, global_runner: StageGroup | None) -> list[MetricSample]:
    """The pipeline metrics of the partitions this worker holds: the lane runners' samples
    added up (the watermark: the latest), and the global runner's."""
    totals: dict[tuple[str, Any], float] = {}
    for runner in lanes.runners.values() if lanes is not None else ():
        assert isinstance(runner, LaneRunner)
        for sample in runner.pipeline.metrics():
            key = (sample.name, sample.labels)
            if sample.name == WATERMARK_SECONDS:
                totals[key] = max(totals.get(key, sample.value), sample.value)
            else:
                totals[key] = totals.get(key, 0.0) + sample.value
    samples = [MetricSample(name, labels, value) for (name, labels), value in totals.items()]
    for runner in global_runner.runners.values() if global_runner is not None else ():
        assert isinstance(runner, GlobalRunner)
        samples.extend(runner.metrics())
    return samples


class _ShellBoot(BootStrategy):
    """Start Faust's web server, timers and tasks, but none of its Kafka clients.

    The stages bring their own aiokafka clients. Faust's consumer would join a consumer group
    of its own and hold the tasks back until that group's (empty) table recovery completed:
    a stall there, a broker restart or a slow join would keep the stages from starting
    while ``/metrics`` already answered."""

    enable_kafka = False


class ShellApp(faust.App):
    """The Faust app of the worker: a process shell without Faust's own Kafka clients."""

    BootStrategy = _ShellBoot


def app_name(settings: Settings) -> str:
    """The Faust app's name (also the folder of its data under ``settings.data_dir``)."""
    return f"{settings.topic_prefix}{settings.consumer_group}-app"


def faust_datadir(settings: Settings) -> Path:
    """Faust's app data directory: ``settings.data_dir / app_name(settings)``."""
    return settings.data_dir / app_name(settings)


def build_app(service: WorkerService) -> faust.App:
    """The Faust app running ``service``: /metrics page, the stages' task, a heartbeat.

    Creates ``settings.data_dir`` (Faust creates only the last level of its datadir)."""
    settings = service.settings
    datadir = faust_datadir(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = ShellApp(
        app_name(settings),
        # Faust formats its datadir with str.format(conf=...): double any brace of the path
        datadir=str(datadir).replace("{", "{{").replace("}", "}}"),
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        web_host=settings.metrics_host,
        web_port=settings.metrics_port,
        web_in_thread=False,
        store="memory://",
        autodiscover=False,
        topic_partitions=1,
        broker_credentials=_credentials(settings),
    )

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(service.metrics_text(), content_type="text/plain; version=0.0.4")

    @app.task  # type: ignore[untyped-decorator]
    async def stages() -> None:
        try:
            await service.run()
        except asyncio.CancelledError:
            if app.should_stop:
                raise
            # a stray cancellation from a client library must not leave a worker that
            # answers /metrics but processes nothing: crash it (a supervisor restarts it)
            log.exception("policyloop worker stages were cancelled while running")
            raise RuntimeError("policyloop worker stages cancelled") from None
        except Exception:  # the worker must not die silently with a task
            log.exception("policyloop worker stages failed")
            raise

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def heartbeat() -> None:
        log.debug("policyloop worker alive")

    return app


def _credentials(settings: Settings) -> Any:
    if settings.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=password,
            ssl_context=settings.ssl_context()
            if settings.security_protocol == "SASL_SSL"
            else None,
        )
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(settings.ssl_context())
    return None


def run_worker(
    settings: Settings,
    roles: tuple[str, ...] = ("all",),
    options: RunnerOptions | None = None,
    loglevel: str = "warning",
) -> None:
    """Run the worker until SIGTERM/SIGINT."""
    service = WorkerService(settings, options, roles=roles)
    app = build_app(service)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
