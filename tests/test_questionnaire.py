"""Questionnaires: the model's validation, branching, answer parsing per kind, storage of a
session, the text and form renderings; over HTTP the designer's CRUD, the agent's script
(answers saved by the agent holding the contact only), statistics checked exactly, and the
emailed form's signed link (valid, expired, another tenant's).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.questionnaire import (
    AnswerError,
    Questionnaire,
    QuestionnaireError,
    QuestionnaireSession,
    parse_answer,
    render_html,
    render_text,
    replay,
    validate_questionnaire,
)
from bot.questionnaire_store import answer_token
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id, utcnow
from tests.conftest import TenantFactory, context_for
from tests.support import TEST_SECRET, Agent, HubProcess, Widget

SURVEY: dict[str, Any] = {
    "name": "Broadband offer",
    "intro": "We have three quick questions.",
    "questions": [
        {
            "key": "interested",
            "text": "Are you interested in faster broadband?",
            "kind": "single",
            "options": [{"label": "Yes"}, {"label": "No", "next": "declined"}, {"label": "Not sure"}],
        },
        {
            "key": "speed",
            "text": "Which speeds interest you?",
            "kind": "multiple",
            "options": ["100 Mbit", "500 Mbit", "1 Gbit"],
        },
        {
            "key": "budget",
            "text": "Your monthly budget in euros?",
            "kind": "number",
            "min": 0,
            "max": 500,
            "branches": [{"if": {"q": "budget", "lt": 20}, "then": "cheap"}],
        },
        {"key": "start", "text": "When could we install?", "kind": "date", "required": False},
        {"key": "comments", "text": "Anything else?", "kind": "text", "required": False},
    ],
    "endings": [
        {"key": "declined", "text": "Thank you, we will not call again about this."},
        {"key": "cheap", "text": "Thanks, we will send you our basic offers."},
    ],
    "end_text": "Thanks, an advisor will call you.",
}


def survey(**changes: Any) -> Questionnaire:
    return validate_questionnaire({**SURVEY, "id": "q1", **changes})


def question(kind: str, **extra: Any) -> Questionnaire:
    q: dict[str, Any] = {"key": "a", "text": "A?", "kind": kind, **extra}
    if kind in ("single", "multiple") and "options" not in extra:
        q["options"] = ["Red", "Green", "Blue"]
    return validate_questionnaire({"name": "one", "questions": [q]})


def parse(kind: str, raw: str, date_order: str = "YMD", **extra: Any) -> Any:
    return parse_answer(question(kind, **extra).questions[0], raw, date_order)


# --------------------------------------------------------------------------- model validation


def test_option_keys_are_numbered_and_documents_keep_their_aliases() -> None:
    q = survey()
    assert [(o.key, o.label) for o in q.question("interested").options] == [
        ("1", "Yes"),
        ("2", "No"),
        ("3", "Not sure"),
    ]
    doc = q.to_doc()
    assert doc["questions"][2]["branches"] == [
        {"if": {"q": "budget", "in": None, "gt": None, "lt": 20.0}, "then": "cheap"}
    ]
    assert validate_questionnaire(json.loads(json.dumps(doc))) == q


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"questions": []}, "at least 1 item"),
        (
            {
                "questions": [
                    {"key": "a", "text": "A", "kind": "text"},
                    {"key": "a", "text": "B", "kind": "text"},
                ]
            },
            "keys must be unique: a used twice",
        ),
        ({"questions": [{"key": "Bad key", "text": "A", "kind": "text"}]}, "must be lower-case letters"),
        ({"questions": [{"key": "end", "text": "A", "kind": "text"}]}, "reserved"),
        (
            {"questions": [{"key": "a", "text": "A", "kind": "single", "options": ["only"]}]},
            "at least 2 options",
        ),
        (
            {
                "questions": [
                    {"key": "a", "text": "A", "kind": "single", "options": [str(i) for i in range(10)]}
                ]
            },
            "at most 9 options, one per keypad digit",
        ),
        (
            {"questions": [{"key": "a", "text": "A", "kind": "single", "options": ["Yes", "yes!"]}]},
            "two options have the same label",
        ),
        (
            {
                "questions": [
                    {"key": "a", "text": "A", "kind": "single", "options": [{"key": "1", "label": "x"}, "y"]},
                ]
            },
            "",  # valid: the unkeyed option takes the next free digit
        ),
        (
            {"questions": [{"key": "a", "text": "A", "kind": "text", "options": ["x", "y"]}]},
            "cannot have options",
        ),
        ({"questions": [{"key": "a", "text": "A", "kind": "text", "min": 1}]}, "min and max are for number"),
        (
            {"questions": [{"key": "a", "text": "A", "kind": "number", "min": 5, "max": 1}]},
            "min is greater than max",
        ),
        (
            {"questions": [{"key": "a", "text": "A", "kind": "text", "next": "zzz"}]},
            "goes to 'zzz', which is no",
        ),
        (
            {
                "questions": [
                    {"key": "a", "text": "A", "kind": "text", "next": "b"},
                    {"key": "b", "text": "B", "kind": "text", "next": "a"},
                ]
            },
            "questions loop back: a -> b -> a",
        ),
        (
            {
                "questions": [
                    {"key": "a", "text": "A", "kind": "text", "next": "end"},
                    {"key": "b", "text": "B", "kind": "text"},
                ]
            },
            "question 'b' can never be reached",
        ),
        (
            {
                "questions": [{"key": "a", "text": "A", "kind": "text"}],
                "endings": [{"key": "bye", "text": "Bye"}],
            },
            "ending 'bye' can never be reached",
        ),
        (
            {
                "questions": [
                    {
                        "key": "a",
                        "text": "A",
                        "kind": "text",
                        "branches": [{"if": {"q": "b", "in": ["1"]}, "then": "end"}],
                    },
                    {"key": "b", "text": "B", "kind": "single", "options": ["y", "n"]},
                ]
            },
            "branches on 'b', which is never asked before it",
        ),
        (
            {
                "questions": [
                    {"key": "a", "text": "A", "kind": "single", "options": ["y", "n"]},
                    {
                        "key": "b",
                        "text": "B",
                        "kind": "text",
                        "branches": [{"if": {"q": "a", "in": ["7"]}, "then": "end"}],
                    },
                ]
            },
            "7 are not option keys of 'a'",
        ),
        (
            {
                "questions": [
                    {"key": "a", "text": "A", "kind": "text"},
                    {
                        "key": "b",
                        "text": "B",
                        "kind": "text",
                        "branches": [{"if": {"q": "a", "gt": 3}, "then": "end"}],
                    },
                ]
            },
            "'gt' only works on number and date questions",
        ),
        (
            {
                "questions": [
                    {
                        "key": "a",
                        "text": "A",
                        "kind": "date",
                        "branches": [{"if": {"q": "a", "lt": "soon"}, "then": "end"}],
                    }
                ]
            },
            "needs a YYYY-MM-DD date",
        ),
        (
            {
                "questions": [
                    {"key": "a", "text": "A", "kind": "text", "branches": [{"if": {"q": "a"}, "then": "end"}]}
                ]
            },
            "a condition needs 'in', 'gt' or 'lt'",
        ),
    ],
)
def test_validation_says_what_is_wrong(change: dict[str, Any], message: str) -> None:
    doc = {**SURVEY, **change}
    if "endings" not in change and "questions" in change:
        doc["endings"] = []
    if not message:
        validate_questionnaire(doc)
        return
    with pytest.raises(QuestionnaireError, match=re.escape(message)):
        validate_questionnaire(doc)


def test_a_required_choice_whose_options_all_jump_has_no_fall_through() -> None:
    """Only the options' targets leave such a question, so the next one in the list is unreachable."""
    with pytest.raises(QuestionnaireError, match="question 'b' can never be reached"):
        validate_questionnaire(
            {
                "name": "jumps",
                "questions": [
                    {
                        "key": "a",
                        "text": "A",
                        "kind": "single",
                        "options": [{"label": "x", "next": "c"}, {"label": "y", "next": "end"}],
                    },
                    {"key": "b", "text": "B", "kind": "text"},
                    {"key": "c", "text": "C", "kind": "text"},
                ],
            }
        )
    # optional: skipping falls through to b, so b is reachable and the questionnaire valid
    validate_questionnaire(
        {
            "name": "jumps",
            "questions": [
                {
                    "key": "a",
                    "text": "A",
                    "kind": "single",
                    "required": False,
                    "options": [{"label": "x", "next": "c"}, {"label": "y", "next": "end"}],
                },
                {"key": "b", "text": "B", "kind": "text"},
                {"key": "c", "text": "C", "kind": "text"},
            ],
        }
    )


