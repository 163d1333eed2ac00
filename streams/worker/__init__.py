"""``policyloop worker``: the pipeline as a streaming service on Kafka.

Three stages, all run by every worker process (a Faust app; see app.py), each a consumer
group, so the workers share the work and a worker that dies hands its share over:

1. the **sequencer** (sequencer.py) consumes the input topics, so the workers share their
   partitions, and appends every record, unchanged, with its source coordinates, to the
   partition of the internal ``policyloop-sequenced`` topic that holds its strategy's lane,
   followed by progress and idleness markers of each source partition to every partition;
2. the **lane runners** (runner.py, ``LaneRunner``): Kafka assigns the sequenced partitions
   to the workers; for each it holds, a worker runs the pipeline's front and lanes
   (``processors.pipeline.Pipeline`` without the global stage) with a watermark computed
   from the markers, publishes the lanes' outputs and sends the global stage's items to the
   internal ``policyloop-lane-items`` topic;
3. the **global runner** (runner.py, ``GlobalRunner``, one worker at a time) runs the alert
   router and the policy loop over every partition's items in tag order.

Every runner is a pure function of its log and publishes its outputs, its consumer offset
and (periodically) a checkpoint of its state in one Kafka transaction, so after a crash or a
rebalance the next holder restores the last checkpoint, re-reads the log from the
checkpoint's offset with outputs suppressed up to the last committed offset, and goes on:
nothing lost, nothing doubled.

The stages take their Kafka clients from a factory (clients.py: aiokafka in production, the
in-memory broker of memory_broker.py in tests, same contract) and the runners their timers
from an injected clock, so tests drive the stages step by step without Kafka or waiting.
"""
