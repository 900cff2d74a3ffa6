"""Recording retention: audio older than the tenant's `retention_days` is deleted.

`purge_expired` deletes the GridFS file of every recording that started before its
tenant's cut-off (`RecordingSettings.retention_days`; 0 keeps everything forever) and
marks the `recordings` document `deleted_at` / `delete_reason: "retention"`; the
document itself stays as the audit trail. The file goes first, then the mark, so a
crash in between leaves a document that the next pass finishes (the missing file is
fine). Several hubs may run the loop against one database: the mark is conditional on
`deleted_at` still being unset, so each recording is counted once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from gridfs.asynchronous import AsyncGridFSBucket
from gridfs.errors import NoFile

from hub.context import AppContext
from hub.ids import utcnow
from media.recording import BUCKET, RecordingSettings

log = logging.getLogger(__name__)
BATCH = 500


async def purge_expired(ctx: AppContext, now: datetime | None = None) -> int:
    """Delete expired recordings' audio; the number of recordings marked deleted."""
    now = now or utcnow()
    grid = AsyncGridFSBucket(ctx.db.db, bucket_name=BUCKET)
    purged = 0
    tenant_ids = await ctx.db.recordings.distinct("tenant_id", {"deleted_at": None})
    for tenant_id in sorted(t for t in tenant_ids if t):
        tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"recording": 1}) or {}
        settings = RecordingSettings.from_doc(tenant.get("recording"))
        if settings.retention_days <= 0:
            continue
        cutoff = now - timedelta(days=settings.retention_days)
        query = {"tenant_id": tenant_id, "deleted_at": None, "started_at": {"$lt": cutoff}}
        while True:
            batch = await ctx.db.recordings.find(query, {"file_id": 1}).limit(BATCH).to_list()
            for doc in batch:
                try:
                    await grid.delete(doc["file_id"])
                except NoFile:
                    pass  # already gone (an interrupted pass or another hub)
                result = await ctx.db.recordings.update_one(
                    {"_id": doc["_id"], "deleted_at": None},
                    {"$set": {"deleted_at": utcnow(), "delete_reason": "retention"}},
                )
                purged += result.modified_count
            if len(batch) < BATCH:
                break
    if purged:
        log.info("retention: deleted the audio of %d recordings", purged)
    return purged


async def retention_loop(ctx: AppContext, interval_s: float = 3600) -> None:
    """`purge_expired` now and every `interval_s`; database errors are logged, not fatal."""
    while True:
        try:
            await purge_expired(ctx)
        except Exception:
            log.exception("recording retention pass failed; retrying in %.0f s", interval_s)
        await asyncio.sleep(interval_s)
