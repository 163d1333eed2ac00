"""river's ADWIN with a cheaper per-value update, for the detectors' hot paths.

``river.drift.ADWIN.update(x)`` is a Python wrapper around its Rust core: reset the window
if the previous value signalled a drift, then ``_drift_detected = _helper.update(x)``.
``update_adwin(detector, x)`` does exactly that (same state, same result, same pickle) and
returns the new ``drift_detected``; callers in a loop inline the same three lines when
``FAST_UPDATE`` holds (the wrapper, its property read and its frame cost ~0.2 us of ~0.35).
``FAST_UPDATE`` is False when the installed river's ``ADWIN.update`` is not that wrapper;
then only the public ``update`` / ``drift_detected`` are used.
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
