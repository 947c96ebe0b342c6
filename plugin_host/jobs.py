"""Generation jobs: one worker thread, fair across instances, supersede and cancel, limits.

Each instance has at most `max_per_instance` queued jobs (default 1): a new request past
that replaces the oldest queued one (which is answered with an error 'superseded'), and the
instance moves to the back of the line, so instances take turns. At most `max_total` jobs
wait in all; a request that would make more is refused (QueueFull) before anything is
queued. Cancel stops the queued jobs at once and a running one at its next sampling step.
Jobs never run on the OSC thread.

The worker outlives any exception in a job or its callbacks (each is guarded and logged),
and a supervisor thread restarts the worker should it die anyway; `health()` says how it is.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable


log = logging.getLogger("sideman.host")


class Cancelled(Exception):
    """Raised inside a job when its cancel flag is set."""


class QueueFull(ValueError):
    """The queue already holds its limit of jobs."""


class QueueClosed(RuntimeError):
    """The queue no longer takes jobs (the host is shutting down)."""


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


@dataclass(frozen=True)
class Health:
    """The worker as the OSC thread sees it (the ping reply)."""

    state: str  # 'idle' | 'running' | 'restarting' | 'stopped'
    queued: int  # jobs waiting, all instances
    restarts: int  # times the supervisor restarted a dead worker
    busy_seconds: float  # how long the running job has run (0 when idle)


def guarded(what: str, fn: Callable, *args) -> None:
    """Call a callback; log, never raise, whatever it does (the worker must live on)."""
    try:
        fn(*args)
    except Exception:
        log.exception("%s failed", what)


class JobQueue:
    """A fair, bounded queue with a single worker thread; `close()` stops it after the running job."""

    def __init__(self, max_total: int = 32, max_per_instance: int = 1):
        if max_total < 1 or max_per_instance < 1:
            raise ValueError("queue limits must be at least 1")
        self.max_total, self.max_per_instance = max_total, max_per_instance
        self._pending: OrderedDict[str, deque[Job]] = OrderedDict()
        self._count = 0
        self._running: Job | None = None
        self._started = 0.0
        self._cond = threading.Condition()
        self._closed = False
        self.restarts = 0
        self._worker = self._start_worker()
        self._supervisor = threading.Thread(target=self._supervise, name="sideman-jobs-supervisor",
                                            daemon=True)
        self._supervisor.start()

    def _start_worker(self) -> threading.Thread:
        worker = threading.Thread(target=self._run, name="sideman-jobs", daemon=True)
        worker.start()
        return worker

    def submit(self, job: Job) -> None:
        """Queue `job`; QueueFull (nothing changed) when the queue holds `max_total` jobs."""
        with self._cond:
            if self._closed:
                raise QueueClosed("the host is shutting down")
            queue = self._pending.get(job.instance, deque())
            old = queue.popleft() if len(queue) >= self.max_per_instance else None
            if old is None and self._count >= self.max_total:
                raise QueueFull(f"the queue is full ({self._count} jobs waiting, the host's limit "
                                f"is {self.max_total}); try again when a job has finished")
            queue.append(job)
            self._pending.pop(job.instance, None)
            self._pending[job.instance] = queue  # to the back of the line
            self._count += old is None
            self._cond.notify()
        if old is not None:
            guarded("on_dropped", old.on_dropped, old, f"superseded by request {job.req}")

    def cancel(self, instance: str) -> bool:
        """Cancel the instance's queued and running jobs; True if there was one."""
        with self._cond:
            queued = list(self._pending.pop(instance, ()))
            self._count -= len(queued)
            running = self._running if self._running and self._running.instance == instance else None
            if running:
                running.cancel_flag.set()
        for job in queued:
            guarded("on_dropped", job.on_dropped, job, "cancelled")
        return bool(queued) or running is not None

    def state(self, instance: str) -> tuple[str, int]:
        """('running' | 'queued' | 'idle', number of jobs waiting in total)."""
        with self._cond:
            if self._running and self._running.instance == instance:
                state = "running"
            else:
                state = "queued" if instance in self._pending else "idle"
            return state, self._count

    def ahead(self, instance: str) -> int:
        """Jobs that run before the instance's next queued one (the running job included);
        0 when it has none queued."""
        with self._cond:
            if instance not in self._pending:
                return 0
            before = 0
            for other, queue in self._pending.items():
                if other == instance:
                    break
                before += len(queue)
            return before + (self._running is not None)

    def health(self) -> Health:
        with self._cond:
            if self._closed:
                state = "stopped"
            elif not self._worker.is_alive():
                state = "restarting"
            else:
                state = "running" if self._running else "idle"
            busy = time.monotonic() - self._started if self._running else 0.0
            return Health(state, self._count, self.restarts, busy)

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            dropped = [job for queue in self._pending.values() for job in queue]
            self._pending.clear()
            self._count = 0
            if self._running:
                self._running.cancel_flag.set()
            self._cond.notify_all()
            worker = self._worker
        for job in dropped:
            guarded("on_dropped", job.on_dropped, job, "the host is shutting down")
        worker.join(timeout)

    def _next(self) -> Job | None:
        """The next job, round robin over instances (None once closed)."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            instance, queue = self._pending.popitem(last=False)
            job = queue.popleft()
            if queue:
                self._pending[instance] = queue  # its next job waits behind the others
            self._count -= 1
            self._running, self._started = job, time.monotonic()
            return job

    def _run(self) -> None:
        while (job := self._next()) is not None:
            after = None
            try:
                after = job.work(job)
            except Exception:  # work reports its own errors; the worker must outlive any job
                log.exception("job %s/%s failed", job.instance, job.req)
            # (a BaseException leaves the job as running: the supervisor answers it)
            with self._cond:
                self._running = None
            if after is not None:
                guarded(f"the final reply of job {job.instance}/{job.req}", after)

    def _supervise(self) -> None:
        """Restart the worker whenever it dies (only a BaseException or a bug in this class
        can kill it); the job it was running is answered as dropped."""
        while True:
            self._worker.join()
            with self._cond:
                if self._closed:
                    return
                lost, self._running = self._running, None
                self.restarts += 1
                self._worker = self._start_worker()
            log.error("the job worker died%s; restarted it (restart %d)",
                      f" running request {lost.instance}/{lost.req}" if lost else "", self.restarts)
            if lost is not None:
                guarded("on_dropped", lost.on_dropped, lost, "the job worker failed; it was restarted, try again")
