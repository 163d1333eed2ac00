"""Stand-down episodes: start / extend / clear events and which decisions they cover.

Episodes never overlap in time: the run is cut into equal slots and each episode lives inside
its own slot. Scopes cycle through all strategies, one strategy, and one (strategy, symbol);
variants cycle through plain, extended, cleared early, and extended then cleared. Every
``late_stand_down_every``-th episode (starting with the first) has its start event arrive 8
minutes after its ts, after decisions of the next bar that it already covers: a consumer must
decide by event time. Coverage follows the contract: ``start <= bar_ts < end`` where end is
the last until_ts (moved by an extend) or the clear time, whichever is first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.simulator.config import SimulationConfig, UniformStream, fmt_ms, rng_for
from streams.simulator.signals import Pair

SOURCES: tuple[tuple[str, str], ...] = (
    ("judge", "judge_low_confidence"),
    ("ops", "ops_maintenance"),
    ("risk_engine", "risk_limit_breach"),
)
LATENESS_S = 480
LATE_BEFORE_NEXT_BAR_S = 300
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Episode:
    """One stand-down from its start to its effective end (times in ms)."""

    index: int
    strategy: int | None
    symbol: int | None
    source: str
    reason: str
    start_ms: int
    until_ms: int
    extend_ms: int | None
    extended_until_ms: int | None
    clear_ms: int | None
    late: bool

    @property
    def end_ms(self) -> int:
        last_until = self.extended_until_ms or self.until_ms
        return min(last_until, self.clear_ms) if self.clear_ms is not None else last_until

    def until_at(self, bar_ms: int) -> int:
        """The until_ts known at a bar (an extend counts from its own ts on)."""
        if self.extend_ms is not None and self.extended_until_ms and bar_ms >= self.extend_ms:
            return self.extended_until_ms
        return self.until_ms

    def covers(self, pair: Pair) -> bool:
        if self.strategy is not None and pair.strategy != self.strategy:
            return False
        return self.symbol is None or pair.symbol == self.symbol


def build_episodes(config: SimulationConfig, pairs: list[Pair]) -> list[Episode]:
    """The stand-down episodes of the run, in time order."""
    draw = UniformStream(rng_for(config.seed, 3), chunk=4096)
    count = max(4, round(config.days * config.stand_downs_per_day))
    bar_ms = config.bar_s * 1000
    slot = config.n_bars // count
    episodes: list[Episode] = []
    for i in range(count):
        slot_start = i * slot
        start_bar = slot_start + draw.integer(1, max(2, slot // 4))
        late = config.late_stand_down_every > 0 and i % config.late_stand_down_every == 0
        # A late start is stamped 5 minutes before the next bar and arrives 3 minutes after it.
        late_offset = max(1, config.bar_s - LATE_BEFORE_NEXT_BAR_S)
        offset_s = late_offset if late else draw.integer(1, config.bar_s)
        start = config.start_ms + start_bar * bar_ms + offset_s * 1000
        room = config.start_ms + (slot_start + slot) * bar_ms - start
        until = start + _seconds(min(draw.uniform(2, 6) * HOUR_MS, room * 0.45))
        variant = i % 4
        extend = extended = clear = None
        if variant in (1, 3):
            extend = start + _seconds((until - start) * 0.5)
            extended = until + _seconds(min(draw.uniform(1, 3) * HOUR_MS, room * 0.4))
        if variant == 2:
            clear = start + _seconds((until - start) * draw.uniform(0.3, 0.6))
        elif variant == 3 and extended is not None:
            clear = until + _seconds((extended - until) * 0.5)
        strategy: int | None = None
        symbol: int | None = None
        if i % 3 == 1:
            strategy = draw.integer(0, len(config.strategies))
        elif i % 3 == 2:
            pair = pairs[draw.integer(0, len(pairs))]
            strategy, symbol = pair.strategy, pair.symbol
        source, reason = SOURCES[draw.integer(0, len(SOURCES))]
        episodes.append(
            Episode(
                i, strategy, symbol, source, reason, start, until, extend, extended, clear, late
            )
        )
    return episodes


def _seconds(ms: float) -> int:
    """Whole seconds, at least one."""
    return max(1000, int(ms) // 1000 * 1000)


def episode_events(
    episode: Episode, config: SimulationConfig, symbols: tuple[str, ...]
) -> list[tuple[int, int, str, dict[str, Any]]]:
    """(arrival_ms, event_ms, key, value) of the episode's start / extend / clear events."""
    scope: dict[str, Any] = {}
    if episode.strategy is not None:
        scope["strategy_id"] = config.strategies[episode.strategy]
    if episode.symbol is not None:
        scope["symbol"] = symbols[episode.symbol]
    key = scope.get("strategy_id", "*")
    base = {"scope": scope, "reason": episode.reason, "source": episode.source}
    eid = f"sd-{episode.index:03d}"
    start = {
        **base,
        "event_id": f"{eid}-start",
        "ts": fmt_ms(episode.start_ms),
        "action": "start",
        "until_ts": fmt_ms(episode.until_ms),
    }
    arrival = episode.start_ms + (LATENESS_S * 1000 if episode.late else 0)
    events = [(arrival, episode.start_ms, key, start)]
    if episode.extend_ms is not None and episode.extended_until_ms is not None:
        extend = {
            **base,
            "event_id": f"{eid}-extend",
            "ts": fmt_ms(episode.extend_ms),
            "action": "extend",
            "until_ts": fmt_ms(episode.extended_until_ms),
        }
        events.append((episode.extend_ms, episode.extend_ms, key, extend))
    if episode.clear_ms is not None:
        clear = {**base, "event_id": f"{eid}-clear", "ts": fmt_ms(episode.clear_ms)}
        clear["action"] = "clear"
        events.append((episode.clear_ms, episode.clear_ms, key, clear))
    return events


def coverage(
    episodes: list[Episode], pairs: list[Pair], config: SimulationConfig
) -> list[list[int]]:
    """Per pair, per bar: the index of the episode covering it, or -1."""
    n = config.n_bars
    bar_ms = config.bar_s * 1000
    table = [[-1] * n for _ in pairs]
    for ep in episodes:
        first = max(0, -(-(ep.start_ms - config.start_ms) // bar_ms))
        stop = min(n, -(-(ep.end_ms - config.start_ms) // bar_ms))
        for p, pair in enumerate(pairs):
            if ep.covers(pair):
                row = table[p]
                for t in range(first, stop):
                    row[t] = ep.index
    return table


def episode_truth(
    episode: Episode, config: SimulationConfig, symbols: tuple[str, ...]
) -> dict[str, Any]:
    """Ground-truth description of one episode."""
    events = episode_events(episode, config, symbols)

    def ts(ms: int | None) -> str | None:
        return fmt_ms(ms) if ms is not None else None

    return {
        "index": episode.index,
        "scope": events[0][3]["scope"],
        "source": episode.source,
        "reason": episode.reason,
        "start_ts": ts(episode.start_ms),
        "until_ts": ts(episode.until_ms),
        "extend_ts": ts(episode.extend_ms),
        "extended_until_ts": ts(episode.extended_until_ms),
        "clear_ts": ts(episode.clear_ms),
        "effective_end_ts": ts(episode.end_ms),
        "late_start": episode.late,
        "event_ids": [value["event_id"] for _, _, _, value in events],
    }