# --------------------------------------------------------------------------- branching


def run(q: Questionnaire, *inputs: str) -> QuestionnaireSession:
    session = QuestionnaireSession(q)
    session.start()
    for raw in inputs:
        step = session.answer(raw)
        assert step.accepted, (raw, step.error)
    return session


def test_branching_paths_and_end_texts() -> None:
    q = survey()
    full = run(q, "yes", "1 3", "40", "2026-05-01", "Call after six")
    assert full.path == ["interested", "speed", "budget", "start", "comments"]
    assert full.answers == {
        "interested": "1",
        "speed": ["1", "3"],
        "budget": 40,
        "start": "2026-05-01",
        "comments": "Call after six",
    }
    assert full.done and full.ending == "end"
    assert full.state()["end_text"] == "Thanks, an advisor will call you."

    declined = run(q, "2")  # the option's own jump
    assert declined.path == ["interested"] and declined.ending == "declined"
    assert declined.state()["end_text"] == "Thank you, we will not call again about this."

    cheap = run(q, "3", "3", "19.5")  # a condition on the number
    assert cheap.path == ["interested", "speed", "budget"] and cheap.ending == "cheap"

    skipped = run(q, "1", "2", "20", "", "skip")  # optional questions skipped: None, still on the path
    assert skipped.answers["start"] is None and skipped.answers["comments"] is None and skipped.done


