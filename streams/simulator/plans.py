"""Plans of every strategy and the verdict the no-change replan guard should give each.

Each strategy replans every ``plan_interval_hours`` (with jitter). A replan is material with
probability ``material_replan_prob`` (a param changed, a trigger added or removed, a risk limit
changed or the policy version bumped); every replan also varies what is not material: trigger
order, key order (plan lines keep their key order: they are written unsorted), ints written as
floats (30 -> 30.0), ids, ts, narration and metadata. One strategy gets a burst of
``churn_burst_size`` material replans within one event-time day.

Expected verdict: ``accepted`` when the plan's material content (trigger set with params,
risk_limits, policy_version; numbers by value, order ignored) differs from the strategy's
previous accepted plan, else ``suppressed``; a strategy's first plan is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.simulator.config import SimulationConfig, UniformStream, fmt_ms, rng_for

Params = dict[str, int | float]

BASE_TRIGGERS: dict[str, Params] = {
    "entry": {"threshold": 0.55, "lookback_bars": 20},
    "exit": {"stop_loss_bps": 150, "take_profit_bps": 300},
    "trail": {"atr_mult": 2.5, "min_hold_bars": 2},
}
OPTIONAL_TRIGGERS: dict[str, Params] = {
    "time_stop": {"max_bars": 16},
    "vol_filter": {"max_vol_ratio": 2.0},
}
BASE_RISK: dict[str, float] = {"max_abs_weight": 0.1, "max_gross": 2.0, "max_drawdown": 0.08}
MUTATIONS: tuple[tuple[str, float], ...] = (
    ("param", 0.4),
    ("add_trigger", 0.15),
    ("remove_trigger", 0.15),
    ("risk_limit", 0.2),
    ("policy_version", 0.1),
)
DAY_MS = 86_400_000
MINUTE_MS = 60_000


@dataclass
class _Material:
    triggers: dict[str, Params] = field(
        default_factory=lambda: {k: dict(v) for k, v in BASE_TRIGGERS.items()}
    )
    risk_limits: dict[str, float] = field(default_factory=lambda: dict(BASE_RISK))
    version: int = 0


@dataclass(frozen=True)
class PlanRecord:
    """A plan to write (key: strategy_id) and what the guard should say about it."""

    ts_ms: int
    value: dict[str, Any]
    verdict: str
    change: str
    burst: bool


def material_of(value: dict[str, Any]) -> tuple[Any, ...]:
    """The material content of a plan value, canonical (the contract's comparison rule)."""

    def norm(v: Any) -> Any:
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v

    triggers = tuple(
        sorted(
            (t["trigger_id"], tuple(sorted((k, norm(v)) for k, v in t["params"].items())))
            for t in value["triggers"]
        )
    )
    risk = tuple(sorted((k, float(v)) for k, v in value["risk_limits"].items()))
    return triggers, risk, value["policy_version"]


def build_plans(config: SimulationConfig) -> list[PlanRecord]:
    """Every plan of the run, per strategy in time order (strategies one after the other)."""
    draw = UniformStream(rng_for(config.seed, 4), chunk=4096)
    end_ms = config.start_ms + config.n_bars * config.bar_s * 1000
    interval = int(config.plan_interval_hours * 3_600_000)
    burst_strategy = 1 % len(config.strategies)
    burst_day = config.days // 2
    records: list[PlanRecord] = []
    for s, strategy in enumerate(config.strategies):
        times: list[tuple[int, bool]] = []
        ts = config.start_ms + s * 7 * MINUTE_MS
        while ts < end_ms:
            times.append((ts + draw.integer(0, 20) * MINUTE_MS + draw.integer(0, 60) * 1000, False))
            ts += interval
        if s == burst_strategy and config.churn_burst_size > 0:
            day_start = config.start_ms + burst_day * DAY_MS
            step = 23 * 60 * MINUTE_MS // config.churn_burst_size
            for j in range(config.churn_burst_size):
                jitter = draw.integer(0, 5) * MINUTE_MS + draw.integer(1, 60) * 1000
                times.append((day_start + 30 * MINUTE_MS + j * step + jitter, True))
        times.sort()
        records.extend(_strategy_plans(strategy, times, config, draw))
    return records


def _strategy_plans(
    strategy: str, times: list[tuple[int, bool]], config: SimulationConfig, draw: UniformStream
) -> list[PlanRecord]:
    state = _Material()
    accepted: tuple[Any, ...] | None = None
    out: list[PlanRecord] = []
    burst_index = 0
    for n, (ts, burst) in enumerate(times):
        change = "none"
        if burst:
            # Flip-flop the entry threshold. Every plan's material content equals the last
            # accepted one (it was accepted, or suppressed as equal), so a change is accepted.
            entry = state.triggers["entry"]
            entry["threshold"] = round(entry["threshold"] + (0.01 if burst_index % 2 else -0.01), 4)
            burst_index += 1
            change = "param"
        elif n > 0 and draw.next() < config.material_replan_prob:
            change = _mutate(state, draw)
        value = _render(strategy, n, ts, state, draw)
        material = material_of(value)
        verdict = "accepted" if accepted is None or material != accepted else "suppressed"
        if verdict == "accepted":
            accepted = material
        out.append(PlanRecord(ts, value, verdict, change, burst))
    return out


def _mutate(state: _Material, draw: UniformStream) -> str:
    u = draw.next()
    kind = MUTATIONS[-1][0]
    for name, weight in MUTATIONS:
        if u < weight:
            kind = name
            break
        u -= weight
    optional_present = sorted(k for k in state.triggers if k in OPTIONAL_TRIGGERS)
    optional_absent = sorted(k for k in OPTIONAL_TRIGGERS if k not in state.triggers)
    if kind == "add_trigger" and not optional_absent:
        kind = "remove_trigger"
    elif kind == "remove_trigger" and not optional_present:
        kind = "add_trigger"
    if kind == "param":
        trigger_id = sorted(state.triggers)[draw.integer(0, len(state.triggers))]
        params = state.triggers[trigger_id]
        name = sorted(params)[draw.integer(0, len(params))]
        step = 1 + draw.integer(0, 5)
        old = params[name]
        params[name] = old + step if isinstance(old, int) else round(old + 0.01 * step, 4)
    elif kind == "add_trigger":
        trigger_id = optional_absent[draw.integer(0, len(optional_absent))]
        state.triggers[trigger_id] = dict(OPTIONAL_TRIGGERS[trigger_id])
    elif kind == "remove_trigger":
        del state.triggers[optional_present[draw.integer(0, len(optional_present))]]
    elif kind == "risk_limit":
        name = sorted(state.risk_limits)[draw.integer(0, len(state.risk_limits))]
        factor = 1.1 if draw.next() < 0.5 else 0.9
        state.risk_limits[name] = round(state.risk_limits[name] * factor, 4)
    else:
        state.version += 1
    return kind


def _render(
    strategy: str, n: int, ts: int, state: _Material, draw: UniformStream
) -> dict[str, Any]:
    """A plan value with random non-material variation of the same material content."""
    as_float = draw.next() < 0.5
    reverse_keys = draw.next() < 0.5
    ids = sorted(state.triggers)
    order = [ids[i] for i in _permutation(len(ids), draw)]
    triggers: list[dict[str, Any]] = []
    for trigger_id in order:
        params: dict[str, Any] = {
            k: float(v) if as_float else v for k, v in sorted(state.triggers[trigger_id].items())
        }
        if reverse_keys:
            params = dict(reversed(params.items()))
        triggers.append({"trigger_id": trigger_id, "params": params})
    value: dict[str, Any] = {
        "event_id": f"p-{strategy}-{n:04d}",
        "plan_id": f"plan-{strategy}-{n:04d}-{draw.integer(0, 1 << 30):08x}",
        "strategy_id": strategy,
        "ts": fmt_ms(ts),
        "triggers": triggers,
        "risk_limits": dict(sorted(state.risk_limits.items())),
        "policy_version": "v0" if state.version == 0 else f"v0.{state.version}",
        "narration": f"Plan {n} for {strategy}: keep {len(triggers)} triggers; "
        f"market read {draw.integer(0, 1000)}.",
        "metadata": {"planner": "sim-planner", "seq": n, "temperature": round(draw.next(), 2)},
    }
    if reverse_keys:
        value["risk_limits"] = dict(reversed(value["risk_limits"].items()))
        value = dict(reversed(value.items()))
    return value


def _permutation(n: int, draw: UniformStream) -> list[int]:
    items = list(range(n))
    for i in range(n - 1, 0, -1):
        j = draw.integer(0, i + 1)
        items[i], items[j] = items[j], items[i]
    return items


def plan_truth(records: list[PlanRecord], config: SimulationConfig) -> dict[str, Any]:
    """Expected verdicts and the injected replan churn."""
    entries = [
        {
            "event_id": r.value["event_id"],
            "strategy_id": r.value["strategy_id"],
            "ts": r.value["ts"],
            "verdict": r.verdict,
            "change": r.change,
            "burst": r.burst,
        }
        for r in records
    ]
    bursts: list[dict[str, Any]] = []
    burst_ids = [e["event_id"] for e in entries if e["burst"]]
    if burst_ids:
        day_start = config.start_ms + (config.days // 2) * DAY_MS
        bursts.append(
            {
                "strategy_id": config.strategies[1 % len(config.strategies)],
                "day_start": fmt_ms(day_start),
                "day_end": fmt_ms(day_start + DAY_MS),
                "event_ids": burst_ids,
                "material_count": len(burst_ids),
            }
        )
    return {"plans": entries, "replan_churn": bursts}
