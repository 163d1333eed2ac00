"""The evaluation gate: replay one tape under the champion and the candidate, side by side,
and PASS the candidate only if every check holds; a FAIL lists every check that did not.

Checks (``EvaluationGateConfig`` holds every threshold):

1. ``no_change``: the candidate differs from the champion (engine, weights, trust, regime
   multipliers or disabled combinations).
2. ``min_trades``: the candidate trades at least ``min_trades`` times on the tape.
3. ``improvement`` (main metric: total PnL per bar): the per-bar PnL differences
   candidate - champion (``gate_stats.paired_differences``), summed into consecutive batches
   of ``batch_bars`` bars (a trailing partial batch is dropped), tested with the always-valid
   mSPRT (``gate_stats.msprt``, one-sided, level ``alpha``, mixture sd ``mixture_sd``): PASS
   needs p <= alpha and a positive mean. Why batches: positions held over several bars and
   labels over several bars make per-bar differences mildly autocorrelated and their variance
   changes with the volatility regime; batch sums are closer to independent, which is what the
   mSPRT's plug-in variance assumes. Being always valid, the test may be rerun on every loop
   run, or looked at bar by bar, without inflating its error rate (for one candidate on one
   sequence). A Newey-West fixed-horizon p-value on the per-bar differences is reported beside
   it for information only.
4. ``turnover``: candidate <= champion * (1 + turnover_band) + turnover_slack.
5. ``max_drawdown``: candidate <= champion * (1 + drawdown_band) + drawdown_slack * equity.
6. ``trade_count``: champion * trade_count_lo <= candidate <= champion * trade_count_hi.
7. ``calibration`` (only when the p_hat source changes: ``p_hat_source_changed`` or a
   ``candidate_p_hat`` is given): Brier <= champion's + brier_tolerance and ECE <= champion's
   + ece_tolerance, on the tape's labelled rows (label = forward return > 0). The champion's
   p_hat is the tape's; without labels the check fails.

``Gate.tests`` carries every number (JSON-ready: non-finite values become null), including
the champion's and the candidate's replay summaries. Reasons are short codes followed by
the numbers, e.g. ``turnover: 181.2 > 120.0 (champion 100.0, band 0.2)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from models.outputs import Gate
from models.policy import PolicyConfig
from models.taxonomy import GateDecision
from processors.core.config_checks import NON_NEGATIVE, OPEN_UNIT, POSITIVE, at_least, check_bounds
from processors.policy.gate_stats import (
    MsprtConfig,
    brier,
    ece,
    msprt,
    newey_west_test,
    paired_differences,
)
from processors.policy.replay import (
    DEFAULT_COST_BPS,
    DEFAULT_EQUITY,
    DecisionTape,
    PolicyReplayResult,
    replay_policies,
    replay_policy,
)
from processors.policy.stats_harness import json_ready

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class EvaluationGateConfig:
    """Thresholds of the gate (module docstring). Defaults: at least 30 trades; batches of 4
    bars (one hour of 15-minute bars); mSPRT at alpha 0.05 with mixture sd 0.2 and a burn-in
    of 20 batches; turnover within +25% of the champion's; max drawdown within +25% plus
    0.2% of equity; trade count within [0.5, 1.5] x the champion's; Brier within +0.002 and
    ECE within +0.01 of the champion's (10 bins); replay at equity 100k and 2 bps costs."""

    min_trades: int = 30
    batch_bars: int = 4
    alpha: float = 0.05
    mixture_sd: float = 0.2
    burn_in: int = 20
    turnover_band: float = 0.25
    turnover_slack: float = 0.0
    drawdown_band: float = 0.25
    drawdown_slack: float = 0.002
    trade_count_lo: float = 0.5
    trade_count_hi: float = 1.5
    brier_tolerance: float = 0.002
    ece_tolerance: float = 0.01
    ece_bins: int = 10
    equity: float = DEFAULT_EQUITY
    cost_bps: float = DEFAULT_COST_BPS

    def __post_init__(self) -> None:
        check_bounds(
            self,
            {
                "min_trades": at_least(1),
                "batch_bars": at_least(1),
                "alpha": OPEN_UNIT,
                "mixture_sd": POSITIVE,
                "burn_in": NON_NEGATIVE,
                "turnover_band": NON_NEGATIVE,
                "turnover_slack": NON_NEGATIVE,
                "drawdown_band": NON_NEGATIVE,
                "drawdown_slack": NON_NEGATIVE,
                "trade_count_lo": NON_NEGATIVE,
                "trade_count_hi": POSITIVE,
                "brier_tolerance": NON_NEGATIVE,
                "ece_tolerance": NON_NEGATIVE,
                "ece_bins": at_least(1),
                "equity": POSITIVE,
                "cost_bps": NON_NEGATIVE,
            },
        )
        if self.trade_count_lo > self.trade_count_hi:
            raise ValueError("EvaluationGateConfig.trade_count_lo must be <= trade_count_hi")


