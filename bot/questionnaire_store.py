"""Where questionnaires and their answers live, and the statistics over them.

- `questionnaires`: one document per questionnaire (`bot.questionnaire.Questionnaire` plus
  tenant_id, family_id, locked, created/updated by and at). A questionnaire is locked
  once the first answers are stored: its questions then mean what the answers say, so a
  change goes into a copy (a new version of the same family).
- `questionnaire_answers`: one document per contact and questionnaire (`_id` is
  "<questionnaire_id>:<contact_id>"), rewritten on every save: the canonical answers,
  the path, `completed`, and `items` (one per question asked, shaped for the aggregation
  pipelines of `questionnaire_stats`).
- On the contact: `answers.<questionnaire_id> = {key: value}`; on its campaign target (if
  the contact has a `target_id`) the same, so results exports find them.

Every channel saves through `save_session`: the agent's script, robot calls, SMS and the
emailed form (whose link carries a signed token from `answer_link`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.questionnaire import (
    CHOICE_KINDS,
    Question,
    Questionnaire,
    QuestionnaireSession,
    validate_questionnaire,
)
from hub.auth import decode_token, issue_token
from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, utcnow

TOKEN_TYPE = "questionnaire"
LINK_TTL_S = 30 * 24 * 3600
LATEST_TEXTS = 5
CHANNELS = ("agent", "voice", "sms", "email")


def questionnaire_doc(questionnaire: Questionnaire, tenant_id: str, **extra: Any) -> Doc:
    """The stored form: the model (aliases "if"/"in" as written) under `_id`, plus storage fields."""
    doc = questionnaire.to_doc()
    doc["_id"] = doc.pop("id")
    return {**doc, "tenant_id": tenant_id, **extra}


def from_doc(doc: Doc) -> Questionnaire:
    return validate_questionnaire(doc)


async def load_questionnaire(ctx: AppContext, tenant_id: str, questionnaire_id: str) -> Questionnaire | None:
    doc = await ctx.db.questionnaires.find_one({"_id": questionnaire_id, "tenant_id": tenant_id})
    return None if doc is None else from_doc(doc)


async def questionnaire_for_contact(ctx: AppContext, contact: Doc) -> Questionnaire | None:
    """The contact's own `questionnaire_id`, else that of its campaign; None if neither has one."""
    questionnaire_id = contact.get("questionnaire_id")
    if not questionnaire_id and contact.get("campaign_id"):
        campaign = await ctx.db.campaigns.find_one(
            {"_id": contact["campaign_id"], "tenant_id": contact["tenant_id"]}, {"questionnaire_id": 1}
        )
        questionnaire_id = (campaign or {}).get("questionnaire_id")
    if not questionnaire_id:
        return None
    return await load_questionnaire(ctx, contact["tenant_id"], str(questionnaire_id))


def _item(question: Question, value: Any) -> Doc:
    """One asked question as the statistics pipelines read it."""
    item: Doc = {"q": question.key, "kind": question.kind, "skipped": value is None}
    if value is None:
        return item
    if question.kind in CHOICE_KINDS:
        item["opts"] = list(value) if isinstance(value, list) else [value]
    elif question.kind == "number":
        item["num"] = value
    elif question.kind == "date":
        item["date"] = value
    else:
        item["text"] = value
    return item


def answers_id(questionnaire_id: str, contact_id: str) -> str:
    return f"{questionnaire_id}:{contact_id}"


