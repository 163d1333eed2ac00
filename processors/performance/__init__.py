"""Realised performance: fills paired into round trips (``round_trips``, ``trades``), rolling
windows per strategy and group (``window``), expected-vs-realised figures (``report``) and the
stage that keeps the tables (``tables``)."""

from processors.performance.tables import PerformanceConfig, PerformanceTables
from processors.performance.trades import RoundTrip

__all__ = ["PerformanceConfig", "PerformanceTables", "RoundTrip"]