def test_conditions_on_earlier_answers_win_over_option_jumps() -> None:
    q = validate_questionnaire(
        {
            "name": "routing",
            "questions": [
                {"key": "age", "text": "Age?", "kind": "number"},
                {
                    "key": "plan",
                    "text": "Plan?",
                    "kind": "multiple",
                    "options": [
                        {"label": "Basic", "next": "basic"},
                        {"label": "Family", "next": "family"},
                        {"label": "Pro", "next": "pro"},
                    ],
                    "branches": [{"if": {"q": "age", "lt": 18}, "then": "minor"}],
                },
                {"key": "basic", "text": "Why basic?", "kind": "text", "next": "end"},
                {"key": "family", "text": "How many people?", "kind": "number", "next": "end"},
                {"key": "minor", "text": "A parent's phone number?", "kind": "text", "next": "end"},
                {"key": "pro", "text": "Company?", "kind": "text"},
            ],
        }
    )
    assert run(q, "30", "2 1").current == "basic"  # the first chosen option in option order
    assert run(q, "30", "family").current == "family"
    assert run(q, "30", "pro").current == "pro"
    assert run(q, "12", "1").current == "minor"  # the condition first
    assert run(q, "30", "pro", "Acme").ending == "end"


def test_in_conditions_on_text_and_multiple_choice() -> None:
    q = validate_questionnaire(
        {
            "name": "in",
            "questions": [
                {
                    "key": "colours",
                    "text": "Colours?",
                    "kind": "multiple",
                    "options": ["Red", "Green", "Blue"],
                },
                {
                    "key": "word",
                    "text": "Say a word",
                    "kind": "text",
                    "branches": [{"if": {"q": "colours", "in": ["3"]}, "then": "blue"}],
                },
                {
                    "key": "other",
                    "text": "Other",
                    "kind": "text",
                    "branches": [{"if": {"q": "word", "in": ["Hello there"]}, "then": "end"}],
                },
                {"key": "blue", "text": "Why blue?", "kind": "text"},
            ],
        }
    )
    assert run(q, "1, 3", "x").current == "blue"
    assert run(q, "1", "Hello, THERE!", "anything").ending == "end"  # text compared normalised
    assert run(q, "1", "bye", "anything").current == "blue"


def test_a_wrong_answer_repeats_the_question_with_the_reason_and_counts_attempts() -> None:
    session = QuestionnaireSession(survey())
    first = session.start()
    assert first.intro == "We have three quick questions." and first.number == 1
    step = session.answer("perhaps")
    assert not step.accepted and step.prompt == first and step.attempts == 1
    assert step.error == "Please answer with one of: 1 (Yes), 2 (No), 3 (Not sure)."
    step = session.answer("1")
    assert (
        step.accepted and step.prompt is not None and step.prompt.key == "speed" and step.prompt.intro is None
    )
    assert session.back().key == "interested" and session.answers == {}


# --------------------------------------------------------------------------- parsing per kind


def test_single_choice_by_key_label_sentence_or_spoken_digit() -> None:
    assert parse("single", "2") == "2"
    assert parse("single", " 2. ") == "2"
    assert parse("single", "green") == "2"
    assert parse("single", "I'd like blue please") == "3"
    assert parse("single", "press three") == "3"
    assert parse("single", "3#") == "3"  # keypad entry
    with pytest.raises(AnswerError, match=r"Please answer with one of: 1 \(Red\), 2 \(Green\), 3 \(Blue\)\."):
        parse("single", "purple")
    with pytest.raises(AnswerError, match="Please choose only one of"):
        parse("single", "red or blue")
    with pytest.raises(AnswerError, match="An answer is required"):
        parse("single", "")
    assert parse("single", "", required=False) is None
    # a longer label containing a shorter one is one answer, not two
    assert parse("single", "not sure really", options=["Sure", "Not sure"]) == "2"
    # an option literally called "Skip" is an answer, not a skip
    assert parse("single", "skip", options=["Go", "Skip"]) == "2"


def test_multiple_choice_in_every_spelling() -> None:
    assert parse("multiple", "1 3") == ["1", "3"]
    assert parse("multiple", "3,1") == ["1", "3"]  # option order
    assert parse("multiple", "13#") == ["1", "3"]  # keypad
    assert parse("multiple", "blue, red") == ["1", "3"]
    assert parse("multiple", "red and green") == ["1", "2"]
    assert parse("multiple", "one three") == ["1", "3"]
    assert parse("multiple", "2 2") == ["2"]
    assert parse("multiple", "Green") == ["2"]
    with pytest.raises(
        AnswerError,
        match=re.escape("'purple' is not one of the options; answer with their numbers, e.g. 1 3"),
    ):
        parse("multiple", "red, purple")
    with pytest.raises(AnswerError, match="'1 4' is not one of the options"):
        parse("multiple", "1 4")


