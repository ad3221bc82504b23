"""The web app's job queue: a bounded number of jobs admitted at once, a few of them running, one per user.

`Jobs.admit(user)` admits a job or refuses it at once with a `Refused` (a GenlabError the page shows): the same
user already has a job (waiting or running), or `capacity` jobs are already admitted (the queue is full). An
admitted job waits for one of `workers` slots (`Job.wait_turn`), runs, and is released by `Jobs.done`. A user's
`cancel` sets the job's flag; the sampler's per-step callback calls `Job.check`, which raises `Cancelled`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from genlab.errors import GenlabError


class Refused(GenlabError):
    """A job not admitted (the user has one already, or the queue is full)."""


class Cancelled(Exception):
    """Raised inside a job whose user pressed Cancel."""


@dataclass
class Job:
    user: str
    cancel_flag: threading.Event = field(default_factory=threading.Event)
    running: bool = False

    def check(self) -> None:
        """Raise `Cancelled` if the user cancelled this job."""
        if self.cancel_flag.is_set():
            raise Cancelled


class Jobs:
    def __init__(self, *, capacity: int = 8, workers: int = 1):
        if workers < 1 or capacity < workers:
            raise GenlabError(f"the queue needs workers >= 1 and capacity >= workers, got {workers} and {capacity}")
        self.capacity, self.workers = capacity, workers
        self._lock = threading.Lock()
        self._turn = threading.Condition(self._lock)
        self._jobs: list[Job] = []  # admitted, in order of admission

    def admit(self, user: str) -> Job:
        with self._lock:
            if any(j.user == user for j in self._jobs):
                raise Refused("you already have a job queued or running: wait for it to finish or press Cancel")
            if len(self._jobs) >= self.capacity:
                raise Refused(
                    f"the server is busy ({self.capacity} jobs queued or running, the limit): try again in a moment"
                )
            job = Job(user)
            self._jobs.append(job)
            return job

    def ahead(self, job: Job) -> int:
        """Jobs admitted before `job` that have not started (0 once it runs)."""
        with self._lock:
            if job.running or job not in self._jobs:
                return 0
            return sum(1 for j in self._jobs[: self._jobs.index(job)] if not j.running)

    def wait_turn(self, job: Job, timeout: float | None = None) -> bool:
        """Block until `job` holds a worker slot (True), or `timeout` seconds pass (False); raises `Cancelled`.
        Slots go in order of admission."""
        with self._turn:
            while True:
                job.check()
                waiting = [j for j in self._jobs if not j.running]
                if sum(j.running for j in self._jobs) < self.workers and waiting and waiting[0] is job:
                    job.running = True
                    return True
                if not self._turn.wait(timeout):
                    return False

    def done(self, job: Job) -> None:
        with self._turn:
            if job in self._jobs:
                self._jobs.remove(job)
            self._turn.notify_all()

    def cancel(self, user: str) -> bool:
        """Cancel `user`'s job; False if the user has none."""
        with self._turn:
            found = [j for j in self._jobs if j.user == user]
            for j in found:
                j.cancel_flag.set()
            self._turn.notify_all()
            return bool(found)

    def counts(self) -> dict:
        with self._lock:
            running = sum(j.running for j in self._jobs)
            return {"running": running, "waiting": len(self._jobs) - running}
