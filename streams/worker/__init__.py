"""``policyloop worker``: the pipeline as a streaming service on Kafka.

Two stages, both run by every worker process (a Faust app; see app.py):

1. the **sequencer** (sequencer.py) consumes the input topics in a consumer group, so the
   workers share their partitions, and appends every record, unchanged, to the single
   partition of the internal ``policyloop-sequenced`` topic, with its source coordinates,
   followed by progress markers (position and end offset of each source partition);
2. the **pipeline runner** (runner.py) consumes that one partition (so exactly one worker
   runs the pipeline at a time; the others stand by and take over on a rebalance), decodes,
   dead-letters, runs ``processors.pipeline.Pipeline`` with a watermark computed from the
   markers, and publishes the outputs, its consumer offset and (periodically) a checkpoint of
   the whole state in one Kafka transaction.

Why: the pipeline's state is fleet-wide (strategy-level aggregates across symbols, the
fleet's alert budget, the policy loop), so it cannot be split by input partition without
changing results. The sequenced log fixes one interleaving of all inputs; the runner is a
pure function of that log, so after a crash it restores the last checkpoint, re-reads the log
from the checkpoint's offset with outputs suppressed up to the last committed offset, and
goes on: nothing lost, nothing doubled.

The stages take their Kafka clients from a factory (clients.py: aiokafka in production, the
in-memory broker of memory_broker.py in tests, same contract) and the runner its timers from
an injected clock, so tests drive both stages step by step without Kafka or waiting.
"""
