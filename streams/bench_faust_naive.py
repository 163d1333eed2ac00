"""The baseline the worker is measured against: a naive one-event-at-a-time Faust agent that
decodes each input record with the models and counts it (no pipeline work at all).

Run as ``python -m streams.bench_faust_naive EXPECTED`` with POLICYLOOP_* settings; prints
``naive_faust_records_per_s=<rate> consumed=<n>`` once EXPECTED records were consumed, or
once no record came for ``IDLE_S`` seconds (the rate is then over the records consumed, up
to the last one), then exits.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import faust

from models.topics import INPUT_TOPICS
from streams.adapter import decode_record
from streams.settings import Settings

IDLE_S = 5.0


def main() -> None:
    expected = int(sys.argv[1])
    settings = Settings.from_env()
    app = faust.App(
        f"{settings.topic_prefix}naive-faust-bench",
        broker=f"kafka://{settings.bootstrap_servers}",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        topic_disable_leader=True,
    )
    names = {settings.topic(name): name for name in INPUT_TOPICS}
    topic = app.topic(*names, value_serializer="raw", key_serializer="raw")
    state: dict[str, Any] = {"count": 0, "started": None, "last": None, "done": False}

    def report() -> None:
        if state["done"]:
            return
        state["done"] = True
        elapsed = state["last"] - state["started"]
        rate = state["count"] / elapsed if elapsed > 0 else 0.0
        print(f"naive_faust_records_per_s={rate:.0f} consumed={state['count']}", flush=True)
        # not app.stop(): called from the agent, it waits for the agent's own in-flight
        # event to be acknowledged, which never happens (the process hangs)
        os._exit(0)

    @app.agent(topic)
    async def naive(stream: Any) -> None:
        async for event in stream.events():
            if state["started"] is None:
                state["started"] = time.perf_counter()
            message = event.message
            decode_record(
                names[message.topic],
                message.key,
                message.value,
                f"{message.partition}:{message.offset}",
            )
            state["count"] += 1
            state["last"] = time.perf_counter()
            if state["count"] >= expected:
                report()
                return

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def idle_check() -> None:
        last = state["last"]
        if last is not None and time.perf_counter() - last > IDLE_S:
            report()

    faust.Worker(
        app, loglevel="error", quiet=True, redirect_stdouts=False
    ).execute_from_commandline()


if __name__ == "__main__":
    main()
