"""Failpoints for crash tests: ``UDASA_KILL_AT=name:k`` SIGKILLs the process at the k-th hit of ``name``.

Stages call `failpoint("sample.batch")` etc. right after a unit of work is made durable, so the
fault-injection test can stop a run at exact places (mid-sampling, mid-scoring, between stages,
mid-evaluation) and check that a rerun ends with the same artifacts. Without the variable a
failpoint is one dict lookup.
"""
from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def failpoint(name: str) -> None:
    spec = os.environ.get("UDASA_KILL_AT")
    if not spec:
        return
    target, _, k = spec.partition(":")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(k or 1):
        os.kill(os.getpid(), signal.SIGKILL)