def test_numbers_with_bounds() -> None:
    assert parse("number", "42") == 42 and isinstance(parse("number", "42"), int)
    assert parse("number", "-3.25") == -3.25
    assert parse("number", "1,250.5") == 1250.5
    assert parse("number", "12 500") == 12500
    assert parse("number", "3*5#") == 3.5  # "*" is the keypad's point
    assert parse("number", "seven") == 7
    with pytest.raises(AnswerError, match="with a point for decimals"):
        parse("number", "3,5")
    with pytest.raises(AnswerError, match=re.escape("Please answer with a number, e.g. 42.")):
        parse("number", "lots")
    with pytest.raises(AnswerError, match=re.escape("Please answer with a number, e.g. 42.")):
        parse("number", "nan")
    with pytest.raises(AnswerError, match="at least 1"):
        parse("number", "0", min=1, max=10)
    with pytest.raises(AnswerError, match="at most 10"):
        parse("number", "10.5", min=1, max=10)
    assert parse("number", "10", min=1, max=10) == 10


def test_dates_iso_keypad_local_and_cjk() -> None:
    assert parse("date", "2026-03-15") == "2026-03-15"
    assert parse("date", "2026-3-5") == "2026-03-05"
    assert parse("date", "20260315#") == "2026-03-15"
    assert parse("date", "2026年3月15日") == "2026-03-15"
    assert parse("date", "2026년 3월 15일") == "2026-03-15"
    assert parse("date", "15/03/2026", "DMY") == "2026-03-15"
    assert parse("date", "03/15/2026", "MDY") == "2026-03-15"
    assert parse("date", "5.3.85", "DMY") == "1985-03-05"
    assert parse("date", "26-03-15", "YMD") == "2026-03-15"
    with pytest.raises(AnswerError, match="Please answer with a date like 2026-03-15"):
        parse("date", "15/03/2026", "YMD")  # ambiguous for this questionnaire: refused, not guessed
    with pytest.raises(AnswerError, match="There is no such date"):
        parse("date", "2026-02-30")
    with pytest.raises(AnswerError, match=r"like 15/03/2026 or 2026-03-15"):
        parse("date", "next tuesday", "DMY")


def test_text_answers() -> None:
    assert parse("text", "  Please call after six  ") == "Please call after six"
    with pytest.raises(AnswerError, match="An answer is required"):
        parse("text", "   ")
    with pytest.raises(AnswerError, match="under 2000 characters"):
        parse("text", "x" * 2001)
    assert parse("text", "skip", required=False) is None


ANSWERS = st.one_of(
    st.sampled_from(
        ["1", "2", "3", "yes", "no", "1 3", "2,3", "40", "19", "900", "", "skip", "2026-05-01", "x"]
    ),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ANSWERS, max_size=12))
def test_any_input_keeps_the_session_consistent_and_replayable(inputs: list[str]) -> None:
    """Whatever is typed: no exception, no question asked twice, and the stored answers
    replay to exactly the same place (canonical values parse back to themselves)."""
    q = survey()
    session = QuestionnaireSession(q)
    session.start()
    for raw in inputs:
        session.answer(raw)
    assert len(session.path) == len(set(session.path))
    assert set(session.answers) == set(session.path)
    again = replay(q, session.answers)
    assert not again.errors and not again.off_path
    assert again.session.state() == session.state()


# --------------------------------------------------------------------------- storage and rendering


def test_session_round_trip_through_json() -> None:
    q = survey()
    session = run(q, "1", "one three")
    session.answer("9000")  # a failed attempt is part of the state
    stored = json.loads(json.dumps(session.to_dict()))
    restored = QuestionnaireSession.from_dict(stored)
    assert restored.state() == session.state() and restored.attempts == 1
    assert restored.questionnaire == q
    step = restored.answer("45")
    assert step.accepted and step.prompt is not None and step.prompt.key == "start"
    with pytest.raises(ValueError, match="unsupported questionnaire session format"):
        QuestionnaireSession.from_dict({**stored, "format": 99})
    with pytest.raises(ValueError, match="is at 'nope'"):
        QuestionnaireSession.from_dict({**stored, "current": "nope"})


def test_replay_reports_errors_and_answers_off_the_path() -> None:
    q = survey()
    result = replay(q, {"interested": "2", "speed": ["1"]})
    assert result.session.ending == "declined" and result.off_path == ["speed"]
    result = replay(q, {"interested": "1", "speed": ["1"], "budget": 900})
    assert result.errors == {"budget": "Please answer with a number of at most 500."}
    assert result.session.current == "budget"
    # a form: every on-path question is fed, empty ones included
    result = replay(q, {"interested": "1", "speed": [], "budget": ""}, until_missing=False)
    assert result.errors == {"speed": "An answer is required."}