@dataclass(frozen=True, eq=False)
class GateOutcome:
    """The gate's verdict and both replays (for evidence and the stats harness)."""

    gate: Gate
    champion: PolicyReplayResult
    candidate: PolicyReplayResult

    @property
    def passed(self) -> bool:
        return self.gate.decision is GateDecision.PASS


def batch_sums(values: FloatArray, size: int) -> FloatArray:
    """Sums of consecutive batches of ``size`` values; a trailing partial batch is dropped."""
    size = max(1, int(size))
    whole = values.shape[0] // size
    sums: FloatArray = values[: whole * size].reshape(whole, size).sum(axis=1)
    return sums


def same_policy(a: PolicyConfig, b: PolicyConfig) -> bool:
    """Whether two policies decide alike (everything but version and created_at equal)."""
    skip = {"version", "created_at"}
    return a.model_dump(exclude=skip) == b.model_dump(exclude=skip)


def evaluate(
    tape: DecisionTape,
    champion: PolicyConfig,
    candidate: PolicyConfig,
    config: EvaluationGateConfig | None = None,
    *,
    champion_result: PolicyReplayResult | None = None,
    candidate_result: PolicyReplayResult | None = None,
    labels: tuple[BoolArray, BoolArray] | None = None,
    candidate_p_hat: FloatArray | None = None,
    p_hat_source_changed: bool = False,
) -> GateOutcome:
    """Gate ``candidate`` against ``champion`` on ``tape`` (module docstring).

    ``champion_result`` / ``candidate_result``: their replays of this tape, when already
    computed (with the same equity and costs; ``replay_policies``). ``labels``:
    ``(label, labelled)`` per tape row, for the calibration check (see
    ``loop_window.WindowView``). ``candidate_p_hat``: the candidate's p_hat per tape row when
    its p_hat source differs."""
    cfg = config or EvaluationGateConfig()
    if champion_result is None and candidate_result is None:
        champ, cand = replay_policies(
            [(tape, champion), (tape, candidate)], cfg.equity, cfg.cost_bps
        )
    else:
        champ = champion_result or replay_policy(tape, champion, cfg.equity, cfg.cost_bps)
        cand = candidate_result or replay_policy(tape, candidate, cfg.equity, cfg.cost_bps)
    reasons: list[str] = []
    tests: dict[str, Any] = {"champion": champ.summary(), "candidate": cand.summary()}

    if same_policy(champion, candidate):
        reasons.append("no_change: candidate decides exactly as the champion")

    tests["min_trades"] = {"candidate": cand.trade_count, "required": cfg.min_trades}
    if cand.trade_count < cfg.min_trades:
        reasons.append(f"min_trades: {cand.trade_count} < {cfg.min_trades}")

    per_bar = paired_differences(champ.bar_pnl, cand.bar_pnl)
    batches = batch_sums(per_bar, cfg.batch_bars)
    test = msprt(batches, MsprtConfig(cfg.alpha, cfg.mixture_sd, cfg.burn_in, one_sided=True))
    fixed = newey_west_test(per_bar)
    tests["improvement"] = {
        "metric": "pnl_per_bar",
        "bars": int(per_bar.shape[0]),
        "mean_difference_per_bar": float(per_bar.mean()) if per_bar.shape[0] else 0.0,
        "batch_bars": cfg.batch_bars,
        "batches": test.n,
        "msprt_p_value": test.p_value,
        "msprt_e_value": test.e_value,
        "alpha": cfg.alpha,
        "mixture_sd": cfg.mixture_sd,
        "cs_lower_per_batch": test.cs_lower,
        "cs_upper_per_batch": test.cs_upper,
        "newey_west_p_value": fixed.p_value,
    }
    if not (test.p_value <= cfg.alpha and test.mean > 0.0):
        reasons.append(
            f"improvement: mSPRT p {test.p_value:.4g} > alpha {cfg.alpha:g} or mean <= 0 "
            f"(mean per bar {tests['improvement']['mean_difference_per_bar']:.4g} over "
            f"{test.n} batches of {cfg.batch_bars} bars)"
        )

    limit = champ.turnover * (1.0 + cfg.turnover_band) + cfg.turnover_slack
    tests["turnover"] = {"champion": champ.turnover, "candidate": cand.turnover, "limit": limit}
    if cand.turnover > limit:
        reasons.append(
            f"turnover: {cand.turnover:.4g} > {limit:.4g} "
            f"(champion {champ.turnover:.4g}, band {cfg.turnover_band:g})"
        )

    limit = champ.max_drawdown * (1.0 + cfg.drawdown_band) + cfg.drawdown_slack * cfg.equity
    tests["max_drawdown"] = {
        "champion": champ.max_drawdown,
        "candidate": cand.max_drawdown,
        "limit": limit,
    }
    if cand.max_drawdown > limit:
        reasons.append(
            f"max_drawdown: {cand.max_drawdown:.4g} > {limit:.4g} "
            f"(champion {champ.max_drawdown:.4g}, band {cfg.drawdown_band:g})"
        )

    low, high = champ.trade_count * cfg.trade_count_lo, champ.trade_count * cfg.trade_count_hi
    tests["trade_count"] = {
        "champion": champ.trade_count,
        "candidate": cand.trade_count,
        "low": low,
        "high": high,
    }
    if not low <= cand.trade_count <= high:
        reasons.append(
            f"trade_count: {cand.trade_count} outside [{low:.4g}, {high:.4g}] "
            f"(champion {champ.trade_count})"
        )

    if p_hat_source_changed or candidate_p_hat is not None:
        reasons.extend(_calibration(tape, cfg, labels, candidate_p_hat, tests))

    decision = GateDecision.FAIL if reasons else GateDecision.PASS
    gate = Gate(decision=decision, reasons=[r[:256] for r in reasons], tests=json_ready(tests))
    return GateOutcome(gate, champ, cand)


