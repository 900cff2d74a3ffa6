"""Import jobs: one `list_imports` document per list import, with its progress and report.

Why: an HTTP upload of 50,000 rows takes longer than a request should, so the API starts
the import in the background and the page polls this document. The CLI records its
imports here too, so the campaign page shows every list that went in.

`list_imports`: `{_id, tenant_id, campaign_id, filename, source ("upload"|"cli"),
status ("queued"|"running"|"done"|"failed"), done, total, report?, error?, created_by,
created_at, updated_at, finished_at?}`. A job that stops advancing (its hub restarted
mid-import) is shown as failed after STALE_S; importing the file again is safe, because
rows already imported count as duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, new_id, utcnow
from routing.lists import ListImportError, import_targets, remove_quietly

log = logging.getLogger(__name__)
STALE_S = 120.0
PROGRESS_EVERY_S = 0.3  # at most about three progress writes a second per job
INTERRUPTED = "interrupted (the hub stopped during the import); import the file again"


async def create_job(
    ctx: AppContext,
    tenant_id: str,
    campaign_id: str,
    filename: str,
    created_by: str | None,
    source: str = "upload",
) -> Doc:
    now = utcnow()
    job: Doc = {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "campaign_id": campaign_id,
        "filename": filename,
        "source": source,
        "status": "queued",
        "done": 0,
        "total": 0,
        "report": None,
        "error": None,
        "created_by": created_by,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
    }
    await ctx.db.list_imports.insert_one(job)
    return job


async def run_job(
    ctx: AppContext,
    job: Doc,
    path: Path,
    *,
    region: str | None,
    cap: int | None,
    column: str | None,
    sheet: str | None,
    delete_file: bool = True,
) -> None:
    """Run an import job to its end, writing progress, then the report or the error."""
    jobs = ctx.db.list_imports
    last = 0.0

    async def progress(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < PROGRESS_EVERY_S and done < total:
            return
        last = now
        await jobs.update_one(
            {"_id": job["_id"]},
            {"$set": {"status": "running", "done": done, "total": total, "updated_at": utcnow()}},
        )

    try:
        await jobs.update_one({"_id": job["_id"]}, {"$set": {"status": "running", "updated_at": utcnow()}})
        report = await import_targets(
            ctx,
            job["tenant_id"],
            job["campaign_id"],
            path,
            job["filename"],
            default_region=region,
            cap=cap,
            column=column,
            sheet=sheet,
            progress=progress,
            import_id=job["_id"],
        )
        outcome: Doc = {
            "status": "done",
            "report": report,
            "done": report["total_rows"],
            "total": report["total_rows"],
        }
    except ListImportError as exc:
        outcome = {"status": "failed", "error": str(exc)}
    except asyncio.CancelledError:
        await jobs.update_one({"_id": job["_id"]}, {"$set": {"status": "failed", "error": INTERRUPTED}})
        raise
    except Exception as exc:  # a job must end in a state the page can show
        log.exception("list import %s failed", job["_id"])
        outcome = {"status": "failed", "error": f"internal error: {type(exc).__name__}"}
    finally:
        if delete_file:
            remove_quietly(path)
    now = utcnow()
    await jobs.update_one({"_id": job["_id"]}, {"$set": {**outcome, "updated_at": now, "finished_at": now}})


def start_job(ctx: AppContext, job: Doc, path: Path, **options: Any) -> asyncio.Task[None]:
    """Run the job in the background of this process (tasks are kept until they end)."""
    tasks: set[asyncio.Task[None]] = ctx.extra.setdefault("list_import_tasks", set())
    task = asyncio.create_task(run_job(ctx, job, path, **options), name=f"list-import-{job['_id']}")
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def get_job(ctx: AppContext, tenant_id: str, campaign_id: str, job_id: str) -> Doc | None:
    """The job (None if not this tenant's and campaign's), failing it first if it went stale."""
    job = await ctx.db.list_imports.find_one(
        {"_id": job_id, "tenant_id": tenant_id, "campaign_id": campaign_id}
    )
    if job is None or job["status"] not in ("queued", "running"):
        return job
    running_here = {task.get_name() for task in ctx.extra.get("list_import_tasks", set())}
    if f"list-import-{job_id}" in running_here:
        return job
    if utcnow() - _aware(job["updated_at"]) > timedelta(seconds=STALE_S):
        now = utcnow()
        await ctx.db.list_imports.update_one(
            {"_id": job_id, "status": job["status"], "updated_at": job["updated_at"]},
            {"$set": {"status": "failed", "error": INTERRUPTED, "finished_at": now}},
        )
        job = await ctx.db.list_imports.find_one({"_id": job_id})
    return job


def public_job(job: Doc) -> dict[str, Any]:
    """A job as the API shows it."""
    return {
        "import_id": job["_id"],
        "campaign_id": job["campaign_id"],
        "filename": job["filename"],
        "source": job.get("source"),
        "status": job["status"],
        "done": job.get("done", 0),
        "total": job.get("total", 0),
        "report": job.get("report"),
        "error": job.get("error"),
        "created_at": iso(job.get("created_at")),
        "finished_at": iso(job.get("finished_at")),
    }
