"""Background jobs: one worker thread per device runs them in order; the UI only watches.

A job's state lives here, not in a browser session, so a page reload or a second tab sees the same running job,
and closing the browser does not stop it. Cancelling sets the job's own Event, checked between training steps.
"""
from __future__ import annotations

import errno
import itertools
import math
import queue
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

FINISHED = ("done", "failed", "cancelled")
Progress = Callable[[float, str], None]  # (fraction of the whole job done, what it is doing now)


@contextmanager
def ticking(progress: Progress, start: float, end: float, stage: str, expected_seconds: float) -> Iterator[None]:
    """Keep the bar moving through a step that reports nothing itself (loading weights, saving them).

    Every second the stage shows the seconds elapsed and the bar creeps from `start` towards `end`, never reaching it
    (1 - e^(-t / expected_seconds) of the way), so a slow step looks slow rather than stuck.
    """
    progress(start, stage)
    began, stop = time.monotonic(), threading.Event()

    def tick() -> None:
        while not stop.wait(1.0):
            elapsed = time.monotonic() - began
            progress(start + (end - start) * (1 - math.exp(-elapsed / expected_seconds)), f"{stage} ({elapsed:.0f} s)")

    thread = threading.Thread(target=tick, name="progress-ticker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@dataclass
class Job:
    id: int
    title: str
    fn: Callable[["Job"], Any]
    state: str = "queued"  # queued | running | done | failed | cancelled
    progress: float = 0.0
    stage: str = "waiting for the device"
    steps: list[dict] = field(default_factory=list)  # training logs so far, for live curves
    result: Any = None
    error: str = ""
    run_id: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)
    created: float = field(default_factory=time.time)

    def report(self, progress: float | None = None, stage: str | None = None) -> None:
        if progress is not None:
            self.progress = min(max(progress, 0.0), 1.0)
        if stage is not None:
            self.stage = stage

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def user_message(error: BaseException) -> str:
    """What a user reads when a job fails: the cause and what to try, never a traceback."""
    text = str(error) or type(error).__name__
    # safetensors' writer raises its own error type, with the OS's words in it
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "no space left on device" in text.lower():
        where = f" while writing {Path(error.filename).name}" if getattr(error, "filename", None) else ""
        return (f"The disk is full (no space left on device{where}). Free some space and start again; what was "
                "written before is kept.")
    if isinstance(error, MemoryError) or "out of memory" in text.lower() or "can't allocate memory" in text.lower():
        return "Out of memory. Try a smaller batch size, a shorter max length, LoRA, or training only the last k layers."
    return text


class JobRunner:
    """A FIFO of jobs executed one at a time by a daemon thread (one device, one job)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Job] = queue.Queue()
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        threading.Thread(target=self._work, name="unlearning-jobs", daemon=True).start()

    def submit(self, title: str, fn: Callable[[Job], Any]) -> Job:
        job = Job(next(self._ids), title, fn)
        with self._lock:
            self._jobs[job.id] = job
        self._queue.put(job)
        return job

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.id)

    def position(self, job: Job) -> int:
        """0 while running, n when n-1 jobs are ahead of it in the queue."""
        if job.state != "queued":
            return 0
        return 1 + sum(1 for j in self.jobs() if j.state in ("queued", "running") and j.id < job.id)

    def cancel(self, job_id: int) -> None:
        job = self._jobs.get(job_id)
        if job is not None and not job.finished:
            job.cancel.set()

    def wait(self, job: Job, timeout: float | None = None) -> Job:
        deadline = None if timeout is None else time.time() + timeout
        while not job.finished and (deadline is None or time.time() < deadline):
            time.sleep(0.05)
        return job

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job.cancel.is_set():
                job.state, job.stage = "cancelled", "cancelled before it started"
                continue
            job.state, job.stage = "running", "starting"
            try:
                job.result = job.fn(job)
                job.state = "cancelled" if job.cancel.is_set() else "done"
                job.progress = 1.0 if job.state == "done" else job.progress
            except BaseException as error:  # noqa: BLE001 - a job must never kill the worker thread
                job.error = user_message(error)
                job.state, job.stage = "failed", job.error
                traceback.print_exc()  # full detail for the server log; the UI shows job.error only
