"""Operational metrics of a worker (wall-clock based: never shape outputs)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerStats:
    """The worker's own metrics, registered in the registry it is given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumer_lag = Gauge(
            "policyloop_consumer_lag",
            "Records behind the end of each input topic (sum over this worker's partitions).",
            ["topic"],
            registry=registry,
        )
        self.sequencer_partitions = Gauge(
            "policyloop_sequencer_partitions",
            "Input partitions this worker's sequencer holds.",
            registry=registry,
        )
        self.sequenced_total = Counter(
            "policyloop_sequenced_records",
            "Input records appended to the sequenced log.",
            registry=registry,
        )
        self.pipeline_lag = Gauge(
            "policyloop_pipeline_lag",
            "Records of the sequenced log not yet processed.",
            registry=registry,
        )
        self.latency = Histogram(
            "policyloop_processing_latency_seconds",
            "From an input record's Kafka timestamp "
            "to the commit of the transaction holding its outputs.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.transactions_total = Counter(
            "policyloop_transactions",
            "Transactions committed by the pipeline runner.",
            registry=registry,
        )
        self.checkpoints_total = Counter(
            "policyloop_checkpoints", "State checkpoints written.", registry=registry
        )
        self.recoveries_total = Counter(
            "policyloop_recoveries",
            "Restores of the pipeline state from a checkpoint.",
            registry=registry,
        )
        self.idle_flushes_total = Counter(
            "policyloop_idle_flushes",
            "Flush markers acted on (all inputs caught up and idle).",
            registry=registry,
        )
        self.active = Gauge(
            "policyloop_pipeline_active",
            "Partitions of the pipeline this worker holds: its lane partitions of the "
            "sequenced log, plus 1 when it holds the global runner (0: it only sequences).",
            registry=registry,
        )
        self.lane_partitions_held = Gauge(
            "policyloop_lane_partitions",
            "Partitions of the sequenced log (strategy lanes) this worker's lane runners hold.",
            registry=registry,
        )
        self.global_held = Gauge(
            "policyloop_global_runner",
            "1 when this worker holds the global runner (alert router, policy loop).",
            registry=registry,
        )
        self._held = {"lanes": 0, "global": 0}
        self.settled = Gauge(
            "policyloop_pipeline_settled",
            "1 when every input partition is caught up and the "
            "pipeline holds nothing back (all released, as at the end of a replay).",
            registry=registry,
        )
        self.idle_partitions = Gauge(
            "policyloop_idle_partitions",
            "Input partitions the pipeline treats as idle (caught up and nothing new for "
            "POLICYLOOP_IDLE_TIMEOUT_S): they do not hold the watermark back.",
            registry=registry,
        )
        self.idle_markers_total = Counter(
            "policyloop_idle_markers",
            "Idleness markers this worker's sequencer appended to the sequenced log.",
            registry=registry,
        )
        self.stage_errors_total = Counter(
            "policyloop_stage_errors",
            "Kafka errors a worker stage recovered from (it restarts its clients; after "
            "repeated failures in a row it exits non-zero for its supervisor).",
            ["stage"],
            registry=registry,
        )
        self.oversized_total = Counter(
            "policyloop_oversized_records",
            "Input records over POLICYLOOP_MAX_RECORD_BYTES, sequenced cut and "
            "dead-lettered as too_large.",
            registry=registry,
        )
        self.suppressed_total = Counter(
            "policyloop_recovered_outputs_suppressed",
            "Outputs recomputed after a recovery "
            "and not sent again because an earlier transaction committed them.",
            registry=registry,
        )

    def set_held(self, stage: str, partitions: int) -> None:
        """``stage`` ("lanes" or "global") now holds ``partitions`` partitions."""
        self._held[stage] = partitions
        gauge = self.lane_partitions_held if stage == "lanes" else self.global_held
        gauge.set(partitions)
        self.active.set(sum(self._held.values()))
