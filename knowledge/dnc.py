"""Do-not-contact lists: red, black and grey entries per tenant, and opt-outs.

Collection `dnc_entries` (docs/outbound.md): one entry per tenant, number and list, so
adding a number again refreshes its reason and keeps the *longer* expiry (an opt-out is
never shortened by a later import). Black and red are never dialled; grey asks an agent
to confirm. Expired entries are kept for the record but ignored.

Entries are keyed by phone number (E.164) or, for email campaigns, by the lower-case mail
address (`normalise_address`).

An opt-out (a key press on a robot call, STOP by SMS, an email unsubscribe link, an
agent's click) takes effect at once: a black entry, and the number's pending targets in
every campaign of the tenant are skipped. The dialer still checks the lists before each
call (routing.compliance), so a target created later is blocked too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from pymongo.errors import BulkWriteError, DuplicateKeyError

from hub.auth import decode_token, issue_token
from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, new_id, utcnow
from knowledge.customers import InvalidContactDetail, normalise_email

LISTS = ("black", "red", "grey")
SOURCES = ("manual", "import", "opt_out_key", "sms_stop", "email_unsubscribe", "agent")
OPT_OUT_SOURCES = ("opt_out_key", "sms_stop", "email_unsubscribe", "agent")
# Which entry wins when a number is on several lists: black and red both block.
_STRENGTH = {"black": 3, "red": 2, "grey": 1}
_IN_CHUNK = 1000


class DncError(ValueError):
    """A number, list or source that cannot be used; the message says which and why."""


def _aware(value: datetime) -> datetime:
    """Aware UTC; naive values from the driver are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else _aware(value)


def normalise_address(value: str, default_region: str | None = "US") -> str:
    """A list entry's key: E.164 for a phone number, the lower-case address for an email
    (email campaigns and their unsubscribe links use the same lists)."""
    text = str(value or "").strip()
    if "@" in text:
        try:
            return normalise_email(text)
        except InvalidContactDetail as exc:
            raise DncError(f"{text!r} is not a valid email address") from exc
    return normalise_number(text, default_region)


def normalise_number(value: str, default_region: str | None = "US") -> str:
    """E.164 through phonenumbers (national formats need `default_region`)."""
    text = str(value or "").strip()
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise DncError(f"{text!r} is not a phone number") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise DncError(f"{text!r} is not a valid phone number (region {default_region or 'unknown'})")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class DncEntry:
    id: str
    tenant_id: str
    number: str
    list: str
    reason: str
    expires_at: datetime | None
    source: str
    campaign_id: str | None
    created_by: str | None
    created_at: datetime

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > _aware(now)

    @property
    def blocks(self) -> bool:
        """Never dialled (black, red), as opposed to dialled after confirmation (grey)."""
        return self.list in ("black", "red")

    @classmethod
    def from_doc(cls, doc: Doc) -> DncEntry:
        return cls(
            id=doc["_id"],
            tenant_id=doc["tenant_id"],
            number=doc["number"],
            list=doc["list"],
            reason=doc.get("reason") or "",
            expires_at=_utc(doc.get("expires_at")),
            source=doc.get("source") or "manual",
            campaign_id=doc.get("campaign_id"),
            created_by=doc.get("created_by"),
            created_at=_utc(doc.get("created_at")) or utcnow(),
        )

    def public(self, now: datetime | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "list": self.list,
            "reason": self.reason,
            "expires_at": iso(self.expires_at),
            "source": self.source,
            "campaign_id": self.campaign_id,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "active": self.active(now or utcnow()),
        }


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    """The later expiry; None (never) is later than any date."""
    if a is None or b is None:
        return None
    return max(a, b)


