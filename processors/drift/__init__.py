"""Online drift detection: covariate drift of decision features, concept and calibration drift
of p_hat against late labels (joined in decision-time order by ``truth`` and ``label_order``),
performance drift of realised round trips; the ADWIN adapter and the Bonferroni correction
they share."""

from processors.drift.concept_drift import ConceptDrift, ConceptDriftConfig
from processors.drift.covariate_drift import CovariateDrift, CovariateDriftConfig
from processors.drift.performance_drift import PerformanceDrift, PerformanceDriftConfig

__all__ = [
    "ConceptDrift",
    "ConceptDriftConfig",
    "CovariateDrift",
    "CovariateDriftConfig",
    "PerformanceDrift",
    "PerformanceDriftConfig",
]
