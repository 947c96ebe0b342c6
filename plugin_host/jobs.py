"""Generation jobs: one worker thread, fair across instances, supersede and cancel.

Each instance has at most one queued job: a new request replaces the queued one (the old
one is answered with an error 'superseded'), and the instance moves to the back of the
line, so instances take turns. Cancel stops a queued job at once and a running one at its
next sampling step. Jobs never run on the OSC thread.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable


log = logging.getLogger("sideman.host")


class Cancelled(Exception):
    """Raised inside a job when its cancel flag is set."""


@dataclass
class Job:
    instance: str
    req: int
    work: Callable[["Job"], Callable[[], None] | None]  # runs the job; may return a final
    # reply to send once the job no longer counts as running (so a status right after it is idle)
    on_dropped: Callable[["Job", str], None]  # called when superseded or cancelled before running
    cancel_flag: threading.Event = field(default_factory=threading.Event)

    def check_cancelled(self) -> None:
        if self.cancel_flag.is_set():
            raise Cancelled(f"request {self.req} cancelled")


class JobQueue:
    """A fair queue with a single worker thread; `close()` stops it after the running job."""

    def __init__(self):
        self._pending: OrderedDict[str, Job] = OrderedDict()
        self._running: Job | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="sideman-jobs", daemon=True)
        self._worker.start()

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the host is shutting down")
            old = self._pending.pop(job.instance, None)
            self._pending[job.instance] = job
            self._cond.notify()
        if old is not None:
            old.on_dropped(old, f"superseded by request {job.req}")

    def cancel(self, instance: str) -> bool:
        """Cancel the instance's queued and running jobs; True if there was one."""
        with self._cond:
            queued = self._pending.pop(instance, None)
            running = self._running if self._running and self._running.instance == instance else None
            if running:
                running.cancel_flag.set()
        if queued is not None:
            queued.on_dropped(queued, "cancelled")
        return queued is not None or running is not None

    def state(self, instance: str) -> tuple[str, int]:
        """('running' | 'queued' | 'idle', number of jobs waiting in total)."""
        with self._cond:
            if self._running and self._running.instance == instance:
                state = "running"
            else:
                state = "queued" if instance in self._pending else "idle"
            return state, len(self._pending)

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            dropped = list(self._pending.values())
            self._pending.clear()
            if self._running:
                self._running.cancel_flag.set()
            self._cond.notify_all()
        for job in dropped:
            job.on_dropped(job, "the host is shutting down")
        self._worker.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                _, job = self._pending.popitem(last=False)
                self._running = job
            after = None
            try:
                after = job.work(job)
            except Exception:  # work reports its own errors; the worker must outlive any job
                log.exception("job %s/%s failed", job.instance, job.req)
            finally:
                with self._cond:
                    self._running = None
            if after is not None:
                after()