def test_prompts_for_voice_and_text() -> None:
    session = QuestionnaireSession(survey())
    first = session.start()
    assert first.as_voice() == (
        "We have three quick questions. Are you interested in faster broadband? "
        "For Yes, press 1. For No, press 2. For Not sure, press 3."
    )
    assert first.as_text() == (
        "We have three quick questions.\nAre you interested in faster broadband?\n"
        "1) Yes\n2) No\n3) Not sure\nReply with the number of your answer."
    )
    speed = session.answer("1").prompt
    assert speed is not None
    assert speed.as_voice().endswith("Press every key that applies, then the pound key.")
    assert speed.as_text().endswith("Reply with the numbers of all that apply, e.g. 1 3.")
    budget = session.answer("2").prompt
    assert budget is not None and budget.as_text().endswith("Reply with a number from 0 to 500.")
    start = session.answer("100").prompt
    assert start is not None
    assert start.as_voice().endswith("To skip this question, press the pound key.")
    assert start.as_text().endswith('Reply with a date, e.g. 2026-03-15 (or "skip").')


def test_render_text_writes_the_jumps_out() -> None:
    assert render_text(survey()) == (
        "Broadband offer\n"
        "\n"
        "We have three quick questions.\n"
        "\n"
        "1. Are you interested in faster broadband?\n"
        "   1) Yes\n"
        "   2) No  -> end\n"
        "   3) Not sure\n"
        "\n"
        "2. Which speeds interest you?\n"
        "   1) 100 Mbit\n"
        "   2) 500 Mbit\n"
        "   3) 1 Gbit\n"
        "   (choose all that apply)\n"
        "\n"
        "3. Your monthly budget in euros?\n"
        "   Answer: a number from 0 to 500.\n"
        "   If your answer to question 3 is less than 20, end.\n"
        "\n"
        "4. When could we install? (optional)\n"
        "   Answer: a date, e.g. 2026-03-15\n"
        "\n"
        "5. Anything else? (optional)\n"
        "   Answer: ____________________\n"
    )


def test_render_html_is_an_escaped_form_posting_to_the_link() -> None:
    q = survey(name="Offer <b>now</b>", intro='Say "hi" & <script>alert(1)</script>')
    page = render_html(
        q,
        "/q/abc?x=1&y=2",
        values={"interested": "1", "speed": ["1", "3"], "budget": 40},
        errors={"start": "Bad <date>"},
    )
    assert "<script>" not in page and "&lt;script&gt;" in page and "Offer &lt;b&gt;now&lt;/b&gt;" in page
    assert '<form method="post" action="/q/abc?x=1&amp;y=2">' in page
    assert '<input type="radio" name="interested" value="1" checked> Yes' in page
    assert '<input type="radio" name="interested" value="2"> No <span class="jump">(end)</span>' in page
    assert '<input type="checkbox" name="speed" value="3" checked> 1 Gbit' in page
    assert '<input type="number" step="any" name="budget" value="40" min="0" max="500">' in page
    assert '<input type="date" name="start" value="">' in page
    assert '<p class="error" role="alert">Bad &lt;date&gt;</p>' in page
    assert " required" not in page  # branches decide what is needed, on the server


# --------------------------------------------------------------------------- over HTTP


async def db_do(mongo: EmbeddedDatabase, hub: HubProcess, fn: Any) -> Any:
    context = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        return await fn(context.db)
    finally:
        await context.db.close()


async def login(hub: HubProcess, slug: str, name: str) -> Agent:
    client = Agent(hub.url, slug, f"{name}@t.test")
    await client.login()
    return client


def outbound_contact(tenant_id: str, agent_id: str | None, **extra: Any) -> dict[str, Any]:
    """A campaign call as the dialer leaves it once an agent has it."""
    now = utcnow()
    return {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "channel": "voice",
        "direction": "outbound",
        "status": "assigned" if agent_id else "closed",
        "agent_id": agent_id,
        "opened_at": now,
        "updated_at": now,
        **extra,
    }


