"""Screen pop helpers: the call context of a contact and knowledge-base suggestions drawn
from what the customer said last.

The context is what an agent needs at a glance when a contact is offered or connected:
channel, intent, reason, skill and queue, the IVR path as readable labels (from the flow
snapshot stored with the call, or the live flow while the call is still running), the
caller's number and how long the customer waited.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, utcnow
from knowledge.search import search
from knowledge.text import terms
from routing.model import aware

RECENT_UTTERANCES = 5
SUGGESTIONS = 3
# Older utterances count less: the customer's latest words say most about what they need now.
RECENCY_DECAY = 0.6
SNIPPET_CHARS = 180
VOICE_CHANNELS = ("voice", "webcall")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


async def recent_utterances(ctx: AppContext, contact_id: str, limit: int = RECENT_UTTERANCES) -> list[str]:
    """The customer's last `limit` messages, newest first (key presses left out)."""
    cursor = (
        ctx.db.messages.find({"contact_id": contact_id, "author": "visitor"}, {"text": 1})
        .sort("seq", -1)
        .limit(limit)
    )
    return [m["text"] async for m in cursor if m.get("text") and not m["text"].startswith("[key ")]


def snippet(body: str, words: set[str], limit: int = SNIPPET_CHARS) -> str:
    """The body's first sentence that mentions one of `words`, else its start; shortened."""
    sentences = [s.strip() for s in _SENTENCE.split(body.strip()) if s.strip()] or [body.strip()]
    chosen = next((s for s in sentences if words & set(terms(s))), sentences[0])
    if len(chosen) <= limit:
        return chosen
    cut = chosen[:limit].rsplit(" ", 1)[0] or chosen[:limit]
    return cut.rstrip(",;:") + "…"


async def suggestions(
    ctx: AppContext, tenant_id: str, utterances: list[str], limit: int = SUGGESTIONS
) -> list[dict[str, Any]]:
    """Top KB articles for the customer's recent utterances (newest first).

    Each utterance is searched on its own and the BM25 scores are summed with a recency
    decay, so one unrelated remark ("thanks", "are you there?") does not drown the question.
    """
    scores: dict[str, float] = {}
    articles: dict[str, Doc] = {}
    words: set[str] = set()
    for age, text in enumerate(utterances):
        words.update(terms(text))
        # published content only: a draft or an archived article is never suggested
        for hit in await search(ctx, tenant_id, text[:500], statuses=("published",), limit=limit + 2):
            article_id = hit.article["_id"]
            articles[article_id] = hit.article
            scores[article_id] = scores.get(article_id, 0.0) + hit.score * RECENCY_DECAY**age
    ranked = sorted(scores, key=lambda a: (-scores[a], articles[a]["title"]))[:limit]
    return [
        {
            "id": article_id,
            "slug": articles[article_id]["slug"],
            "title": articles[article_id]["title"],
            "snippet": snippet(articles[article_id]["body"], words),
            "body": articles[article_id]["body"],
            "tags": articles[article_id].get("tags", []),
            "score": round(scores[article_id], 3),
        }
        for article_id in ranked
    ]


def _prompt_text(node: Doc) -> str | None:
    prompt = node.get("prompt")
    if isinstance(prompt, dict) and prompt.get("text"):
        return str(prompt["text"])
    if isinstance(prompt, str) and prompt:
        return prompt
    if isinstance(prompt, dict) and prompt.get("audio_id"):
        return "(recorded prompt)"
    return None


def ivr_step(node_id: str, node: Doc | None) -> dict[str, Any]:
    """One IVR node as the agent reads it: id, type and what the caller heard or chose."""
    if node is None:
        return {"id": node_id, "type": None, "text": None, "label": node_id}
    kind = node.get("type")
    text = _prompt_text(node)
    if kind == "queue":
        text = f"queue for {node.get('skill')}" + (f": {text}" if text else "")
    elif kind == "lookup":
        text = f"self-service lookup: {node.get('kind')}"
    elif kind == "bot" and not text:
        text = "talked with the assistant"
    if text and len(text) > 90:
        text = text[:89].rstrip() + "…"
    label = f"{node_id} ({kind})" + (f": {text}" if text else "")
    return {"id": node_id, "type": kind, "text": text, "label": label}


async def _flow_nodes(ctx: AppContext, contact: Doc) -> dict[str, Doc]:
    """The IVR nodes the call walked: the snapshot kept with the call's state, else the
    flow as stored now (a live call saves its path as it goes, its state at the end)."""
    state = contact.get("ivr_state") or {}
    nodes = (state.get("flow") or {}).get("nodes")
    if isinstance(nodes, dict) and nodes:
        return nodes
    if contact.get("flow_id") and contact.get("ivr_path"):
        flow = await ctx.db.ivr_flows.find_one(
            {"_id": contact["flow_id"], "tenant_id": contact["tenant_id"]}, {"nodes": 1}
        )
        if flow and isinstance(flow.get("nodes"), dict):
            return dict(flow["nodes"])
    return {}


def _wait_s(contact: Doc, now: datetime) -> float | None:
    queued = contact.get("queued_at")
    if queued is None:
        return None
    end = contact.get("assigned_at") or now
    return round(max(0.0, (aware(end) - aware(queued)).total_seconds()), 1)


async def call_context(ctx: AppContext, contact: Doc) -> dict[str, Any]:
    state = contact.get("ivr_state") or {}
    path = list(contact.get("ivr_path") or state.get("path") or [])
    nodes = await _flow_nodes(ctx, contact) if path else {}
    intent = contact.get("intent") or contact.get("last_intent")
    if intent is None and contact["channel"] in VOICE_CHANNELS and ctx.rasa is not None:
        # a call's bot turns run in the media pipeline: ask Rasa what it understood last
        intent = await ctx.rasa.latest_intent(contact["_id"], timeout_s=1.0)
    return {
        "channel": contact["channel"],
        "intent": intent,
        "last_intent": contact.get("last_intent"),
        "reason": contact.get("reason"),
        "skill": contact.get("skill"),
        "queue_id": contact.get("queue_id"),
        "queue_name": contact.get("queue_name"),
        "ivr_path": [ivr_step(node_id, nodes.get(node_id)) for node_id in path],
        "from_number": contact.get("from_number"),
        "queued_at": iso(contact.get("queued_at")),
        "assigned_at": iso(contact.get("assigned_at")),
        "wait_s": _wait_s(contact, utcnow()),
    }
