"""Prepaid accounts: balances, top-ups, applying charges exactly once, and the low-balance stop.

One `billing_accounts` document per billed tenant (`_id` = tenant id). A tenant without
one is not billed and never stopped (billing off).

Exactly-once balance changes (a top-up's credit, a batch of billing records' debit) use the
two-phase pattern MongoDB documents for multi-document changes without transactions
(transactions need a replica set; the hub also runs on a standalone server):
1. the entry is inserted in state "open": a top-up with `applied: false`; for billing records
   a `billing_charges` row `{_id: charge_id, tenant_id, state: "open"}` is inserted first,
   then the records carrying that `charge_id` (their unique key makes a second insert of the
   same event fail, so nothing is rated twice);
2. one atomic update on the account adds the amount (a charge: the sum of the records it
   inserted) *and* pushes the entry's key to the account's `pending` list, guarded by
   `pending != key`: repeating this step is a no-op;
3. the entry is marked done: the top-up `applied: true`, the charge `state: "applied"`
   (one write however many records it holds: the rater writes each record once);
4. the key is pulled from `pending`.
The key of a top-up is its id, of a charge its id (the rater opens one charge per account
per batch), so `pending` stays short and every step is one indexed write.
A crash after 1 leaves the entry open and `recover` redoes 2-4 (a charge's amount is summed
again from its records); a crash after 2 leaves the key in `pending`, so the redo of 2
matches nothing and cannot charge twice. `recover` only touches entries older than
RECOVER_AFTER, so it never races a process still between 1 and 4. Records written before
charges had rows of their own carry `applied: false` until debited and are finished the
same way.

Low-balance stop: `may_place_outbound` refuses outbound calls and campaign messages of a
tenant when its balance, or that of any billed tenant above it (a reseller pays for its
customers' traffic), is at or below its `stop_below_micros`. The hub installs it in
`ctx.extra["outbound_guards"]`; routing consults the list and never imports billing.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from billing.rating import format_micros
from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow

log = logging.getLogger(__name__)

RECOVER_AFTER = timedelta(seconds=60)
MAX_TOP_UP_MICROS = 10**15  # a billion units: a typo guard, not a business limit
MAX_MARKUP_PCT = 1000.0


class AccountError(ValueError):
    """Invalid account data or operation (shown as 422 / 409)."""


def new_account(tenant_id: str, currency: str = "USD") -> Doc:
    return {
        "_id": tenant_id,
        "tenant_id": tenant_id,
        "currency": currency,
        "balance_micros": 0,
        "stop_below_micros": 0,
        "voice_group_id": None,
        "sms_group_id": None,
        "inbound_group_id": None,
        "markup_pct": 0.0,
        "pending": [],
        "updated_at": utcnow(),
    }


async def get_account(ctx: AppContext, tenant_id: str) -> Doc | None:
    return await ctx.db.billing_accounts.find_one({"_id": tenant_id})


async def ensure_account(ctx: AppContext, tenant_id: str, currency: str = "USD") -> Doc:
    """The tenant's account, created (balance 0) if it has none."""
    fresh = new_account(tenant_id, currency)
    await ctx.db.billing_accounts.update_one(
        {"_id": tenant_id}, {"$setOnInsert": {k: v for k, v in fresh.items() if k != "_id"}}, upsert=True
    )
    found = await get_account(ctx, tenant_id)
    assert found is not None
    return found


async def configure(ctx: AppContext, tenant_id: str, changes: dict[str, Any]) -> Doc:
    """Set group ids, markup, stop level or currency (validated by the caller's API)."""
    allowed = {
        "voice_group_id",
        "sms_group_id",
        "inbound_group_id",
        "markup_pct",
        "stop_below_micros",
        "currency",
    }
    unknown = set(changes) - allowed
    if unknown:
        raise AccountError(f"unknown account fields: {', '.join(sorted(unknown))}")
    if "markup_pct" in changes:
        markup = float(changes["markup_pct"])
        if not -100.0 < markup <= MAX_MARKUP_PCT:
            raise AccountError(f"markup_pct must be above -100 and at most {MAX_MARKUP_PCT:g}")
        changes["markup_pct"] = markup
    await ensure_account(ctx, tenant_id, str(changes.get("currency") or "USD"))
    await ctx.db.billing_accounts.update_one(
        {"_id": tenant_id}, {"$set": {**changes, "updated_at": utcnow()}}
    )
    found = await get_account(ctx, tenant_id)
    assert found is not None
    return found