async def add_entry(
    ctx: AppContext,
    tenant_id: str,
    number: str,
    list_name: str,
    *,
    reason: str = "",
    expires_at: datetime | None = None,
    source: str = "manual",
    campaign_id: str | None = None,
    created_by: str | None = None,
    default_region: str | None = "US",
) -> DncEntry:
    """Put a number on a list (or refresh its entry there); raises DncError on bad input."""
    if list_name not in LISTS:
        raise DncError(f"list must be one of {', '.join(LISTS)}")
    if source not in SOURCES:
        raise DncError(f"source must be one of {', '.join(SOURCES)}")
    e164 = normalise_address(number, default_region)
    expires_at = _utc(expires_at)
    now = utcnow()
    fields: Doc = {
        "reason": (reason or "").strip()[:500],
        "source": source,
        "campaign_id": campaign_id,
        "created_by": created_by,
        "created_at": now,
    }
    key = {"tenant_id": tenant_id, "number": e164, "list": list_name}
    for _ in range(3):  # an insert racing with another insert of the same number
        existing = await ctx.db.dnc_entries.find_one(key)
        if existing is not None:
            longer = _later(_utc(existing.get("expires_at")), expires_at)
            # an opt-out stays recorded as one: a later import or manual add only extends it
            keep = existing.get("source") in OPT_OUT_SOURCES and source not in OPT_OUT_SOURCES
            change = {"expires_at": longer} if keep else {**fields, "expires_at": longer}
            await ctx.db.dnc_entries.update_one({"_id": existing["_id"]}, {"$set": change})
            return DncEntry.from_doc({**existing, **change})
        doc: Doc = {"_id": new_id(), **key, **fields, "expires_at": expires_at}
        try:
            await ctx.db.dnc_entries.insert_one(doc)
        except DuplicateKeyError:
            continue
        return DncEntry.from_doc(doc)
    raise DncError("the entry changed while it was being saved; try again")


async def get_entry(ctx: AppContext, tenant_id: str, entry_id: str) -> DncEntry | None:
    doc = await ctx.db.dnc_entries.find_one({"_id": entry_id, "tenant_id": tenant_id})
    return None if doc is None else DncEntry.from_doc(doc)


async def remove_entry(ctx: AppContext, tenant_id: str, entry_id: str) -> DncEntry | None:
    """Delete one entry of the tenant; None if there is no such entry."""
    doc = await ctx.db.dnc_entries.find_one_and_delete({"_id": entry_id, "tenant_id": tenant_id})
    return None if doc is None else DncEntry.from_doc(doc)


async def active_entries(
    ctx: AppContext, tenant_id: str, numbers: Sequence[str], now: datetime
) -> dict[str, DncEntry]:
    """The strongest unexpired entry per number (black over red over grey)."""
    now = _aware(now)
    found: dict[str, DncEntry] = {}
    unique = sorted(set(numbers))
    for i in range(0, len(unique), _IN_CHUNK):
        query = {
            "tenant_id": tenant_id,
            "number": {"$in": unique[i : i + _IN_CHUNK]},
            "$or": [{"expires_at": None}, {"expires_at": {"$gt": now}}],
        }
        async for doc in ctx.db.dnc_entries.find(query):
            entry = DncEntry.from_doc(doc)
            if not entry.active(now):
                continue
            held = found.get(entry.number)
            if held is None or _STRENGTH[entry.list] > _STRENGTH[held.list]:
                found[entry.number] = entry
    return found


async def list_entries(
    ctx: AppContext,
    tenant_id: str,
    *,
    list_name: str | None = None,
    number: str | None = None,
    source: str | None = None,
    active_at: datetime | None = None,
    skip: int = 0,
    limit: int = 100,
) -> tuple[list[DncEntry], int]:
    """A page of the tenant's entries, newest first, and how many match in all."""
    query: Doc = {"tenant_id": tenant_id}
    if list_name:
        query["list"] = list_name
    if number:
        query["number"] = number
    if source:
        query["source"] = source
    if active_at is not None:
        query["$or"] = [{"expires_at": None}, {"expires_at": {"$gt": _utc(active_at)}}]
    total = await ctx.db.dnc_entries.count_documents(query)
    cursor = ctx.db.dnc_entries.find(query).sort([("created_at", -1), ("_id", 1)]).skip(skip).limit(limit)
    return [DncEntry.from_doc(doc) async for doc in cursor], total


@dataclass(frozen=True)
class OptOut:
    entry: DncEntry
    targets_skipped: int


async def opt_out(
    ctx: AppContext,
    tenant_id: str,
    number: str,
    source: str,
    *,
    campaign_id: str | None = None,
    by: str | None = None,
    default_region: str | None = "US",
) -> OptOut:
    """The customer asked not to be contacted: black-list the number now and skip its
    pending targets in every campaign of the tenant."""
    if source not in OPT_OUT_SOURCES:
        raise DncError(f"an opt-out source is one of {', '.join(OPT_OUT_SOURCES)}")
    entry = await add_entry(
        ctx,
        tenant_id,
        number,
        "black",
        reason=f"opted out ({source.replace('_', ' ')})",
        source=source,
        campaign_id=campaign_id,
        created_by=by,
        default_region=default_region,
    )
    result = await ctx.db.campaign_targets.update_many(
        {"tenant_id": tenant_id, "number": entry.number, "status": "pending"},
        {"$set": {"status": "skipped", "last_outcome": "opted_out", "next_attempt_at": None}},
    )
    ctx.bus.publish(f"tenant:{tenant_id}", {"type": "dnc.opt_out", "number": entry.number})
    return OptOut(entry=entry, targets_skipped=result.modified_count)