def _calibration(
    tape: DecisionTape,
    cfg: EvaluationGateConfig,
    labels: tuple[BoolArray, BoolArray] | None,
    candidate_p_hat: FloatArray | None,
    tests: dict[str, Any],
) -> list[str]:
    """The calibration check's reasons; writes its numbers into ``tests``."""
    if labels is None or not bool(np.any(labels[1])):
        tests["calibration"] = {"labelled": 0}
        return ["calibration: no labelled decisions to compare p_hat sources on"]
    label, labelled = labels
    y = label[labelled].astype(np.float64)
    p_champion = tape.p_hat[labelled]
    p_candidate = (tape.p_hat if candidate_p_hat is None else candidate_p_hat)[labelled]
    figures = {
        "labelled": int(y.shape[0]),
        "brier_champion": brier(p_champion, y),
        "brier_candidate": brier(p_candidate, y),
        "ece_champion": ece(p_champion, y, cfg.ece_bins),
        "ece_candidate": ece(p_candidate, y, cfg.ece_bins),
    }
    tests["calibration"] = figures
    reasons = []
    brier_limit = figures["brier_champion"] + cfg.brier_tolerance
    if not figures["brier_candidate"] <= brier_limit:
        reasons.append(f"calibration_brier: {figures['brier_candidate']:.4g} > {brier_limit:.4g}")
    ece_limit = figures["ece_champion"] + cfg.ece_tolerance
    if not figures["ece_candidate"] <= ece_limit:
        reasons.append(f"calibration_ece: {figures['ece_candidate']:.4g} > {ece_limit:.4g}")
    return reasons


def rollback_check(
    tape: DecisionTape,
    active: PolicyConfig,
    previous: PolicyConfig,
    config: EvaluationGateConfig | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """Whether the promoted ``active`` policy has fallen past a guardrail against the
    ``previous`` last-good one on the decisions since its promotion: ``(reasons, tests)``,
    no reasons = keep it. Reasons: ``realised_pnl`` (the mSPRT of previous - active per-bar
    PnL, in batches as in ``evaluate``, shows the active one worse: p <= alpha and mean > 0;
    always valid, so it may be checked as often as wanted), ``turnover`` and
    ``max_drawdown`` (the active policy beyond the gate's bands of the previous one's)."""
    cfg = config or EvaluationGateConfig()
    now, before = replay_policies([(tape, active), (tape, previous)], cfg.equity, cfg.cost_bps)
    per_bar = paired_differences(now.bar_pnl, before.bar_pnl)  # previous - active
    test = msprt(
        batch_sums(per_bar, cfg.batch_bars),
        MsprtConfig(cfg.alpha, cfg.mixture_sd, cfg.burn_in, one_sided=True),
    )
    turnover_limit = before.turnover * (1.0 + cfg.turnover_band) + cfg.turnover_slack
    drawdown_limit = before.max_drawdown * (1.0 + cfg.drawdown_band)
    drawdown_limit += cfg.drawdown_slack * cfg.equity
    tests: dict[str, Any] = {
        "active": now.summary(),
        "previous": before.summary(),
        "bars": int(per_bar.shape[0]),
        "shortfall_per_bar": float(per_bar.mean()) if per_bar.shape[0] else 0.0,
        "msprt_p_value": test.p_value,
        "batches": test.n,
        "turnover_limit": turnover_limit,
        "drawdown_limit": drawdown_limit,
    }
    reasons: list[str] = []
    if test.p_value <= cfg.alpha and test.mean > 0.0:
        reasons.append(
            f"realised_pnl: {now.pnl_total:.4g} vs {before.pnl_total:.4g} under "
            f"{previous.version} (mSPRT p {test.p_value:.4g})"
        )
    if now.turnover > turnover_limit:
        reasons.append(f"turnover: {now.turnover:.4g} > {turnover_limit:.4g}")
    if now.max_drawdown > drawdown_limit:
        reasons.append(f"max_drawdown: {now.max_drawdown:.4g} > {drawdown_limit:.4g}")
    return [r[:256] for r in reasons], json_ready(tests)
