"""The policy loop: the decision window it fits on (``loop_window``, ``tape_index``), the
proposer, the deterministic engine that turns p_hat into weights under a policy (``engine``,
``execute``), replay of a policy over the window (``replay``), the statistics of the gate
(``gate_stats``, ``stats_harness``), the gate itself, the archive with lineage and rollback, and
the stage that runs them on an event-time cadence (``loop``)."""

from processors.policy.loop import LoopContext, PolicyLoop, PolicyLoopConfig

__all__ = ["LoopContext", "PolicyLoop", "PolicyLoopConfig"]
