"""The stats harness of a loop run: feature importance and its stability, performance per
regime and per strategy|classification, and the drift summary handed in.

Everything is computed from one ``WindowView`` (labels: the sign of the forward return to
the next decision of the same strategy and symbol, see ``loop_window``) and the champion's
replay of it; the result is a JSON-ready dict (non-finite numbers become null).

- **Feature importance** of each feature, over the labelled rows where it is finite:
  ``r``, the point-biserial correlation of the feature with the label (Pearson's r of x and
  the 0/1 label), its t-statistic ``r sqrt((n-2)/(1-r^2))``, and ``mi``, the mutual
  information (nats) of the label with the feature's ``quantile_bins`` quantile bins.
  ``r`` is null under ``min_rows`` rows or without spread.
- **Stability**: the data span (first to last bar_ts of the view) cut into ``sub_windows``
  equal spans of event time; r in each
  (null where too few rows), ``sign_agreement`` = share of the sub-windows with an r whose
  sign equals the whole window's, ``std`` of those r (ddof=0), ``stable`` = sign agreement
  >= ``stable_agreement`` with at least two sub-window values.
- **Per regime** (and per combo): decisions, labelled rows, the champion's PnL, trades and
  PnL per decision; ``hit_rate`` of the signal direction (sign of p_hat - 0.5, rows with a
  signal) against the label, and the Brier score of p_hat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from models.policy import combo_key
from processors.core.config_checks import UNIT, at_least, check_bounds
from processors.policy.gate_stats import brier
from processors.policy.loop_window import WindowView
from processors.policy.replay import PolicyReplayResult

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class StatsHarnessConfig:
    """``sub_windows``: spans of the stability check (default 4); ``min_rows``: labelled
    rows needed for an r (default 30); ``quantile_bins``: bins of the mutual information
    (default 5); ``stable_agreement``: sign agreement that counts as stable (default 0.75)."""

    sub_windows: int = 4
    min_rows: int = 30
    quantile_bins: int = 5
    stable_agreement: float = 0.75

    def __post_init__(self) -> None:
        """Raise ValueError naming the first field outside its range."""
        check_bounds(
            self,
            {
                "sub_windows": at_least(1),
                "min_rows": at_least(3),
                "quantile_bins": at_least(2),
                "stable_agreement": UNIT,
            },
        )


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (dicts and lists recursed)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def point_biserial(x: FloatArray, y: FloatArray, min_rows: int) -> float | None:
    """Pearson's r of x and 0/1 labels y; None under ``min_rows`` or without spread."""
    if x.shape[0] < max(3, min_rows):
        return None
    xc = x - x.mean()
    yc = y - y.mean()
    # Elementwise sums, not ``@``: a large BLAS dot may spawn threads (slow on busy cores).
    denominator = math.sqrt(float(np.sum(xc * xc)) * float(np.sum(yc * yc)))
    if not denominator > 0.0:
        return None
    return max(-1.0, min(1.0, float(np.sum(xc * yc)) / denominator))


def quantile_mutual_information(x: FloatArray, y: BoolArray, bins: int) -> float | None:
    """Mutual information (nats) between quantile bins of x and y; None without rows."""
    n = x.shape[0]
    if n == 0:
        return None
    edges = np.quantile(x, np.linspace(0.0, 1.0, max(2, bins) + 1)[1:-1])
    if np.isnan(x).any():
        binned = np.searchsorted(edges, x, side="right")
    else:  # the same: the number of (sorted) edges <= x, one comparison per edge (faster)
        binned = np.zeros(n, dtype=np.int64)
        for edge in edges.tolist():
            binned += x >= edge
    cells = np.bincount(binned * 2 + y.astype(np.int64), minlength=2 * (edges.shape[0] + 1))
    joint = cells.reshape(-1, 2) / n
    px = joint.sum(axis=1, keepdims=True)
    py = joint.sum(axis=0, keepdims=True)
    used = joint > 0.0
    return float(np.sum(joint[used] * np.log(joint[used] / (px * py)[used])))


