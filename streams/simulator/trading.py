"""The bar loop: decisions, orders, fills and late outcomes of every pair, in event time.

Per bar: queued records (stand-downs, plans, earlier fills and outcomes) that arrive before
the bar are written, then one decision per pair. A strategy's equity is its initial equity
plus cash and marked-to-market positions of all its symbols at the bar's price. Overrides,
in order of precedence:
- an active stand-down: target 0 (stand_down_active / stand_down_block) and the decision
  carries ``stand_down``; per episode one VIOLATION (the first covered decision whose v0
  target is not 0 keeps it) and one DATA-QUALITY case (the first covered decision after the
  episode's first that is not the violation omits ``stand_down``);
- a cooldown after an emergency exit: target 0 (cooldown_active / cooldown_block);
- an emergency exit intent (scheduled bars, applied at the pair's next bar with a position):
  executed, vetoed, or violating (no cooldown_recommendation_bars; or kept without a veto).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from streams.simulator.config import (
    FEATURES,
    REGIMES,
    SimulationConfig,
    UniformStream,
    fmt_ms,
    rng_for,
)
from streams.simulator.decide import Sized, flatten, hold_for_min_hold, size_position
from streams.simulator.fills import OrderContext, OrderResult, execute_order
from streams.simulator.market import Market
from streams.simulator.signals import Pair, PairSignals
from streams.simulator.standdowns import Episode
from streams.simulator.writer import ReplayWriter

# The first four applied cases cover every kind; later ones are mostly well-behaved.
EMERGENCY_CYCLE = (
    "executed",
    "vetoed",
    "missing_cooldown",
    "weight_without_veto",
    "executed",
    "vetoed",
    "executed",
    "vetoed",
)
MIN_EMERGENCY_FLAGS = 12
EMERGENCY_REASONS = ("drawdown_limit", "volatility_halt", "news_gap")
COOLDOWN_BARS = 4
MAX_LABEL_DELAY_S = 6 * 3600


class _PairInfo(NamedTuple):
    strategy: int
    symbol_index: int
    strategy_id: str
    symbol: str
    classification: str
    prefix: str  # "<strategy_id>-<symbol>-" of derived ids


class TradingLoop:
    """Runs the bar loop once (``run``) and keeps what the ground truth needs."""

    def __init__(
        self,
        config: SimulationConfig,
        market: Market,
        pairs: list[Pair],
        signals: list[PairSignals],
        episodes: list[Episode],
        coverage: list[list[int]],
    ) -> None:
        self.config = config
        self.market = market
        self.pairs = pairs
        self.signals = signals
        self.episodes = episodes
        self.coverage = coverage
        self.draw = UniformStream(rng_for(config.seed, 7))
        n, p_count = config.n_bars, len(pairs)
        rng = rng_for(config.seed, 6)
        self.labelled = (rng.random((p_count, n)) < config.outcome_fraction).tolist()
        delays = np.minimum(
            rng.exponential(config.outcome_delay_mean_s, (p_count, n)), MAX_LABEL_DELAY_S
        )
        self.delay_ms = ((delays.astype(np.int64) + 1) * 1000).tolist()
        flags = np.zeros(p_count * n, dtype=bool)
        count = min(
            p_count * n,
            max(MIN_EMERGENCY_FLAGS, round(config.days * config.emergency_exits_per_day)),
        )
        flags[rng.choice(p_count * n, count, replace=False)] = True
        self.emergency_flags = flags.reshape(p_count, n).tolist()
        self.sd_violations: list[str] = []
        self.sd_data_quality: list[str] = []
        self.emergency: dict[str, list[str]] = {"executed": [], "vetoed": []}
        self.emergency_violations: list[dict[str, str]] = []
        self.stats: dict[str, int] = {
            "orders": 0,
            "fills": 0,
            "cancels": 0,
            "partial_fill_orders": 0,
            "cancelled_orders": 0,
            "crossing_zero_fills": 0,
            "round_trips_closed": 0,
            "short_entries": 0,
        }
        self.crossing_examples: list[str] = []
        self._qty = [0.0] * p_count
        self._cash = [0.0] * p_count
        self._cooldown = [0] * p_count
        self._pending = [False] * p_count
        self._last_trade = [-(10**9)] * p_count
        self._emergencies = 0
        self._bar_ts: list[str] = []
        self._prices: list[list[float]] = []
        self._regimes: list[list[str]] = []
        self._fwd: list[list[float]] = []
        self._labels: list[list[int]] = []
        self._start_ms = config.start_ms
        self._bar_ms = config.bar_s * 1000
        self._seen = [0] * len(episodes)
        self._violated = [False] * len(episodes)
        self._dq_done = [False] * len(episodes)

    def run(self, writer: ReplayWriter) -> None:
        """Write every decision, and queue its fills and outcome, bar by bar."""
        cfg = self.config
        n, bar_ms, start_ms = cfg.n_bars, self._bar_ms, self._start_ms
        self._bar_ts = [fmt_ms(start_ms + t * bar_ms) for t in range(n + cfg.horizon_bars)]
        self._prices = self.market.prices.tolist()
        self._regimes = [[REGIMES[r] for r in row] for row in self.market.regimes.tolist()]
        self._fwd = self.market.fwd_returns.tolist()
        self._labels = self.market.labels.tolist()
        strategies, symbols = cfg.strategies, self.market.symbols
        infos = [
            _PairInfo(
                pair.strategy,
                pair.symbol,
                strategies[pair.strategy],
                symbols[pair.symbol],
                self.market.classifications[pair.symbol],
                f"{strategies[pair.strategy]}-{symbols[pair.symbol]}-",
            )
            for pair in self.pairs
        ]
        for t in range(n):
            bms = start_ms + t * bar_ms
            writer.flush_before(bms, "bar_decisions")
            equity = [cfg.initial_equity] * len(strategies)
            for p, info in enumerate(infos):
                price = self._prices[info.symbol_index][t]
                equity[info.strategy] += self._cash[p] + self._qty[p] * price
            for p, info in enumerate(infos):
                self._step(writer, p, info, t, bms, max(1.0, equity[info.strategy]))

    def _step(
        self, writer: ReplayWriter, p: int, info: _PairInfo, t: int, bms: int, equity: float
    ) -> None:
        cfg = self.config
        sig = self.signals[p]
        price = self._prices[info.symbol_index][t]
        q = self._qty[p]
        current = round(q * price / equity, 6)
        raw = sig.raw_weight[t]
        event_id = f"d-{info.prefix}{t}"
        extra: dict[str, Any] = {}
        if self.emergency_flags[p][t]:
            self._pending[p] = True
        ep = self.coverage[p][t]
        if ep >= 0:
            sized = self._stand_down(ep, raw, current, q, equity, price, bms, extra, event_id)
            self._seen[ep] += 1
        elif self._cooldown[p] > 0:
            self._cooldown[p] -= 1
            sized = flatten(q, "cooldown_active", "cooldown_block", "other")
        elif self._pending[p] and q != 0.0:
            self._pending[p] = False
            sized = self._emergency(p, q, current, extra, event_id)
        else:
            sized = size_position(
                raw, current, q, equity, price, cfg.max_abs_weight, cfg.rebalance_band
            )
            if sized.delta_qty != 0.0 and t - self._last_trade[p] < cfg.min_hold_bars:
                sized = hold_for_min_hold(sized, current)
        regime = self._regimes[info.symbol_index][t]
        decision = {
            "event_id": event_id,
            "run_id": cfg.run_id,
            "mode": "live",
            "strategy_id": info.strategy_id,
            "symbol": info.symbol,
            "classification": info.classification,
            "regime": regime,
            "timeframe": cfg.timeframe,
            "bar_ts": self._bar_ts[t],
            "price": price,
            "p_hat": sig.p_hat[t],
            "vol_hat": sig.vol_hat[t],
            "confidence": sig.confidence[t],
            "features": dict(zip(FEATURES, sig.features[t], strict=True)),
            "current_weight": current,
            "equity": round(equity, 2),
            "target_weight_raw": raw,
            "target_weight_final": sized.final,
            "reasons": sized.reasons,
            "block_events": sized.blocks,
            "policy_version": "v0",
            "horizon_bars": cfg.horizon_bars,
        }
        if extra:
            decision.update(extra)
        writer.write("bar_decisions", info.symbol, bms, decision)
        if sized.delta_qty != 0.0:
            ctx = OrderContext(
                strategy_id=info.strategy_id,
                symbol=info.symbol,
                classification=info.classification,
                regime=regime,
                decision_id=event_id,
                order_id=f"o-{info.prefix}{t}",
                bar_ms=bms,
                price=price,
                exit_reason=sized.exit_reason,
            )
            result = execute_order(ctx, sized.delta_qty, q, cfg, self.draw)
            self._count_order(result, q)
            self._last_trade[p] = t
            self._qty[p] = q + result.filled_qty
            self._cash[p] += result.cash_flow
            for ts_ms, value in result.records:
                writer.push(ts_ms, "fills", info.symbol, ts_ms, value)
        if self.labelled[p][t]:
            self._push_outcome(writer, p, info, t, event_id)

    def _push_outcome(
        self, writer: ReplayWriter, p: int, info: _PairInfo, t: int, event_id: str
    ) -> None:
        cfg = self.config
        h = cfg.horizon_bars
        label_ms = self._start_ms + (t + h) * self._bar_ms + self.delay_ms[p][t]
        outcome = {
            "event_id": f"y-{info.prefix}{t}",
            "decision_id": event_id,
            "strategy_id": info.strategy_id,
            "symbol": info.symbol,
            "bar_ts": self._bar_ts[t],
            "horizon_bars": h,
            "label": self._labels[info.symbol_index][t],
            "realized_return": self._fwd[info.symbol_index][t],
            "label_ts": fmt_ms(label_ms),
            "label_definition": f"fwd_return_{h}bars_gt_0",
        }
        writer.push(label_ms, "outcomes", info.symbol, label_ms, outcome)

    def _stand_down(
        self,
        ep: int,
        raw: float,
        cur: float,
        q: float,
        eq: float,
        price: float,
        bar_ms: int,
        extra: dict[str, Any],
        event_id: str,
    ) -> Sized:
        episode = self.episodes[ep]
        info = {
            "until_ts": fmt_ms(episode.until_at(bar_ms)),
            "reason": episode.reason,
            "source": episode.source,
        }
        cfg = self.config
        if not self._violated[ep]:
            normal = size_position(raw, cur, q, eq, price, cfg.max_abs_weight, cfg.rebalance_band)
            if normal.final != 0.0:
                self._violated[ep] = True
                self.sd_violations.append(event_id)
                extra["stand_down"] = info
                return normal
        if self._seen[ep] >= 1 and not self._dq_done[ep]:
            self._dq_done[ep] = True
            self.sd_data_quality.append(event_id)
        else:
            extra["stand_down"] = info
        return flatten(q, "stand_down_active", "stand_down_block", "other")

    def _emergency(
        self, p: int, q: float, current: float, extra: dict[str, Any], event_id: str
    ) -> Sized:
        """The next emergency case of EMERGENCY_CYCLE for a pair holding a position."""
        kind = EMERGENCY_CYCLE[self._emergencies % len(EMERGENCY_CYCLE)]
        reason = EMERGENCY_REASONS[self._emergencies % len(EMERGENCY_REASONS)]
        self._emergencies += 1
        extra["exit_intent"] = {"emergency": True, "reason": reason}
        if kind != "missing_cooldown":
            extra["cooldown_recommendation_bars"] = COOLDOWN_BARS
        if kind in ("executed", "vetoed"):
            self.emergency[kind].append(event_id)
        else:
            self.emergency_violations.append({"event_id": event_id, "kind": kind})
        if kind in ("executed", "missing_cooldown"):
            self._cooldown[p] = COOLDOWN_BARS
            return flatten(q, "emergency_exit", "emergency_exit_executed", "emergency")
        blocks = ["emergency_exit_veto_same_bar"] if kind == "vetoed" else []
        return Sized(current, ["hold"], blocks, 0.0, "emergency")

    def _count_order(self, result: OrderResult, before: float) -> None:
        stats = self.stats
        after = before + result.filled_qty
        cancelled = result.shape in ("cancel", "partial_cancel")
        stats["orders"] += 1
        stats["cancels"] += int(cancelled)
        stats["fills"] += len(result.records) - int(cancelled)
        stats["partial_fill_orders"] += int(result.shape in ("partial", "partial_cancel"))
        stats["cancelled_orders"] += int(result.shape == "cancel")
        stats["crossing_zero_fills"] += len(result.crossing_fill_ids)
        if before != 0.0 and (after == 0.0 or (before > 0) != (after > 0)):
            stats["round_trips_closed"] += 1
        if after < 0.0 <= before:
            stats["short_entries"] += 1
        if result.crossing_fill_ids and len(self.crossing_examples) < 20:
            self.crossing_examples.append(result.crossing_fill_ids[0])