async def save_session(
    ctx: AppContext,
    *,
    questionnaire: Questionnaire,
    contact: Doc,
    session: QuestionnaireSession,
    channel: str,
    by: str | None = None,
) -> Doc:
    """Store the session's answers for the contact (on the contact, its target and for statistics).

    Returns the `questionnaire_answers` document as written. Locks the questionnaire.
    """
    assert channel in CHANNELS, channel
    tenant_id = contact["tenant_id"]
    questionnaire_id = questionnaire.id
    now = utcnow()
    answers = {key: session.answers.get(key) for key in session.path}
    doc: Doc = {
        "questionnaire_id": questionnaire_id,
        "questionnaire_version": questionnaire.version,
        "contact_id": contact["_id"],
        "campaign_id": contact.get("campaign_id"),
        "target_id": contact.get("target_id"),
        "customer_id": contact.get("customer_id"),
        "channel": channel,
        "by": by,
        "answers": answers,
        "path": list(session.path),
        "items": [_item(questionnaire.question(key), answers[key]) for key in session.path],
        "completed": session.done,
        "ending": session.ending,
        "completed_at": now if session.done else None,
        "updated_at": now,
    }
    key = {"_id": answers_id(questionnaire_id, contact["_id"]), "tenant_id": tenant_id}
    await ctx.db.questionnaire_answers.update_one(
        key, {"$set": doc, "$setOnInsert": {"started_at": now}}, upsert=True
    )
    field = f"answers.{questionnaire_id}"
    await ctx.db.contacts.update_one(
        {"_id": contact["_id"], "tenant_id": tenant_id}, {"$set": {field: answers, "updated_at": now}}
    )
    if contact.get("target_id"):
        await ctx.db.campaign_targets.update_one(
            {"_id": contact["target_id"], "tenant_id": tenant_id}, {"$set": {field: answers}}
        )
    await ctx.db.questionnaires.update_one(
        {"_id": questionnaire_id, "tenant_id": tenant_id, "locked": {"$ne": True}},
        {"$set": {"locked": True, "used_at": now}},
    )
    return {**key, **doc}


async def stored_answers(
    ctx: AppContext, tenant_id: str, questionnaire_id: str, contact_id: str
) -> Doc | None:
    return await ctx.db.questionnaire_answers.find_one(
        {"_id": answers_id(questionnaire_id, contact_id), "tenant_id": tenant_id}
    )


# --------------------------------------------------------------------------- statistics


async def _aggregate(ctx: AppContext, pipeline: list[Doc]) -> list[Doc]:
    cursor = await ctx.db.questionnaire_answers.aggregate(pipeline)
    return [row async for row in cursor]