def public_account(account: Doc, tenant: Doc | None = None) -> Doc:
    balance = int(account.get("balance_micros") or 0)
    stop = int(account.get("stop_below_micros") or 0)
    return {
        "tenant_id": account["_id"],
        "tenant_name": (tenant or {}).get("name"),
        "tenant_level": (tenant or {}).get("level"),
        "currency": account.get("currency") or "USD",
        "balance": format_micros(balance),
        "balance_micros": balance,
        "stop_below": format_micros(stop),
        "stop_below_micros": stop,
        "stopped": balance <= stop,
        "voice_group_id": account.get("voice_group_id"),
        "sms_group_id": account.get("sms_group_id"),
        "inbound_group_id": account.get("inbound_group_id"),
        "markup_pct": float(account.get("markup_pct") or 0),
        "updated_at": account.get("updated_at"),
    }


# ------------------------------------------------------------------------------ the ledger


async def apply_entry(ctx: AppContext, ledger: str, entry: Doc) -> bool:
    """Steps 2-4 of the module's two-phase change for one top-up (credit) or one billing
    record of its own (debit); True if this call moved the balance."""
    if ledger == "billing_records":
        charge_id = entry.get("charge_id") or entry["_id"]
        return await _apply_flagged_records(
            ctx, entry["tenant_id"], charge_id, int(entry.get("amount_micros") or 0)
        )
    moved = await _move(ctx, entry["tenant_id"], entry["_id"], int(entry.get("amount_micros") or 0))
    await ctx.db.top_ups.update_one({"_id": entry["_id"]}, {"$set": {"applied": True}})
    await ctx.db.billing_accounts.update_one(
        {"_id": entry["tenant_id"]}, {"$pull": {"pending": entry["_id"]}}
    )
    return moved


async def open_charges(ctx: AppContext, charge_ids: dict[str, str]) -> None:
    """Step 1 of a batch's debit, before its records are inserted: one open charge per
    account (tenant id -> charge id), so a crash right after the insert is found again."""
    now = utcnow()
    await ctx.db.billing_charges.insert_many(
        [
            {"_id": charge_id, "tenant_id": tenant_id, "state": "open", "created_at": now}
            for tenant_id, charge_id in charge_ids.items()
        ]
    )


async def apply_charge(ctx: AppContext, tenant_id: str, charge_id: str, total_micros: int) -> bool:
    """Steps 2-4 for one charge: debit the sum of its records (`charge_id` on each record),
    then mark the charge applied and release the key; True if this call moved the balance."""
    moved = await _move(ctx, tenant_id, charge_id, -total_micros)
    await ctx.db.billing_charges.update_one(
        {"_id": charge_id},
        {"$set": {"state": "applied", "total_micros": total_micros, "applied_at": utcnow()}},
    )
    await ctx.db.billing_accounts.update_one({"_id": tenant_id}, {"$pull": {"pending": charge_id}})
    return moved


async def drop_charge(ctx: AppContext, charge_id: str) -> None:
    """A charge none of whose records was inserted (all rated before): nothing to debit."""
    await ctx.db.billing_charges.delete_one({"_id": charge_id, "state": "open"})


async def _apply_flagged_records(ctx: AppContext, tenant_id: str, key: str, total_micros: int) -> bool:
    """Steps 2-4 for records that carry their own `applied: false` (written before charges
    had rows of their own, or without a charge id: the record is its own charge)."""
    moved = await _move(ctx, tenant_id, key, -total_micros)
    await ctx.db.billing_records.update_many(
        {"charge_id": key, "applied": False}, {"$set": {"applied": True}}
    )
    await ctx.db.billing_records.update_one({"_id": key, "applied": False}, {"$set": {"applied": True}})
    await ctx.db.billing_accounts.update_one({"_id": tenant_id}, {"$pull": {"pending": key}})
    return moved


async def charge_total(ctx: AppContext, charge_id: str) -> int:
    """The sum of the records a charge inserted."""
    rows = await ctx.db.billing_records.aggregate(
        [{"$match": {"charge_id": charge_id}}, {"$group": {"_id": None, "total": {"$sum": "$amount_micros"}}}]
    )
    async for row in rows:
        return int(row.get("total") or 0)
    return 0


async def _move(ctx: AppContext, tenant_id: str, key: str, delta_micros: int) -> bool:
    """Step 2: add `delta` to the balance unless `key` is already pending (applied before)."""
    moved = await ctx.db.billing_accounts.update_one(
        {"_id": tenant_id, "pending": {"$ne": key}},
        {
            "$inc": {"balance_micros": delta_micros},
            "$push": {"pending": key},
            "$set": {"updated_at": utcnow()},
        },
    )
    return moved.modified_count == 1


