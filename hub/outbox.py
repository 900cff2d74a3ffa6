"""The durable outbox: every outbound message of every channel is a row here before it is sent.

Why: a reply must survive the hub being killed between "the agent pressed send" and "the
provider accepted it", and must never go out twice. Rows move queued -> sending -> sent |
failed (then delivered / undelivered from the provider's status callbacks).

- `enqueue` inserts with a per-tenant unique `idempotency_key`: enqueueing again returns the
  first row, so callers may retry freely.
- The worker claims a due row with a conditional update (a fresh claim token and a lease in
  `next_attempt_at`); a row left "sending" by a killed process is due again once its lease
  expires and is claimed again.
- Exactly once towards the provider: the provider id is written in the same update that marks
  the row sent. A reclaimed row that already has a provider id is only marked sent; one that
  was being sent (`send_started_at` set) asks the channel's `find_sent` whether the provider
  already has it before sending again (Twilio's Messages API has no idempotency key).
- Senders register by channel name in `ctx.extra["outbox_senders"]` (see `register`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from pymongo.errors import DuplicateKeyError, PyMongoError

from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow

log = logging.getLogger(__name__)

STATES = ("queued", "sending", "sent", "failed", "delivered", "undelivered")
MAX_ATTEMPTS = 6
BASE_BACKOFF_S = 2.0
MAX_BACKOFF_S = 600.0
# A send that takes longer than this is presumed dead (process killed) and is claimed again.
LEASE_S = float(os.environ.get("HUB_OUTBOX_LEASE_S", "30"))
POLL_S = 0.5
CONCURRENCY = 4


class SendError(Exception):
    """A send failed; `retryable` says whether the outbox should try again later."""

    def __init__(self, message: str, *, retryable: bool, code: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


class Sender(Protocol):
    """A channel's way out: `send` returns the provider's id for the message."""

    async def send(self, ctx: AppContext, row: Doc) -> str: ...

    async def find_sent(self, ctx: AppContext, row: Doc) -> str | None:
        """The provider id of this row if the provider already has it (after a crash), else None."""
        ...


@dataclass
class OutboxStats:
    claimed: int = 0
    sent: int = 0
    failed: int = 0


def register(ctx: AppContext, channel: str, sender: Sender) -> None:
    ctx.extra.setdefault("outbox_senders", {})[channel] = sender


def backoff_s(attempts: int) -> float:
    """Exponential backoff after `attempts` failed tries: 2, 4, 8 ... capped."""
    return float(min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** max(0, attempts - 1)))


def _wake(ctx: AppContext) -> None:
    event = ctx.extra.get("outbox_wake")
    if isinstance(event, asyncio.Event):
        event.set()


async def enqueue(
    ctx: AppContext,
    *,
    tenant_id: str,
    channel: str,
    to: str,
    body: str,
    idempotency_key: str,
    contact_id: str | None = None,
    meta: Doc | None = None,
) -> Doc:
    """Store an outbound message (once per key) and wake the worker; returns the row."""
    now = utcnow()
    row: Doc = {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "channel": channel,
        "to": to,
        "body": body,
        "idempotency_key": idempotency_key,
        "contact_id": contact_id,
        "meta": meta or {},
        "state": "queued",
        "attempts": 0,
        "next_attempt_at": now,
        "claim": None,
        "send_started_at": None,
        "provider_id": None,
        "provider_status": None,
        "error": None,
        "created_at": now,
        "updated_at": now,
        "sent_at": None,
    }
    try:
        await ctx.db.outbox.insert_one(row)
    except DuplicateKeyError:
        existing = await ctx.db.outbox.find_one({"tenant_id": tenant_id, "idempotency_key": idempotency_key})
        if existing is None:
            raise
        return existing
    _wake(ctx)
    return row


async def claim_due(ctx: AppContext) -> Doc | None:
    """Claim one due row (queued and due, or sending with an expired lease); None if none."""
    for _ in range(5):
        now = utcnow()
        candidate = await ctx.db.outbox.find_one(
            {"state": {"$in": ["queued", "sending"]}, "next_attempt_at": {"$lte": now}},
            sort=[("next_attempt_at", 1)],
        )
        if candidate is None:
            return None
        token = new_id()
        result = await ctx.db.outbox.update_one(
            {"_id": candidate["_id"], "state": candidate["state"], "claim": candidate["claim"]},
            {
                "$set": {
                    "state": "sending",
                    "claim": token,
                    "next_attempt_at": now + timedelta(seconds=LEASE_S),
                    "updated_at": now,
                }
            },
        )
        if result.modified_count == 1:
            return {**candidate, "state": "sending", "claim": token}
    return None  # lost every race: someone else is busy with them


async def _finish(ctx: AppContext, row: Doc, changes: Doc) -> bool:
    """Apply `changes` only while we still hold the claim."""
    result = await ctx.db.outbox.update_one(
        {"_id": row["_id"], "claim": row["claim"], "state": "sending"},
        {"$set": {**changes, "updated_at": utcnow()}},
    )
    return result.modified_count == 1


async def _mark_sent(ctx: AppContext, row: Doc, provider_id: str) -> None:
    """The provider id and the sent state in one write: a later claim never sends again."""
    await _finish(ctx, row, {"state": "sent", "provider_id": provider_id, "sent_at": utcnow(), "error": None})
    ctx.bus.publish(
        f"tenant:{row['tenant_id']}",
        {"type": "outbox", "id": row["_id"], "state": "sent", "contact_id": row.get("contact_id")},
    )


async def process(ctx: AppContext, row: Doc) -> str:
    """Send one claimed row; returns its new state."""
    sender: Sender | None = ctx.extra.get("outbox_senders", {}).get(row["channel"])
    if sender is None:
        await _finish(ctx, row, {"state": "failed", "error": f"no sender for channel {row['channel']}"})
        return "failed"
    if row.get("provider_id"):
        await _mark_sent(ctx, row, row["provider_id"])
        return "sent"
    if row.get("send_started_at") is not None:
        # A previous claim started sending and died: the provider may already have it.
        try:
            found = await sender.find_sent(ctx, row)
        except SendError as exc:
            return await _retry(ctx, row, exc)
        if found:
            log.info("outbox %s: found at the provider as %s after a crash", row["_id"], found)
            await _mark_sent(ctx, row, found)
            return "sent"
    if not await _finish(ctx, row, {"send_started_at": utcnow()}):
        return "lost"
    try:
        provider_id = await sender.send(ctx, row)
    except SendError as exc:
        return await _retry(ctx, row, exc)
    except Exception as exc:  # a bug in a sender must not stop the worker
        log.exception("outbox %s: sender crashed", row["_id"])
        return await _retry(ctx, row, SendError(str(exc), retryable=True))
    await _mark_sent(ctx, row, provider_id)
    return "sent"


async def _retry(ctx: AppContext, row: Doc, exc: SendError) -> str:
    attempts = int(row.get("attempts", 0)) + 1
    if not exc.retryable or attempts >= MAX_ATTEMPTS:
        await _finish(
            ctx,
            row,
            {"state": "failed", "attempts": attempts, "error": str(exc), "error_code": exc.code},
        )
        log.warning("outbox %s failed for good: %s", row["_id"], exc)
        return "failed"
    await _finish(
        ctx,
        row,
        {
            "state": "queued",
            "attempts": attempts,
            "error": str(exc),
            "error_code": exc.code,
            "claim": None,
            "send_started_at": None,
            "next_attempt_at": utcnow() + timedelta(seconds=backoff_s(attempts)),
        },
    )
    return "queued"


async def update_status(
    ctx: AppContext, provider_id: str, status: str, error: str | None = None
) -> Doc | None:
    """A provider status callback: record it; delivered / undelivered end a sent row."""
    changes: Doc = {"provider_status": status, "updated_at": utcnow()}
    if error:
        changes["error"] = error
    query: Doc = {"provider_id": provider_id}
    row = await ctx.db.outbox.find_one(query)
    if row is None:
        return None
    if status in ("delivered", "undelivered", "failed") and row["state"] in ("sent", "sending"):
        changes["state"] = "delivered" if status == "delivered" else "undelivered"
    await ctx.db.outbox.update_one({"_id": row["_id"]}, {"$set": changes})
    return {**row, **changes}


async def run(ctx: AppContext, stats: OutboxStats | None = None) -> None:
    """The worker loop (started by the hub's lifespan)."""
    wake = ctx.extra.setdefault("outbox_wake", asyncio.Event())
    stats = stats or OutboxStats()
    slots = asyncio.Semaphore(CONCURRENCY)
    running: set[asyncio.Task[Any]] = set()

    async def one(row: Doc) -> None:
        try:
            state = await process(ctx, row)
            stats.sent += state == "sent"
            stats.failed += state == "failed"
        except PyMongoError as exc:
            log.warning("outbox %s: database error, the lease will bring it back: %s", row["_id"], exc)
        finally:
            slots.release()

    try:
        while True:
            wake.clear()
            try:
                await slots.acquire()
                row = await claim_due(ctx)
            except PyMongoError as exc:
                slots.release()
                log.warning("outbox: database unavailable: %s", exc)
                await asyncio.sleep(1)
                continue
            if row is None:
                slots.release()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), POLL_S)
                continue
            stats.claimed += 1
            task = asyncio.create_task(one(row))
            running.add(task)
            task.add_done_callback(running.discard)
    finally:
        for task in running:
            task.cancel()
