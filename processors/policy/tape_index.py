"""Index helpers of the decision tape: the (strategy, symbol, bar_ts) row order and the
distinct bar times, computed faster than the generic numpy calls they stand for (same
results: ``np.lexsort`` and ``np.unique``)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def unique_times(ts: IntArray) -> IntArray:
    """``np.unique(ts)``, in one pass when ``ts`` is sorted already (a window's rows in
    arrival order usually are)."""
    n = int(ts.shape[0])
    if n > 1 and bool(np.all(ts[1:] >= ts[:-1])):
        first = np.ones(n, dtype=np.bool_)
        first[1:] = ts[1:] != ts[:-1]
        distinct: IntArray = ts[first]
        return distinct
    return np.unique(ts)


def key_order(strategy: IntArray, symbol: IntArray, ts: IntArray) -> IntArray:
    """``np.lexsort((ts, symbol, strategy))`` (stable: ties keep their order), computed as
    one stable argsort of a combined integer key when it fits in int64, and as the identity
    when the rows are sorted already (a window's rows usually are)."""
    n = int(ts.shape[0])
    if n < 2:
        return np.arange(n, dtype=np.int64)
    low = min(int(strategy.min()), int(symbol.min()))
    first, last = int(ts.min()), int(ts.max())
    symbols = int(symbol.max()) + 1
    span = last - first + 1
    if low < 0 or (int(strategy.max()) + 1) * symbols * span >= 2**62:
        return np.lexsort((ts, symbol, strategy)).astype(np.int64)
    key = (strategy * symbols + symbol) * span + (ts - first)
    if bool(np.all(key[1:] >= key[:-1])):
        return np.arange(n, dtype=np.int64)
    return np.argsort(key, kind="stable").astype(np.int64)