async def questionnaire_stats(
    ctx: AppContext, tenant_id: str, questionnaire: Questionnaire
) -> dict[str, Any]:
    """Per questionnaire: started / answered (one answer or more) / completed respondents; per
    question: answered and skipped counts, choice counts per option, numbers' mean / min / max,
    dates' earliest / latest, and the latest text answers. All computed by the database."""
    match: Doc = {"$match": {"tenant_id": tenant_id, "questionnaire_id": questionnaire.id}}
    unwind: Doc = {"$unwind": "$items"}
    by_completion = await _aggregate(ctx, [match, {"$group": {"_id": "$completed", "n": {"$sum": 1}}}])
    answered = await _aggregate(
        ctx,
        [match, unwind, {"$match": {"items.skipped": False}}, {"$group": {"_id": "$_id"}}, {"$count": "n"}],
    )
    per_question = await _aggregate(
        ctx,
        [
            match,
            unwind,
            {"$group": {"_id": {"q": "$items.q", "skipped": "$items.skipped"}, "n": {"$sum": 1}}},
        ],
    )
    per_option = await _aggregate(
        ctx,
        [
            match,
            unwind,
            {"$match": {"items.kind": {"$in": sorted(CHOICE_KINDS)}, "items.skipped": False}},
            {"$unwind": "$items.opts"},
            {"$group": {"_id": {"q": "$items.q", "o": "$items.opts"}, "n": {"$sum": 1}}},
        ],
    )
    numbers = await _aggregate(
        ctx,
        [
            match,
            unwind,
            {"$match": {"items.kind": "number", "items.skipped": False}},
            {
                "$group": {
                    "_id": "$items.q",
                    "mean": {"$avg": "$items.num"},
                    "min": {"$min": "$items.num"},
                    "max": {"$max": "$items.num"},
                }
            },
        ],
    )
    dates = await _aggregate(
        ctx,
        [
            match,
            unwind,
            {"$match": {"items.kind": "date", "items.skipped": False}},
            {
                "$group": {
                    "_id": "$items.q",
                    "earliest": {"$min": "$items.date"},
                    "latest": {"$max": "$items.date"},
                }
            },
        ],
    )
    counts: dict[tuple[str, bool], int] = {
        (r["_id"]["q"], bool(r["_id"]["skipped"])): r["n"] for r in per_question
    }
    option_counts = {(r["_id"]["q"], r["_id"]["o"]): r["n"] for r in per_option}
    number_stats = {r["_id"]: r for r in numbers}
    date_stats = {r["_id"]: r for r in dates}
    questions = []
    for question in questionnaire.questions:
        entry: dict[str, Any] = {
            "key": question.key,
            "text": question.text,
            "kind": question.kind,
            "answered": counts.get((question.key, False), 0),
            "skipped": counts.get((question.key, True), 0),
        }
        if question.kind in CHOICE_KINDS:
            entry["options"] = [
                {"key": o.key, "label": o.label, "count": option_counts.get((question.key, o.key), 0)}
                for o in question.options
            ]
        elif question.kind == "number":
            row = number_stats.get(question.key) or {}
            entry.update({"mean": row.get("mean"), "min": row.get("min"), "max": row.get("max")})
        elif question.kind == "date":
            row = date_stats.get(question.key) or {}
            entry.update({"earliest": row.get("earliest"), "latest": row.get("latest")})
        else:
            entry["latest"] = await _latest_texts(ctx, match, question.key)
        questions.append(entry)
    completion = {bool(r["_id"]): r["n"] for r in by_completion}
    return {
        "id": questionnaire.id,
        "name": questionnaire.name,
        "version": questionnaire.version,
        "started": sum(completion.values()),
        "answered": answered[0]["n"] if answered else 0,
        "completed": completion.get(True, 0),
        "questions": questions,
    }


async def _latest_texts(ctx: AppContext, match: Doc, key: str) -> list[dict[str, Any]]:
    rows = await _aggregate(
        ctx,
        [
            match,
            {"$unwind": "$items"},
            {"$match": {"items.q": key, "items.skipped": False}},
            {"$sort": {"updated_at": -1, "_id": 1}},
            {"$limit": LATEST_TEXTS},
            {"$project": {"_id": 0, "text": "$items.text", "at": "$updated_at", "contact_id": "$contact_id"}},
        ],
    )
    return [{"text": r["text"], "at": iso(r["at"]), "contact_id": r["contact_id"]} for r in rows]


# --------------------------------------------------------------------------- respondent links


@dataclass(frozen=True)
class AnswerGrant:
    """What a respondent's link allows: answering one questionnaire for one contact."""

    tenant_id: str
    contact_id: str
    questionnaire_id: str


def answer_token(
    secret: str, tenant_id: str, contact_id: str, questionnaire_id: str, ttl_s: int = LINK_TTL_S
) -> str:
    return issue_token(secret, TOKEN_TYPE, contact_id, tenant_id, ttl_s, qid=questionnaire_id)


def read_answer_token(secret: str, token: str) -> AnswerGrant:
    """The grant of a link; `hub.auth.AuthError` ("token expired" / "invalid token") otherwise."""
    payload = decode_token(secret, token, TOKEN_TYPE)
    return AnswerGrant(
        tenant_id=str(payload["tid"]), contact_id=str(payload["sub"]), questionnaire_id=str(payload["qid"])
    )


def answer_link(
    ctx: AppContext, tenant_id: str, contact_id: str, questionnaire_id: str, ttl_s: int = LINK_TTL_S
) -> str:
    """The absolute URL of one contact's form (for the email; served by dashboard.questionnaire_form)."""
    token = answer_token(ctx.settings.secret, tenant_id, contact_id, questionnaire_id, ttl_s)
    return f"{ctx.settings.public_url}/q/{token}"
