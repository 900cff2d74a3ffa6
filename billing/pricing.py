"""Which tariff a tenant pays for a number: its account's rate group plus the markups down the tree.

A tenant's account names the voice and SMS rate groups it is rated on; a group belongs to
an ancestor (its owner). The price for the tenant is the group's base price times
(1 + markup_pct / 100) for every tenant on the way down from the owner (exclusive) to the
tenant (inclusive), each markup being the one its parent set on its account (docs/admin.md).
`PriceBook` caches tenants, accounts and rate tables for one rating pass or request.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.rates import RateTable, load_table, tariff_of
from billing.rating import Tariff, apply_markups
from hub.context import AppContext
from hub.db import Doc


@dataclass(frozen=True)
class Priced:
    tariff: Tariff
    rate: Doc
    group: Doc
    markups: tuple[float, ...]


class PriceBook:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._tenants: dict[str, Doc | None] = {}
        self._accounts: dict[str, Doc | None] = {}
        self._tables: dict[str, RateTable | None] = {}

    async def tenant(self, tenant_id: str) -> Doc | None:
        if tenant_id not in self._tenants:
            self._tenants[tenant_id] = await self.ctx.db.tenants.find_one(
                {"_id": tenant_id}, {"path": 1, "name": 1, "level": 1, "parent_id": 1}
            )
        return self._tenants[tenant_id]

    async def account(self, tenant_id: str) -> Doc | None:
        if tenant_id not in self._accounts:
            self._accounts[tenant_id] = await self.ctx.db.billing_accounts.find_one({"_id": tenant_id})
        return self._accounts[tenant_id]

    async def table(self, group_id: str) -> RateTable | None:
        if group_id not in self._tables:
            self._tables[group_id] = await load_table(self.ctx, group_id)
        return self._tables[group_id]

    async def chain(self, tenant_id: str) -> list[str]:
        """The tenant, then its ancestors bottom-up (who is charged for its calls)."""
        tenant = await self.tenant(tenant_id)
        if tenant is None:
            return []
        return [tenant_id, *reversed(tenant.get("path") or [])]

    async def markups(self, tenant_id: str, owner_id: str) -> list[float] | None:
        """The markups from below the group's owner down to the tenant; None if the owner is
        not the tenant or one of its ancestors (a misassigned group prices nothing)."""
        tenant = await self.tenant(tenant_id)
        if tenant is None:
            return None
        lineage = [*(tenant.get("path") or []), tenant_id]
        if owner_id not in lineage:
            return None
        below = lineage[lineage.index(owner_id) + 1 :]
        out = []
        for member in below:
            account = await self.account(member)
            out.append(float((account or {}).get("markup_pct") or 0))
        return out

    async def group_of(self, tenant_id: str, kind: str) -> str | None:
        account = await self.account(tenant_id)
        return (account or {}).get(f"{kind}_group_id")

    async def price(self, tenant_id: str, kind: str, number: str) -> Priced | None:
        """The tenant's tariff for `number`, or None (no group, no matching prefix)."""
        group_id = await self.group_of(tenant_id, kind)
        if not group_id:
            return None
        table = await self.table(group_id)
        if table is None:
            return None
        rate = table.match(number)
        if rate is None:
            return None
        markups = await self.markups(tenant_id, table.group["tenant_id"])
        if markups is None:
            return None
        return Priced(apply_markups(tariff_of(rate), list(markups)), rate, table.group, tuple(markups))
