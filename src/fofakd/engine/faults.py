"""Fault injection for the reliability tests: `FOFAKD_FAULT=EVENT:N` makes this process misbehave at the N-th
EVENT, exactly where a real crash or signal could strike. Unset (always, outside tests) it does nothing.

Events: `kill-at-step` (SIGKILL after an optimiser step), `term-at-step` (SIGTERM after an optimiser step),
`kill-after-epoch` (SIGKILL once an epoch's checkpoint and metrics are written), `kill-in-save` (SIGKILL with a
checkpoint half written).
"""
from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def fault_point(event: str) -> None:
    """Count `event`; raise the configured signal when its count reaches the configured N."""
    spec = os.environ.get("FOFAKD_FAULT")
    if not spec:
        return
    wanted, _, count = spec.partition(":")
    if wanted != event:
        return
    rank = os.environ.get("FOFAKD_FAULT_RANK")
    if rank is not None and rank != os.environ.get("RANK", "0"):
        return
    _counts[event] = _counts.get(event, 0) + 1
    if _counts[event] == int(count or 1):
        os.kill(os.getpid(), signal.SIGTERM if event.startswith("term") else signal.SIGKILL)
