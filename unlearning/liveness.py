"""Whether the process that owns an active run still runs: for every reader, in any process.

An active run records its owner (pid, host, start time); a run whose owner is gone (killed, crashed) reads as
interrupted. The start time tells a reused pid from the original process.
"""
from __future__ import annotations

import functools
import os
import socket
from typing import Any

import psutil

from unlearning.options import finite_number


def this_process() -> dict:
    """The owner record of an active run: the pid alone could be reused by another process after a crash."""
    return dict(_process_record(os.getpid()))


@functools.cache
def _process_record(pid: int) -> dict:
    return {"pid": pid, "host": socket.gethostname(), "started": psutil.Process(pid).create_time()}


def owner_alive(owner: Any) -> bool:
    """Whether the process that owns an active run still runs. A run owned on another host cannot be checked from
    here: its record is trusted. A missing or malformed owner (runs older than owner records) counts as gone."""
    if not isinstance(owner, dict):
        return False
    pid = owner.get("pid")
    # pids are positive and below 2**31 on every system psutil knows; psutil raises ValueError on others
    if not (isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31 and finite_number(owner.get("started"))):
        return False
    if owner.get("host") != socket.gethostname():
        return True
    try:
        process = psutil.Process(pid)
        return abs(process.create_time() - owner["started"]) < 1.0 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
