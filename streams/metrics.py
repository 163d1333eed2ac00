"""Prometheus exposition of the pipeline's metrics through an injected registry.

No module-global metrics: a ``PipelineCollector`` reads the pipeline's samples at scrape time
and reports them under the names of processors/core/metric_names.py. Drivers add their own
operational metrics (consumer lag, latency) to the same registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from processors.core.base import MetricSample
from processors.core.metric_names import CATALOGUE, MetricSpec


class PipelineCollector(Collector):
    """Every catalogued metric, filled from ``sample_source()`` at each collect."""

    def __init__(self, sample_source: Callable[[], list[MetricSample]]) -> None:
        self._sample_source = sample_source

    def collect(self) -> Iterator[Metric]:
        by_name: dict[str, list[MetricSample]] = {}
        for sample in self._sample_source():
            by_name.setdefault(sample.name, []).append(sample)
        for spec in CATALOGUE:
            family = _family(spec)
            for sample in sorted(by_name.get(spec.name, ()), key=lambda s: s.labels):
                labels = dict(sample.labels)
                family.add_metric([labels.get(label, "") for label in spec.labels], sample.value)
            yield family

    def describe(self) -> Iterator[Metric]:
        for spec in CATALOGUE:
            yield _family(spec)


def _family(spec: MetricSpec) -> CounterMetricFamily | GaugeMetricFamily:
    name = spec.name
    if spec.kind == "counter":
        return CounterMetricFamily(name.removesuffix("_total"), spec.help, labels=spec.labels)
    return GaugeMetricFamily(name, spec.help, labels=spec.labels)


def pipeline_registry(sample_source: Callable[[], list[MetricSample]]) -> CollectorRegistry:
    """A fresh registry (no process or platform collectors, so output is deterministic)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(PipelineCollector(sample_source))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of a registry."""
    return generate_latest(registry)


def parse_exposition(text: str) -> dict[str, float]:
    """Samples of a text exposition by full name with labels, e.g.
    ``'policyloop_events_total{outcome="processed",topic="fills"}'`` -> value."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def scrape(port: int, host: str = "127.0.0.1") -> dict[str, float]:
    """The samples a worker serves on ``/metrics``; empty while it does not answer."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=2) as response:
            return parse_exposition(response.read().decode())
    except OSError:
        return {}