async def test_designer_crud_roles_tenants_and_versions(
    hub_nobot: HubProcess, tenant_in: TenantFactory
) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": [], "ann": ["general"]}, roles={"sam": ["supervisor"]})
    other = await tenant_in(hub_nobot, agents={"sue": []}, roles={"sue": ["supervisor"]})
    sam, ann = await login(hub_nobot, t["slug"], "sam"), await login(hub_nobot, t["slug"], "ann")
    sue = await login(hub_nobot, other["slug"], "sue")
    try:
        created = await sam.http.post("/api/questionnaires", json={**SURVEY, "id": "mine", "version": 7})
        assert created.status_code == 201, created.text
        body = created.json()
        qid = body["id"]
        assert qid != "mine" and body["version"] == 1 and body["locked"] is False and body["family_id"] == qid
        assert body["questions"][1]["options"][2] == {"key": "3", "label": "1 Gbit", "next": None}
        bad = await sam.http.post(
            "/api/questionnaires",
            json={
                **SURVEY,
                "questions": [{"key": "a", "text": "A", "kind": "text", "next": "a"}],
                "endings": [],
            },
        )
        assert bad.status_code == 422 and bad.json()["detail"] == "questions loop back: a -> a"
        listed = (await sam.http.get("/api/questionnaires")).json()
        assert [(x["id"], x["name"], x["questions"]) for x in listed] == [(qid, "Broadband offer", 5)]
        renamed = await sam.http.put(f"/api/questionnaires/{qid}", json={**SURVEY, "name": "Fibre offer"})
        assert renamed.status_code == 200 and renamed.json()["name"] == "Fibre offer"
        assert (await sam.http.get(f"/api/questionnaires/{qid}")).json()["name"] == "Fibre offer"
        # agents do not design; other tenants see nothing
        assert (await ann.http.get("/api/questionnaires")).status_code == 403
        assert (await ann.http.post("/api/questionnaires", json=SURVEY)).status_code == 403
        assert (await sue.http.get("/api/questionnaires")).json() == []
        for method, path in (
            ("GET", f"/api/questionnaires/{qid}"),
            ("PUT", f"/api/questionnaires/{qid}"),
            ("DELETE", f"/api/questionnaires/{qid}"),
            ("POST", f"/api/questionnaires/{qid}/copy"),
            ("GET", f"/api/questionnaires/{qid}/stats"),
        ):
            response = await sue.http.request(method, path, json=SURVEY if method == "PUT" else None)
            assert response.status_code == 404, (method, path)
        copy = await sam.http.post(f"/api/questionnaires/{qid}/copy")
        assert copy.status_code == 201
        assert (copy.json()["version"], copy.json()["family_id"], copy.json()["name"]) == (
            2,
            qid,
            "Fibre offer",
        )
        assert (await sam.http.delete(f"/api/questionnaires/{copy.json()['id']}")).status_code == 204
        # the designer's preview: problems, or renderings and a voice conversation
        preview = await sam.http.post(
            "/api/questionnaires/preview",
            json={"questionnaire": SURVEY, "channel": "voice", "inputs": ["5", "1", "13", "10"]},
        )
        data = preview.json()
        assert data["valid"] and data["text"] == render_text(survey())
        assert [line["from"] for line in data["transcript"]] == [
            "questionnaire",
            *["respondent", "questionnaire", "questionnaire"],  # 5: not an option, asked again
            *["respondent", "questionnaire"],
            *["respondent", "questionnaire"],
            *["respondent", "questionnaire"],
        ]
        assert data["transcript"][2] == {
            "from": "questionnaire",
            "text": "Please answer with one of: 1 (Yes), 2 (No), 3 (Not sure).",
            "error": True,
        }
        assert data["transcript"][-1]["text"] == "Thanks, we will send you our basic offers."
        assert data["state"]["ending"] == "cheap"
        invalid = await sam.http.post("/api/questionnaires/preview", json={"questionnaire": {"name": "x"}})
        assert invalid.json() == {"valid": False, "problems": ["questions: Field required"]}
        # the designer page and the agent's script are served
        page = await sam.http.get("/questionnaires")
        assert page.status_code == 200 and 'src="/static/questionnaires.js"' in page.text
        assert (await ann.http.get("/questionnaires")).status_code == 403
        assert (await sam.http.get("/static/script.js")).status_code == 200
    finally:
        for client in (sam, ann, sue):
            await client.close()