def feature_importance(view: WindowView, config: StatsHarnessConfig) -> dict[str, Any]:
    """Importance and stability of every feature of the view (module docstring)."""
    labelled = view.labelled
    y_all = view.label.astype(np.float64)
    ts = view.tape.bar_ts_ms
    first = int(ts.min()) if ts.shape[0] else 0
    span = int(ts.max()) + 1 - first if ts.shape[0] else 1
    parts = max(1, config.sub_windows)
    part = np.minimum((ts - first) * parts // span, parts - 1)
    in_part = [part == k for k in range(parts)]  # the same for every feature
    out: dict[str, Any] = {}
    for name, column in view.features.items():
        rows = labelled & np.isfinite(column)
        x, y = column[rows], y_all[rows]
        r = point_biserial(x, y, config.min_rows)
        n = int(x.shape[0])
        t = None
        if r is not None and n > 2 and abs(r) < 1.0:
            t = r * math.sqrt((n - 2) / (1.0 - r * r))
        sub: list[float | None] = []
        for k in range(parts):
            chosen = rows & in_part[k]
            sub.append(point_biserial(column[chosen], y_all[chosen], config.min_rows))
        present = [v for v in sub if v is not None]
        agreement = None
        if r is not None and present:
            agreement = sum(1 for v in present if (v > 0) == (r > 0)) / len(present)
        out[name] = {
            "n": n,
            "r": r,
            "t": t,
            "mi": quantile_mutual_information(x, view.label[rows], config.quantile_bins),
            "sub_windows": sub,
            "sign_agreement": agreement,
            "std": float(np.std(present)) if present else None,
            "stable": agreement is not None
            and len(present) >= 2
            and agreement >= config.stable_agreement,
        }
    return out


def group_performance(
    view: WindowView, champion: PolicyReplayResult, codes: npt.NDArray[np.int64], names: list[str]
) -> dict[str, Any]:
    """Per group (codes index names): decisions, labelled, pnl, trades, pnl per decision,
    hit rate of the signal direction and Brier score of p_hat."""
    tape = view.tape
    size = max(1, len(names))
    final = champion.target_weight_final
    prev = np.where(tape.group_start, 0.0, np.roll(final, 1))
    delta = np.abs(final - prev)
    row_pnl = final * tape.forward_return * champion.equity
    row_pnl = row_pnl - delta * (champion.cost_bps * 1e-4 * champion.equity)
    direction = np.sign(tape.p_hat - 0.5)
    signal = view.labelled & (direction != 0.0)
    hit = signal & ((direction > 0.0) == view.label)
    decisions = np.bincount(codes, minlength=size)
    labelled = np.bincount(codes[view.labelled], minlength=size)
    pnl = np.bincount(codes, weights=row_pnl, minlength=size)
    trades = np.bincount(codes[delta != 0.0], minlength=size)
    signals = np.bincount(codes[signal], minlength=size)
    hits = np.bincount(codes[hit], minlength=size)
    out: dict[str, Any] = {}
    for index, name in enumerate(names):
        if not decisions[index]:
            continue
        mine = view.labelled & (codes == index)
        out[name] = {
            "decisions": int(decisions[index]),
            "labelled": int(labelled[index]),
            "pnl": float(pnl[index]),
            "trades": int(trades[index]),
            "pnl_per_decision": float(pnl[index]) / int(decisions[index]),
            "hit_rate": float(hits[index]) / int(signals[index]) if signals[index] else None,
            "brier": brier(tape.p_hat[mine], view.label[mine].astype(np.float64)),
        }
    return out


def run_stats(
    view: WindowView,
    champion: PolicyReplayResult,
    drift_summary: dict[str, Any] | None = None,
    config: StatsHarnessConfig | None = None,
) -> dict[str, Any]:
    """The harness report: ``decisions``, ``labelled``, ``feature_importance``, ``regimes``,
    ``combos`` and ``drift`` (the summary handed in, as is). JSON-ready."""
    cfg = config or StatsHarnessConfig()
    tape = view.tape
    combo_names = [combo_key(s, c) for s in tape.strategies for c in tape.classifications]
    report = {
        "decisions": len(tape),
        "labelled": int(np.count_nonzero(view.labelled)),
        "feature_importance": feature_importance(view, cfg),
        "regimes": group_performance(view, champion, tape.regime, list(tape.regimes)),
        "combos": group_performance(view, champion, tape.combo, combo_names),
        "drift": dict(drift_summary or {}),
    }
    result: dict[str, Any] = json_ready(report)
    return result
