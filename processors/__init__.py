"""Pure, synchronous processors of policyloop; pipeline.py composes them.

Nothing here imports faust, aiokafka or prometheus_client, reads os.environ or the wall clock.
"""
