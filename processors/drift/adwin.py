"""river's ADWIN behind one adapter: the only module that touches river's private internals.

``river.drift.ADWIN.update(x)`` is a Python wrapper around its compiled core: reset the
window if the previous value signalled a drift, then ``_drift_detected = _helper.update(x)``.
``update_adwin(detector, x)`` does exactly that (same state, same result, same pickle) and
returns the new ``drift_detected``, saving the wrapper's property read and frame. The
private names it uses (``_helper``, ``_reset``, ``_drift_detected``) are checked at import
against the installed ``ADWIN.update`` (``FAST_UPDATE``); when they do not match,
``update_adwin`` falls back to the public ``update`` / ``drift_detected``.

Checked against river 0.22.0, 0.23.0, 0.24.2, 0.25.0 and 0.26.1, hence the pin
``river>=0.22,<0.27`` in pyproject.toml: on each, the wrapper is the one above and the
replay of the demo market is byte-identical. river 0.21 is excluded: its ADWIN fires at
other points on the same data (and it needs numpy < 2). Widen the pin only after checking
the wrapper again (``tests/unit/test_hot_paths.py``) and the replay. Detector pickles in
snapshots are river's own objects: restore them with the river version that wrote them
(ADWIN's core moved from Cython to Rust in 0.25).
"""

from __future__ import annotations

from typing import Any

from river import drift as river_drift

ADWIN: Any = river_drift.ADWIN
_WRAPPER_NAMES = ("drift_detected", "_reset", "_helper", "update", "_drift_detected")


def _wrapper_is_known() -> bool:
    try:
        probe = ADWIN()
        names = ADWIN.update.__code__.co_names
    except (AttributeError, TypeError):  # pragma: no cover - another river
        return False
    return names == _WRAPPER_NAMES and hasattr(probe, "_helper") and not probe._drift_detected


FAST_UPDATE = _wrapper_is_known()
"""True when the installed ``ADWIN.update`` is the wrapper described above."""


def update_adwin(detector: Any, x: float) -> bool:
    """``detector.update(x)``; returns ``detector.drift_detected``."""
    if FAST_UPDATE:
        if detector._drift_detected:
            detector._reset()
        flag: bool = detector._helper.update(x)
        detector._drift_detected = flag
        return flag
    detector.update(x)
    return bool(detector.drift_detected)
