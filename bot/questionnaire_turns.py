"""A questionnaire asked over a text conversation (an SMS campaign), one reply per question.

The session lives on the contact (`questionnaire_session`: the session's `to_dict()` plus
the id of the last reply it took), so a hub restart resumes where the respondent is, and a
reply handled twice (a crash between storing the answer and marking the message done) is
not taken twice: the repeat only re-sends the same reply text, which the message dedupe
key stores once. While a session runs, bot/turns.py hands replies here instead of to Rasa;
once it ends, the conversation is the bot's again.
"""

from __future__ import annotations

import logging

from bot.questionnaire import QuestionnaireSession, Step
from bot.questionnaire_store import questionnaire_for_contact, save_session
from hub.contacts import append_message
from hub.context import AppContext
from hub.db import Doc

log = logging.getLogger(__name__)
SESSION_FIELD = "questionnaire_session"


async def start(ctx: AppContext, contact: Doc) -> str | None:
    """Begin the contact's questionnaire; the first question as text (None if there is none).
    Called again for the same contact (a retried send), it returns the question it is at."""
    stored = contact.get(SESSION_FIELD)
    if stored:
        prompt = QuestionnaireSession.from_dict(stored).prompt()
        return prompt.as_text() if prompt else None
    questionnaire = await questionnaire_for_contact(ctx, contact)
    if questionnaire is None:
        return None
    session = QuestionnaireSession(questionnaire)
    prompt = session.start()
    await ctx.db.contacts.update_one(
        {"_id": contact["_id"]}, {"$set": {SESSION_FIELD: {**session.to_dict(), "last_message_id": None}}}
    )
    return prompt.as_text()


def _reply(step: Step) -> str:
    if step.done:
        return step.end_text or "Thank you, that was the last question."
    assert step.prompt is not None
    question = step.prompt.as_text()
    return f"{step.error}\n{question}" if step.error else question


async def answer(ctx: AppContext, contact: Doc, message: Doc) -> bool:
    """Take `message` as the answer to the running questionnaire; False if none is running."""
    stored = contact.get(SESSION_FIELD)
    if not stored or stored.get("ending") is not None:
        return False
    try:
        session = QuestionnaireSession.from_dict(stored)
    except ValueError:
        log.exception("contact %s: the stored questionnaire session cannot be read", contact["_id"])
        return False
    if stored.get("last_message_id") == message["_id"]:
        # taken before a crash: the reply to send is the one for the current state
        text = session.questionnaire.ending_text(session.ending) if session.ending else None
        prompt = session.prompt()
        reply = text or (prompt.as_text() if prompt else "")
    else:
        step = session.answer(message["text"])
        if step.accepted:
            await save_session(
                ctx, questionnaire=session.questionnaire, contact=contact, session=session, channel="sms"
            )
        await ctx.db.contacts.update_one(
            {"_id": contact["_id"]},
            {"$set": {SESSION_FIELD: {**session.to_dict(), "last_message_id": message["_id"]}}},
        )
        reply = _reply(step)
    if reply:
        await append_message(
            ctx, contact, "bot", reply, client_id=f"questionnaire:{message['_id']}", author_name="Assistant"
        )
    return True
