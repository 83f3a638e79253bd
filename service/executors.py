"""Thread pools by kind of blocking work, so a probe never queues behind model or admin work.

`asyncio.to_thread` shares the loop's one default pool (6 threads on 2 cores):
queued authorised reloads, each waiting for the repository's reload lock, once
made `/metrics` wait 17 s behind them. Each kind now has its own pool: reloads
run one at a time in theirs (the lock would serialise them anyway), the
probes' few blocking calls in theirs, and image decoding has the predictor's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

PROBE_POOL = ThreadPoolExecutor(1, thread_name_prefix="probes")
ADMIN_POOL = ThreadPoolExecutor(1, thread_name_prefix="admin")


async def run_in(pool: ThreadPoolExecutor, call: Callable[[], T]) -> T:
    """Run a blocking call in `pool` without blocking the event loop."""
    return await asyncio.get_running_loop().run_in_executor(pool, call)
