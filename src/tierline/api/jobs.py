"""Screening jobs: an uploaded order book screened in the background, with progress, its decisions
and rejects kept under ``$TIERLINE_HOME/screenings/<id>/`` for download, and applied on request."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierline.ledger import Ledger
from tierline.screen.run import Result, apply_result, batch_key, screen_against_ledger

STATES = ("queued", "running", "done", "refused", "failed")


@dataclass
class Job:
    id: str
    created_by: str
    vintage: str
    skip_invalid: bool
    orders: Path
    out: Path
    status: str = "queued"
    lines_done: int = 0
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    result: Result | None = None
    error: str | None = None
    applied: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "lines_done": self.lines_done,
            "vintage": self.vintage,
            "skip_invalid": self.skip_invalid,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "applied": self.applied,
        }
        if self.error:
            out["error"] = self.error
        if self.result is not None:
            out["summary"] = self.result.summary or None
            out["rejected"] = self.result.bad_count
            out["problems"] = [b.as_dict() for b in self.result.bad[:100]]
            out["decisions_url"] = f"/v1/screenings/{self.id}/decisions" if self.result.out else None
            out["rejects_url"] = f"/v1/screenings/{self.id}/rejects" if self.result.rejects else None
        return out


class Jobs:
    """The service's screening jobs (kept in memory; files on disk)."""

    def __init__(self, ledger: Ledger, root: Path) -> None:
        self.ledger, self.root = ledger, root
        self.jobs: dict[str, Job] = {}

    def submit(self, upload: Path, suffix: str, vintage: str, skip_invalid: bool, caller: str) -> Job:
        job_id = uuid.uuid4().hex[:16]
        folder = self.root / job_id
        folder.mkdir(parents=True)
        orders = folder / f"orders{suffix}"
        shutil.move(str(upload), orders)
        job = Job(job_id, caller, vintage, skip_invalid, orders, folder / f"decisions{suffix}")
        self.jobs[job_id] = job
        threading.Thread(target=self._run, args=(job,), daemon=True, name=f"screen-{job_id}").start()
        return job

    def _run(self, job: Job) -> None:
        job.status = "running"

        def advance(n: int) -> None:
            job.lines_done += n

        try:
            job.result = screen_against_ledger(
                self.ledger,
                job.orders,
                job.out,
                vintage=job.vintage,
                skip_invalid=job.skip_invalid,
                collect_draws=True,
                progress=advance,
            )
            job.status = "refused" if job.result.refused else "done"
        except Exception as exc:  # noqa: BLE001 - the job reports it; the service stays up
            from tierline.errors import TierlineError

            job.error = f"{exc.field}: {exc.reason}" if isinstance(exc, TierlineError) else "the screening failed"
            job.status = "failed"

    def apply(self, job: Job, actor: str) -> dict[str, Any]:
        """Record the job's draws in the ledger, all or none, once (idempotent on the batch key)."""
        from tierline.errors import TierlineError

        if job.status != "done" or job.result is None:
            raise TierlineError("status", f"screening {job.id} is {job.status}; only a finished one can be applied")
        with job.lock:
            if job.applied is not None:
                return {**job.applied, "replayed": True}
            key = f"{batch_key(job.orders, job.vintage)}:{job.id}"
            applied = apply_result(
                self.ledger, job.result, job.orders, key=key, actor=actor, note=f" screening {job.id}"
            )
            applied = applied or {"applied": [], "lines": 0, "replayed": False}
            job.applied = {**applied, "batch_key": key}
            return job.applied