async def recover(ctx: AppContext, older_than: timedelta = RECOVER_AFTER) -> int:
    """Finish entries a crashed process left unapplied; how many charges / top-ups were finished."""
    cutoff = utcnow() - older_than
    done = 0
    async for charge in ctx.db.billing_charges.find({"state": "open", "created_at": {"$lte": cutoff}}):
        if await ctx.db.billing_accounts.find_one({"_id": charge["tenant_id"]}, {"_id": 1}) is not None:
            await apply_charge(
                ctx, charge["tenant_id"], charge["_id"], await charge_total(ctx, charge["_id"])
            )
            done += 1
    flagged: dict[tuple[str, str], int] = {}
    async for record in ctx.db.billing_records.find({"applied": False, "created_at": {"$lte": cutoff}}):
        key = (record["tenant_id"], record.get("charge_id") or record["_id"])
        flagged[key] = flagged.get(key, 0) + int(record.get("amount_micros") or 0)
    for (tenant_id, charge_id), total in flagged.items():
        if await ctx.db.billing_accounts.find_one({"_id": tenant_id}, {"_id": 1}) is not None:
            await _apply_flagged_records(ctx, tenant_id, charge_id, total)
            done += 1
    async for entry in ctx.db.top_ups.find({"applied": False, "created_at": {"$lte": cutoff}}):
        if await ctx.db.billing_accounts.find_one({"_id": entry["tenant_id"]}, {"_id": 1}) is not None:
            await apply_entry(ctx, "top_ups", entry)
            done += 1
    if done:
        log.warning("billing: finished %d charges / top-ups left unapplied by a crash", done)
    return done


async def top_up(
    ctx: AppContext, tenant_id: str, amount_micros: int, *, by: str, by_tenant_id: str, note: str = ""
) -> Doc:
    """Credit the tenant's account (created if needed) with a top-up record, exactly once."""
    if amount_micros <= 0 or amount_micros > MAX_TOP_UP_MICROS:
        raise AccountError("a top-up must be a positive amount")
    account = await ensure_account(ctx, tenant_id)
    now = utcnow()
    entry: Doc = {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "amount_micros": int(amount_micros),
        "currency": account.get("currency") or "USD",
        "by": by,
        "by_tenant_id": by_tenant_id,
        "note": note.strip()[:300],
        "at": now,
        "created_at": now,
        "applied": False,
    }
    await ctx.db.top_ups.insert_one(entry)
    await apply_entry(ctx, "top_ups", entry)
    return {**entry, "applied": True}


def public_top_up(entry: Doc) -> Doc:
    return {
        "id": entry["_id"],
        "tenant_id": entry["tenant_id"],
        "amount": format_micros(int(entry["amount_micros"])),
        "amount_micros": int(entry["amount_micros"]),
        "currency": entry.get("currency"),
        "by": entry.get("by"),
        "by_tenant_id": entry.get("by_tenant_id"),
        "note": entry.get("note") or "",
        "at": entry.get("at"),
    }


# ------------------------------------------------------------------------------ low balance


async def stopped_accounts(ctx: AppContext, tenant_id: str) -> list[Doc]:
    """The billed accounts of the tenant and its ancestors at or below their stop level."""
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"path": 1})
    if tenant is None:
        return []
    ids = [tenant_id, *(tenant.get("path") or [])]
    out = []
    async for account in ctx.db.billing_accounts.find(
        {"_id": {"$in": ids}}, {"balance_micros": 1, "stop_below_micros": 1, "currency": 1}
    ):
        if int(account.get("balance_micros") or 0) <= int(account.get("stop_below_micros") or 0):
            out.append(account)
    return out


async def may_place_outbound(ctx: AppContext, tenant_id: str) -> str | None:
    """None when the tenant may place outbound calls and campaign messages, else the reason
    (starting with "balance", which is also the reason a campaign is paused with)."""
    stopped = await stopped_accounts(ctx, tenant_id)
    if not stopped:
        return None
    account = next((a for a in stopped if a["_id"] == tenant_id), stopped[0])
    whose = "the prepaid balance" if account["_id"] == tenant_id else "the reseller's prepaid balance"
    return (
        f"balance: {whose} ({format_micros(int(account.get('balance_micros') or 0))} "
        f"{account.get('currency') or ''}) is at or below its stop "
        f"({format_micros(int(account.get('stop_below_micros') or 0))}): top up to continue"
    ).replace(" )", ")")