UNSUBSCRIBE_TOKEN = "unsubscribe"
UNSUBSCRIBE_TTL_S = 400 * 24 * 3600  # a campaign mail's link works for more than a year


def unsubscribe_link(ctx: AppContext, tenant_id: str, address: str, campaign_id: str | None) -> str:
    """The signed link a campaign mail carries (served by channels/email/unsubscribe.py).

    Signed rather than looked up so that a link works without a stored row and cannot be
    altered to opt out someone else."""
    token = issue_token(
        ctx.settings.secret, UNSUBSCRIBE_TOKEN, address, tenant_id, UNSUBSCRIBE_TTL_S, cid=campaign_id
    )
    return f"{ctx.settings.public_url}/u/{token}"


@dataclass(frozen=True)
class UnsubscribeGrant:
    tenant_id: str
    address: str
    campaign_id: str | None


def read_unsubscribe_token(secret: str, token: str) -> UnsubscribeGrant:
    """The grant of an unsubscribe link; `hub.auth.AuthError` when it is forged or expired."""
    payload = decode_token(secret, token, UNSUBSCRIBE_TOKEN)
    return UnsubscribeGrant(str(payload["tid"]), str(payload["sub"]), payload.get("cid"))


@dataclass(frozen=True)
class BulkAdd:
    added: int
    refreshed: int
    invalid: list[tuple[str, str]]  # (as given, why)


async def add_entries(
    ctx: AppContext,
    tenant_id: str,
    numbers: Sequence[str],
    list_name: str,
    *,
    reason: str = "",
    expires_at: datetime | None = None,
    source: str = "manual",
    created_by: str | None = None,
    default_region: str | None = "US",
) -> BulkAdd:
    """`add_entry` for many numbers at once (a few queries per 1,000 numbers, not two each)."""
    if list_name not in LISTS:
        raise DncError(f"list must be one of {', '.join(LISTS)}")
    if source not in SOURCES:
        raise DncError(f"source must be one of {', '.join(SOURCES)}")
    invalid: list[tuple[str, str]] = []
    valid: set[str] = set()
    for raw in numbers:
        try:
            valid.add(normalise_address(raw, default_region))
        except DncError as exc:
            invalid.append((str(raw), str(exc)))
    expires_at = _utc(expires_at)
    now = utcnow()
    fields: Doc = {
        "reason": (reason or "").strip()[:500],
        "source": source,
        "campaign_id": None,
        "created_by": created_by,
        "created_at": now,
    }
    ordered = sorted(valid)
    added = refreshed = 0
    for i in range(0, len(ordered), _IN_CHUNK):
        chunk = ordered[i : i + _IN_CHUNK]
        base = {"tenant_id": tenant_id, "list": list_name}
        existing = {
            doc["number"]: doc["_id"]
            async for doc in ctx.db.dnc_entries.find({**base, "number": {"$in": chunk}}, {"number": 1})
        }
        fresh = [
            {"_id": new_id(), **base, "number": n, **fields, "expires_at": expires_at}
            for n in chunk
            if n not in existing
        ]
        if fresh:
            try:
                added += len((await ctx.db.dnc_entries.insert_many(fresh, ordered=False)).inserted_ids)
            except BulkWriteError as exc:  # someone added some of them meanwhile: theirs stand
                added += int(exc.details.get("nInserted", 0))
        ids = list(existing.values())
        if not ids:
            continue
        refreshed += len(ids)
        # same rules as add_entry: the longer expiry wins, opt-outs keep their reason
        longer: Doc = {} if expires_at is None else {"expires_at": {"$ne": None, "$lt": expires_at}}
        await ctx.db.dnc_entries.update_many(
            {"_id": {"$in": ids}, **longer}, {"$set": {"expires_at": expires_at}}
        )
        await ctx.db.dnc_entries.update_many(
            {"_id": {"$in": ids}, "source": {"$nin": list(OPT_OUT_SOURCES)}}, {"$set": fields}
        )
    return BulkAdd(added=added, refreshed=refreshed, invalid=invalid)