async def test_the_agent_holding_the_contact_answers_through_the_script(
    hub_nobot: HubProcess, tenant_in: TenantFactory, mongo: EmbeddedDatabase
) -> None:
    t = await tenant_in(
        hub_nobot, agents={"sam": [], "ann": ["general"], "ben": ["general"]}, roles={"sam": ["supervisor"]}
    )
    other = await tenant_in(hub_nobot, agents={"olga": ["general"]}, roles={"olga": ["supervisor"]})
    sam, ann, ben = [await login(hub_nobot, t["slug"], n) for n in ("sam", "ann", "ben")]
    olga = await login(hub_nobot, other["slug"], "olga")
    widget = Widget(hub_nobot.ws_url, t["slug"])
    try:
        qid = (await sam.http.post("/api/questionnaires", json=SURVEY)).json()["id"]
        # a conversation reaches ann the usual way; the campaign's dialer marks its questionnaire
        await widget.connect()
        contact_id = (await widget.say("hello"))["contact_id"]
        await widget.wait_status("queued")
        await ann.available()
        await ann.wait_offer(contact_id)
        assert (await ann.http.post(f"/api/contacts/{contact_id}/accept")).status_code == 200
        url = f"/api/contacts/{contact_id}"
        none = (await ann.http.get(f"{url}/script")).json()
        assert none == {"contact_id": contact_id, "questionnaire": None, "state": None, "editable": False}
        await db_do(
            mongo,
            hub_nobot,
            lambda db: db.contacts.update_one({"_id": contact_id}, {"$set": {"questionnaire_id": qid}}),
        )
        script = (await ann.http.get(f"{url}/script")).json()
        assert script["editable"] is True and script["questionnaire"]["id"] == qid
        assert script["state"]["prompt"]["key"] == "interested"
        assert script["state"]["prompt"]["intro"] == "We have three quick questions."

        async def answer(client: Agent, answers: dict[str, Any]) -> Any:
            return await client.http.post(
                f"{url}/answers", json={"questionnaire_id": qid, "answers": answers}
            )

        step = (await answer(ann, {"interested": "1"})).json()
        assert step["prompt"]["key"] == "speed" and step["path"] == ["interested"] and not step["completed"]
        assert [o["label"] for o in step["prompt"]["options"]] == ["100 Mbit", "500 Mbit", "1 Gbit"]
        wrong = await answer(ann, {"interested": "1", "speed": ["1"], "budget": 900})
        assert wrong.status_code == 422
        assert wrong.json()["detail"] == "budget: Please answer with a number of at most 500."
        off_path = await answer(ann, {"interested": "2", "speed": ["1"]})
        assert off_path.status_code == 422 and "do not ask: speed" in off_path.json()["detail"]
        done = (await answer(ann, {"interested": "1", "speed": ["1", "3"], "budget": 15})).json()
        assert done["completed"] and done["ending"] == "cheap" and done["prompt"] is None
        assert done["end_text"] == "Thanks, we will send you our basic offers."
        # the script shows where the conversation is, to the holder and to supervisors
        again = (await ann.http.get(f"{url}/script")).json()
        assert again["state"]["done"] and again["state"]["answers"]["budget"] == 15
        assert (await sam.http.get(f"{url}/script")).json()["editable"] is False

        # nobody else records answers: another agent, a supervisor not holding it, another tenant
        assert (await answer(ben, {"interested": "2"})).status_code == 403
        assert (await ben.http.get(f"{url}/script")).status_code == 403
        assert (await answer(sam, {"interested": "2"})).status_code == 403
        assert (await answer(olga, {"interested": "2"})).status_code == 404
        assert (await olga.http.get(f"{url}/script")).status_code == 404
        other_q = (await olga.http.post("/api/questionnaires", json=SURVEY)).json()["id"]
        foreign = await ann.http.post(f"{url}/answers", json={"questionnaire_id": other_q, "answers": {}})
        assert foreign.status_code == 404

        # stored on the contact; the questionnaire is locked now
        contact = await db_do(mongo, hub_nobot, lambda db: db.contacts.find_one({"_id": contact_id}))
        assert contact["answers"][qid] == {"interested": "1", "speed": ["1", "3"], "budget": 15}
        locked = await sam.http.put(f"/api/questionnaires/{qid}", json=SURVEY)
        assert locked.status_code == 409 and "copy it" in locked.json()["detail"]
        assert (await sam.http.delete(f"/api/questionnaires/{qid}")).status_code == 409
        assert (await sam.http.get(f"/api/questionnaires/{qid}")).json()["locked"] is True

        # once closed, the answers stay as they are
        await db_do(
            mongo,
            hub_nobot,
            lambda db: db.contacts.update_one({"_id": contact_id}, {"$set": {"status": "closed"}}),
        )
        assert (await answer(ann, {"interested": "2"})).status_code == 409
    finally:
        await widget.close()
        for client in (sam, ann, ben, olga):
            await client.close()


async def test_stats_per_question_are_exact(
    hub_nobot: HubProcess, tenant_in: TenantFactory, mongo: EmbeddedDatabase
) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": [], "ann": ["general"]}, roles={"sam": ["supervisor"]})
    tenant_id, ann_id = t["tenant"]["_id"], t["users"]["ann"]["_id"]
    sam, ann = await login(hub_nobot, t["slug"], "sam"), await login(hub_nobot, t["slug"], "ann")
    http = ann.http
    try:
        qid = (await sam.http.post("/api/questionnaires", json=SURVEY)).json()["id"]
        campaign = {
            "_id": new_id(),
            "tenant_id": tenant_id,
            "name": "Fibre",
            "type": "preview",
            "questionnaire_id": qid,
        }
        contacts = [outbound_contact(tenant_id, ann_id, campaign_id=campaign["_id"]) for _ in range(5)]
        email = outbound_contact(tenant_id, None, channel="email", campaign_id=campaign["_id"])

        async def arrange(db: Any) -> None:
            await db.campaigns.insert_one(campaign)
            await db.contacts.insert_many([*contacts, email])

        await db_do(mongo, hub_nobot, arrange)
        given = [
            {
                "interested": "1",
                "speed": ["1", "3"],
                "budget": 40,
                "start": "2026-05-01",
                "comments": "Call after 6pm",
            },
            {"interested": "2"},
            {"interested": "3", "speed": ["3"], "budget": 10},
            {"interested": "1"},  # stopped after one answer
            {},  # the script opened, nothing answered yet
        ]
        for contact, answers in zip(contacts, given, strict=True):
            # the questionnaire comes from the contact's campaign
            script = (await http.get(f"/api/contacts/{contact['_id']}/script")).json()
            assert script["questionnaire"]["id"] == qid
            saved = await http.post(
                f"/api/contacts/{contact['_id']}/answers", json={"questionnaire_id": qid, "answers": answers}
            )
            assert saved.status_code == 200, saved.text
        token = answer_token(TEST_SECRET, tenant_id, email["_id"], qid)
        form = {"interested": "1", "speed": ["2"], "budget": "100", "start": "", "comments": "Fibre please"}
        assert (await http.post(f"/q/{token}", data=form)).status_code == 200

        stats = (await sam.http.get(f"/api/questionnaires/{qid}/stats")).json()
        assert (stats["started"], stats["answered"], stats["completed"]) == (6, 5, 4)
        by_key = {q["key"]: q for q in stats["questions"]}
        assert by_key["interested"]["answered"] == 5
        assert [(o["label"], o["count"]) for o in by_key["interested"]["options"]] == [
            ("Yes", 3),
            ("No", 1),
            ("Not sure", 1),
        ]
        assert [(o["label"], o["count"]) for o in by_key["speed"]["options"]] == [
            ("100 Mbit", 1),
            ("500 Mbit", 1),
            ("1 Gbit", 2),
        ]
        budget = by_key["budget"]
        assert (budget["answered"], budget["mean"], budget["min"], budget["max"]) == (3, 50, 10, 100)
        start = by_key["start"]
        assert (start["answered"], start["skipped"], start["earliest"], start["latest"]) == (
            1,
            1,
            "2026-05-01",
            "2026-05-01",
        )
        comments = by_key["comments"]
        assert comments["answered"] == 2
        assert [(c["text"], c["contact_id"]) for c in comments["latest"]] == [
            ("Fibre please", email["_id"]),
            ("Call after 6pm", contacts[0]["_id"]),
        ]
        # the answers also reach the campaign's contacts and, from the form, the email contact
        stored = await db_do(mongo, hub_nobot, lambda db: db.contacts.find_one({"_id": email["_id"]}))
        assert stored["answers"][qid] == {
            "interested": "1",
            "speed": ["2"],
            "budget": 100,
            "start": None,
            "comments": "Fibre please",
        }
        # a campaign uses it: it cannot be deleted
        assert (await sam.http.delete(f"/api/questionnaires/{qid}")).status_code == 409
    finally:
        await sam.close()
        await ann.close()


