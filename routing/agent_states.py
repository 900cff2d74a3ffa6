"""The agent state history: one `agent_states` row per spell of an agent in one state.

Reports need logged-in, talk, idle and not-ready time per agent and interval, which the
agent document (the current state only) cannot give. Every presence change calls
`record_spell` with the agent document as it now is; the state a report sees is derived
from it ("busy" = available while holding at least one contact), so a reservation that
fills the first slot, or a release that frees the last, opens a new spell too.

The agent document carries its open spell (`spell: {id, state, reason, start}`): a spell
is switched with one conditional update on it, so concurrent changes (a reserve and a
release racing) never open two spells; the loop re-reads the agent after a switch until the
open spell matches the agent's state, so the last change always wins. The readers live in
`reports/agent_states.py` (data flows one way: routing never imports reports).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow

MAX_SWITCHES = 5  # a spell switch races at most a handful of concurrent changes


def spell_state(agent: Doc) -> tuple[str, str | None]:
    """The state a report counts for this agent document, with its not-ready reason."""
    state = str(agent.get("state") or "offline")
    if state == "available" and any(int(n or 0) > 0 for n in (agent.get("load") or {}).values()):
        return "busy", None
    return state, (agent.get("not_ready_reason") if state == "not_ready" else None)


async def record_spell(ctx: AppContext, agent: Doc) -> None:
    """Close the agent's open spell and open the next when its state changed; else nothing.

    `agent` is the document just written (so the common case costs no read at all).
    """
    for _ in range(MAX_SWITCHES):
        state, reason = spell_state(agent)
        current: dict[str, Any] = agent.get("spell") or {}
        if current.get("state") == state and current.get("reason") == reason:
            return
        now = utcnow()
        spell = {"id": new_id(), "state": state, "reason": reason, "start": now}
        switched = await ctx.db.agents.update_one(
            {"_id": agent["_id"], "spell.id": current.get("id")}, {"$set": {"spell": spell}}
        )
        writes: list[Awaitable[Any]] = []
        if switched.modified_count:
            if current.get("id"):
                writes.append(ctx.db.agent_states.update_one({"_id": current["id"]}, {"$set": {"end": now}}))
            row = {
                "_id": spell["id"],
                "tenant_id": agent.get("tenant_id"),
                "agent_id": agent["_id"],
                "state": state,
                "reason": reason,
                "start": now,
                "end": None,
            }
            writes.append(ctx.db.agent_states.insert_one(row))
        # in parallel (one round trip on the hot path of an assignment): closing the old spell,
        # opening the new one, and reading the agent again to see whether it changed meanwhile
        *_, fresh = await asyncio.gather(*writes, ctx.db.agents.find_one({"_id": agent["_id"]}))
        if fresh is None:
            return
        agent = fresh