async def test_the_emailed_form_link(
    hub_nobot: HubProcess, tenant_in: TenantFactory, mongo: EmbeddedDatabase
) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": []}, roles={"sam": ["supervisor"]})
    other = await tenant_in(hub_nobot, agents={"sue": []}, roles={"sue": ["supervisor"]})
    tenant_id, other_id = t["tenant"]["_id"], other["tenant"]["_id"]
    sam = await login(hub_nobot, t["slug"], "sam")
    anonymous = Agent(hub_nobot.url, t["slug"], "nobody@t.test").http  # no login: the link is the key
    try:
        qid = (await sam.http.post("/api/questionnaires", json=SURVEY)).json()["id"]
        email = outbound_contact(tenant_id, None, channel="email")
        await db_do(mongo, hub_nobot, lambda db: db.contacts.insert_one(email))
        token = answer_token(TEST_SECRET, tenant_id, email["_id"], qid)
        page = await anonymous.get(f"/q/{token}")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert (
            '<form method="post" action="/q/' in page.text
            and "Are you interested in faster broadband?" in page.text
        )

        # a form with a mistake: kept as far as valid, shown again with the reason
        bad = await anonymous.post(f"/q/{token}", data={"interested": "1", "budget": "lots"})
        assert bad.status_code == 422
        assert (
            "An answer is required." in bad.text
            and '<input type="radio" name="interested" value="1" checked>' in bad.text
        )
        refill = await anonymous.get(f"/q/{token}")
        assert '<input type="radio" name="interested" value="1" checked>' in refill.text

        # answers for questions the branches skip are ignored; "No" ends at once
        done = await anonymous.post(f"/q/{token}", data={"interested": "2", "speed": ["1"], "budget": "lots"})
        assert done.status_code == 200
        assert "Thank you, we will not call again about this." in done.text
        stored = await db_do(mongo, hub_nobot, lambda db: db.contacts.find_one({"_id": email["_id"]}))
        assert stored["answers"][qid] == {"interested": "2"}
        assert "Your answers have been received" in (await anonymous.get(f"/q/{token}")).text
        assert (await anonymous.post(f"/q/{token}", data={"interested": "1"})).status_code == 409

        # expired, forged, another tenant's, or a login token: no form
        expired = answer_token(TEST_SECRET, tenant_id, email["_id"], qid, ttl_s=-5)
        gone = await anonymous.get(f"/q/{expired}")
        assert gone.status_code == 410 and "expired" in gone.text
        assert (await anonymous.post(f"/q/{expired}", data={"interested": "1"})).status_code == 410
        forged = answer_token("another-secret-" + "y" * 40, tenant_id, email["_id"], qid)
        assert (await anonymous.get(f"/q/{forged}")).status_code == 404
        cross = answer_token(TEST_SECRET, other_id, email["_id"], qid)
        assert (await anonymous.get(f"/q/{cross}")).status_code == 404
        assert (await anonymous.post(f"/q/{cross}", data={"interested": "1"})).status_code == 404
        session = sam.http.headers["Authorization"].split()[1]
        assert (await anonymous.get(f"/q/{session}")).status_code == 404
        assert (await anonymous.get("/q/not-a-token")).status_code == 404
    finally:
        await sam.close()
        await anonymous.aclose()
