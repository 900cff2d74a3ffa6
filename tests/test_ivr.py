"""The IVR state machine and flow validation: pure code, a fake clock, no audio."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.ivr import (
    DEFAULT_FLOW,
    STATES,
    CreateCallback,
    Enqueue,
    EnterBot,
    Flow,
    FlowError,
    Hangup,
    IvrSession,
    LeaveQueue,
    Listen,
    Lookup,
    Play,
    RecordVoicemail,
    StartHoldMusic,
    Survey,
    is_open,
    spoken_digit,
    text,
    validate_flow,
)

NUMBER = "+12125550100"
# Tuesday 10 March 2026, 15:00 UTC = 11:00 in New York (EDT since 8 March).
OPEN = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
MENU_PROMPT = text(
    "For billing, press 1 or say billing. To report an outage, press 2. For our opening hours, press 3. "
    "To hear your balance, press 4. To talk to an agent, press 0 at any time. "
    "Or just tell me how I can help."
)


def at(value: str) -> datetime:
    """The fake clock: an ISO time, UTC unless it says otherwise."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def demo(**changes: Any) -> Flow:
    doc = DEFAULT_FLOW("tenant-1", NUMBER)
    doc.update(changes)
    return validate_flow(doc)


def started(flow: Flow | None = None, now: datetime = OPEN) -> IvrSession:
    session = IvrSession(flow or demo(), now)
    session.start()
    return session


def minimal(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "tenant_id": "t",
        "number": NUMBER,
        "start": "main",
        "nodes": {
            "main": {
                "type": "menu",
                "prompt": "Press 1 for sales.",
                "options": [{"key": "1", "phrases": ["sales"], "next": "sales"}],
            },
            "sales": {"type": "queue", "skill": "sales"},
        },
    }
    doc.update(changes)
    return doc


# --------------------------------------------------------------------------- business hours

SCHEDULE = DEFAULT_FLOW("t", NUMBER)["schedule"]


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-03-10T12:30", True),  # Tue 08:30 EDT
        ("2026-03-03T12:30", False),  # Tue 07:30 EST: same UTC time, before DST
        ("2026-03-03T13:00", True),  # Tue 08:00 EST, the first open minute
        ("2026-03-10T23:59", True),  # Tue 19:59 EDT
        ("2026-03-11T00:00", False),  # Tue 20:00 EDT: the end is exclusive
        ("2026-03-14T20:30", True),  # Sat 16:30 EDT
        ("2026-03-14T21:00", False),  # Sat 17:00 EDT
        ("2026-03-15T16:00", False),  # Sunday
        ("2026-12-24T16:00", True),  # Thu 11:00 EST
        ("2026-12-25T16:00", False),  # Christmas (a Friday) is a holiday
        ("2026-12-26T04:30", False),  # still 25 Dec in New York (23:30)
        ("2026-03-10T15:00-04:00", True),  # an explicit offset is honoured
    ],
)
def test_business_hours_follow_the_flow_time_zone_and_holidays(moment: str, expected: bool) -> None:
    assert is_open(SCHEDULE, "America/New_York", at(moment)) is expected


def test_naive_times_are_utc_and_other_zones_differ() -> None:
    naive = datetime(2026, 3, 10, 12, 30)
    assert is_open(SCHEDULE, "America/New_York", naive) is True
    assert is_open(SCHEDULE, "Asia/Seoul", naive) is False  # 21:30 in Seoul
    assert is_open(None, "UTC", naive) is True  # no schedule: always open


def test_overnight_ranges_belong_to_the_day_they_start() -> None:
    schedule = {"hours": {"fri": [["22:00", "02:00"]]}, "holidays": ["2026-03-07"]}
    assert is_open(schedule, "UTC", at("2026-03-06T23:00")) is True  # Friday night
    assert is_open(schedule, "UTC", at("2026-03-07T01:59")) is False  # Saturday is a holiday
    assert is_open(schedule, "UTC", at("2026-03-14T01:30")) is True  # the next Saturday
    assert is_open(schedule, "UTC", at("2026-03-14T02:00")) is False
    assert is_open(schedule, "UTC", at("2026-03-12T23:00")) is False  # Thursday


def test_closed_calls_go_to_voicemail_or_hang_up() -> None:
    flow = demo()
    sunday = at("2026-03-15T16:00")
    session = IvrSession(flow, sunday)
    actions = session.start()
    assert flow.schedule is not None
    assert actions == [Play(flow.schedule.closed.prompt), RecordVoicemail(120), Hangup()]
    assert session.closed and session.state == "voicemail" and session.path == []
    assert session.on_dtmf("0") == [] and session.start() == []

    doc = DEFAULT_FLOW("t", NUMBER)
    doc["schedule"]["closed"] = {"prompt": {"text": "Closed."}, "action": "hangup"}
    hangup = IvrSession(validate_flow(doc), sunday)
    assert hangup.start() == [Play(text("Closed.")), Hangup()]
    assert hangup.state == "ended"
    # the same flow at an open moment answers normally
    assert IvrSession(validate_flow(doc), OPEN).start()[0] == Play(text("Thank you for calling Northwind."))


# --------------------------------------------------------------------------- menus


def test_start_plays_the_welcome_then_the_menu() -> None:
    session = IvrSession(demo(), OPEN)
    actions = session.start()
    assert actions == [
        Play(text("Thank you for calling Northwind.")),
        Play(MENU_PROMPT),
        Listen("both", None, 6.0),  # free speech goes to the bot, so no grammar
    ]
    assert session.state == "menu" and session.node == "main" and session.path == ["welcome", "main"]


def test_menu_by_key_queues_with_hold_music_and_exit_keys() -> None:
    session = started()
    actions = session.on_dtmf("1")
    assert actions[1:] == [
        Enqueue("billing", "ivr_selection"),
        StartHoldMusic("default"),
        Listen("dtmf", None, None),
    ]
    assert isinstance(actions[0], Play) and "billing team" in (actions[0].prompt.text or "")
    assert session.state == "queued" and session.path == ["welcome", "main", "billing"]
    assert session.skill == "billing" and session.reason == "ivr_selection"


@pytest.mark.parametrize(
    ("said", "node"),
    [
        ("Billing", "billing"),
        ("I want to pay my BILL, please!", "billing"),
        ("there's a power cut on my street", "outage"),
        ("what are your opening hours", "hours"),
        ("press three", "hours"),
        ("two", "outage"),
        ("4", "balance"),
    ],
)
def test_menu_by_phrase_or_spoken_digit(said: str, node: str) -> None:
    session = started()
    session.on_speech(said)
    assert node in session.path[2:]


def test_outage_goes_to_the_bot_and_free_speech_carries_the_words() -> None:
    session = started()
    assert session.on_dtmf("2") == [
        Play(text("Sorry to hear that. Please tell me the address where the outage is.")),
        EnterBot(None),
    ]
    assert session.state == "bot"
    assert session.on_speech("12 Main Street") == []  # the pipeline sends it to Rasa
    free = started()
    assert free.on_speech("My meter is making strange noises") == [
        EnterBot("My meter is making strange noises")
    ]
    assert free.state == "bot" and free.path == ["welcome", "main", "assistant"]


def test_say_node_returns_to_the_menu_and_lookup_continues() -> None:
    session = started()
    actions = session.on_dtmf("3")
    assert isinstance(actions[0], Play) and "Monday to Friday" in (actions[0].prompt.text or "")
    assert actions[1:] == [Play(MENU_PROMPT), Listen("both", None, 6.0)]
    assert session.path == ["welcome", "main", "hours", "main"] and session.state == "menu"
    assert session.on_dtmf("4") == [Lookup("balance"), Play(MENU_PROMPT), Listen("both", None, 6.0)]
    assert session.path[-2:] == ["balance", "main"]


def test_grammar_phrases_when_the_menu_has_no_free_speech() -> None:
    session = IvrSession(validate_flow(minimal()), OPEN)
    listen = session.start()[-1]
    assert isinstance(listen, Listen) and listen.mode == "both" and listen.phrases is not None
    assert {"sales", "one", "zero", "agent"} <= set(listen.phrases)
    korean = IvrSession(validate_flow(minimal(language="ko")), OPEN).start()[-1]
    # Korean grammars carry no one-syllable digit words: they swallow parts of real phrases
    assert isinstance(korean, Listen) and korean.phrases is not None
    assert "일" not in korean.phrases and "영" not in korean.phrases and "상담원" in korean.phrases
    dtmf_only = minimal()
    dtmf_only["nodes"]["main"]["speech"] = False
    assert IvrSession(validate_flow(dtmf_only), OPEN).start()[-1] == Listen("dtmf", None, 6.0)


@pytest.mark.parametrize(
    ("said", "digit"),
    [("일번", "1"), ("1번", "1"), ("삼 번", "3"), ("셋", "3"), ("영", "0"), ("Option Five", "5")],
)
def test_spoken_digits_in_english_and_korean(said: str, digit: str) -> None:
    assert spoken_digit(said) == digit


def test_korean_phrases_match_inside_words_with_particles() -> None:
    doc = minimal(language="ko")
    doc["nodes"]["main"]["options"] = [{"key": "1", "phrases": ["요금 조회"], "next": "sales"}]
    session = IvrSession(validate_flow(doc), OPEN)
    session.start()
    assert session.on_speech("요금 조회를 하고 싶어요")[0] == Enqueue("sales", "ivr_selection")
    other = IvrSession(validate_flow(doc), OPEN)
    other.start()
    assert other.on_speech("상담원 연결")[-1] == Enqueue("general", "caller_asked_for_agent")
    spoken = IvrSession(validate_flow(doc), OPEN)
    spoken.start()
    assert spoken.on_speech("일번") == [Enqueue("sales", "ivr_selection")]


def test_two_invalid_inputs_hand_off_to_an_agent() -> None:
    session = started()
    flow = session.flow
    menu = flow.nodes["main"]
    assert menu.type == "menu"
    assert session.on_dtmf("7") == [Play(menu.invalid_prompt), Play(MENU_PROMPT), Listen("both", None, 6.0)]
    actions = session.on_dtmf("#")
    assert Enqueue("general", "ivr_failed") in actions
    assert session.state == "queued" and session.path[-1] == "agent" and session.reason == "ivr_failed"


def test_no_input_and_invalid_speech_count_together() -> None:
    session = started()
    menu = session.flow.nodes["main"]
    assert menu.type == "menu"
    assert session.on_timeout()[0] == Play(menu.no_input_prompt)
    assert Enqueue("general", "ivr_failed") in session.on_timeout()
    mixed = IvrSession(validate_flow(minimal()), OPEN)
    mixed.start()
    assert mixed.on_speech("something else entirely")[0] == Play(
        text("Sorry, that is not one of the choices.")
    )
    assert mixed.on_speech("   ")[-1] == Enqueue("general", "ivr_failed")


def test_a_valid_choice_resets_the_failure_count() -> None:
    session = started()
    session.on_dtmf("9")
    session.on_dtmf("3")  # hours, back to the menu
    assert session.on_dtmf("9")[0] != Enqueue("general", "ivr_failed")
    assert session.state == "menu"


def test_retries_setting_is_the_number_of_failures_before_handoff() -> None:
    doc = minimal()
    doc["nodes"]["main"]["retries"] = 3
    session = IvrSession(validate_flow(doc), OPEN)
    session.start()
    session.on_timeout()
    session.on_timeout()
    assert session.state == "menu"
    assert session.on_timeout() == [
        Play(text("Please hold while I connect you to an agent.")),
        Enqueue("general", "ivr_failed"),
    ]


# --------------------------------------------------------------------------- "0" and hand-offs


def test_zero_in_a_menu_reaches_an_agent() -> None:
    session = started()
    actions = session.on_dtmf("0")
    assert Enqueue("general", "caller_pressed_0") in actions and session.path[-1] == "agent"
    spoken = started()
    assert Enqueue("general", "caller_pressed_0") in spoken.on_speech("zero")
    asked = started()
    assert Enqueue("general", "caller_asked_for_agent") in asked.on_speech("let me talk to an agent")


def test_zero_inside_the_bot_reaches_an_agent() -> None:
    session = started()
    session.on_dtmf("2")
    assert session.state == "bot"
    assert session.on_dtmf("5") == []  # other keys mean nothing to the IVR in the bot
    actions = session.on_dtmf("0")
    assert Enqueue("general", "caller_pressed_0") in actions
    assert session.state == "queued"
    assert session.on_dtmf("0") == []  # already queued: no second enqueue


def test_zero_without_an_operator_node_uses_the_default_skill() -> None:
    session = IvrSession(validate_flow(minimal(default_skill="frontdesk")), OPEN)
    session.start()
    assert session.on_dtmf("0") == [
        Play(text("Please hold while I connect you to an agent.")),
        Enqueue("frontdesk", "caller_pressed_0"),
    ]
    assert session.node is None and session.path == ["main"]
    assert session.on_dtmf("1") == []  # the built-in queue has no exit keys


def test_bot_handoff_uses_the_queue_node_of_the_skill() -> None:
    session = started()
    session.on_dtmf("2")
    actions = session.on_bot_handoff("billing", "intent:pay_bill")
    assert Enqueue("billing", "intent:pay_bill") in actions and session.node == "billing"
    other = started()
    other.on_dtmf("2")
    actions = other.on_bot_handoff("technical", "bot_fallback")
    assert Enqueue("technical", "bot_fallback") in actions and other.node == "agent"
    assert StartHoldMusic("default") in actions
    assert started().on_bot_handoff("billing", "x") == []  # not in the bot


# --------------------------------------------------------------------------- queue, agent, survey


def test_queue_exit_keys_offer_voicemail_and_callback() -> None:
    session = started()
    session.on_dtmf("1")
    assert session.on_dtmf("5") == [] and session.state == "queued"
    actions = session.on_dtmf("1")
    assert actions[0] == LeaveQueue() and actions[2:] == [RecordVoicemail(120), Hangup()]
    assert session.state == "voicemail"
    callback = started()
    callback.on_dtmf("1")
    actions = callback.on_dtmf("2")
    assert actions[:2] == [LeaveQueue(), CreateCallback()] and actions[-1] == Hangup()
    assert callback.state == "ended"


def test_escalation_offers_keys_the_queue_node_lacks_and_they_survive_storage() -> None:
    """The router's escalation offers a callback: a node without exit keys gets 1 for it."""
    session = IvrSession(validate_flow(minimal()), OPEN)
    session.start()
    session.on_dtmf("1")
    assert session.on_dtmf("1") == []  # no exit keys yet
    actions = session.on_queue_offer(["callback"])
    assert actions == [
        Play(text("All our agents are still busy. Press 1 and we will call you back.")),
        Listen("dtmf", None, None),
    ]
    restored = IvrSession.from_dict(json.loads(json.dumps(session.to_dict())))
    assert restored.on_dtmf("1")[:2] == [LeaveQueue(), CreateCallback()]
    # a node's own keys are used as they are; voicemail added later takes the next free key
    demo_session = started()
    demo_session.on_dtmf("1")  # the demo billing queue has 1 = voicemail, 2 = callback
    said = demo_session.on_queue_offer(["voicemail"])
    assert said[0] == Play(text("All our agents are still busy. Press 1 to leave a message."))
    assert started().on_queue_offer(["callback"]) == []  # not queued


def test_queue_node_targets_a_queue_or_one_agent() -> None:
    doc = minimal()
    doc["nodes"]["sales"].update(queue_id="q-sales", agent_id="agent-7")
    session = IvrSession(validate_flow(doc), OPEN)
    session.start()
    assert Enqueue("sales", "ivr_selection", "q-sales", "agent-7") in session.on_dtmf("1")


def test_position_announcements() -> None:
    session = started()
    session.on_dtmf("1")
    assert session.on_queue_tick(3) == [Play(text("You are number 3 in line."))]
    assert session.on_queue_tick(0) == []
    quiet = IvrSession(validate_flow(minimal()), OPEN)
    quiet.start()
    quiet.on_dtmf("1")
    assert quiet.on_queue_tick(2) == []
    assert started().on_queue_tick(1) == []  # not queued


def test_agent_id_is_announced_before_connecting() -> None:
    session = started()
    session.on_dtmf("0")
    assert session.on_agent_connected("1234") == [Play(text("You are connected to agent 1234."))]
    assert session.state == "agent" and session.agent_code == "1234"
    silent = IvrSession(demo(announce_agent=False), OPEN)
    silent.start()
    silent.on_dtmf("0")
    assert silent.on_agent_connected("1234") == [] and silent.state == "agent"


def _in_survey() -> IvrSession:
    session = started()
    session.on_dtmf("1")
    session.on_agent_connected("1234")
    return session


@pytest.mark.parametrize("score", [1, 2, 3, 4, 5])
def test_survey_records_a_score_from_1_to_scale(score: int) -> None:
    session = _in_survey()
    survey = session.flow.survey
    assert session.on_call_end() == [
        Survey(survey.prompt, 5),
        Play(survey.prompt),
        Listen("dtmf", None, survey.timeout_s),
    ]
    assert session.state == "survey"
    assert session.on_dtmf(str(score)) == [Play(survey.thanks_prompt), Hangup()]
    assert session.survey_score == score and session.state == "ended"


@pytest.mark.parametrize("wrong", ["6", "9", "0", "*"])
def test_survey_rejects_keys_outside_the_scale_including_zero(wrong: str) -> None:
    session = _in_survey()
    session.on_call_end()
    actions = session.on_dtmf(wrong)
    assert actions == [Play(text("Please press a number from 1 to 5.")), Listen("dtmf", None, 8.0)]
    assert session.survey_score is None and session.state == "survey"
    assert Enqueue("general", "caller_pressed_0") not in actions
    assert session.on_dtmf("4")[-1] == Hangup() and session.survey_score == 4


def test_survey_gives_up_after_two_bad_answers_or_silence() -> None:
    session = _in_survey()
    session.on_call_end()
    session.on_dtmf("9")
    assert session.on_timeout() == [Hangup()]
    assert session.state == "ended" and session.survey_score is None
    spoken = _in_survey()
    spoken.on_call_end()
    assert spoken.on_speech("five")[-1] == Hangup() and spoken.survey_score == 5


def test_no_survey_without_an_agent_or_when_disabled() -> None:
    session = started()
    session.on_dtmf("2")  # bot only
    assert session.on_call_end() == [Hangup()] and session.state == "ended"
    off = IvrSession(demo(survey={"enabled": False}), OPEN)
    off.start()
    off.on_dtmf("0")
    off.on_agent_connected("77")
    assert off.on_call_end() == [Hangup()]
    gone = _in_survey()
    assert gone.on_call_end(caller_hung_up=True) == [] and gone.state == "ended"
    assert gone.on_call_end() == []


def test_agent_can_send_the_caller_back_to_self_service() -> None:
    session = _in_survey()
    actions = session.goto("main")
    assert actions == [Play(MENU_PROMPT), Listen("both", None, 6.0)] and session.state == "menu"
    with pytest.raises(ValueError, match="no node"):
        session.goto("nowhere")


def test_voicemail_and_hangup_nodes() -> None:
    doc = minimal()
    doc["nodes"]["main"]["options"] += [
        {"key": "2", "next": "vm"},
        {"key": "3", "next": "bye"},
    ]
    doc["nodes"]["vm"] = {"type": "voicemail", "prompt": "Leave a message.", "max_seconds": 60}
    doc["nodes"]["bye"] = {"type": "hangup", "prompt": "Goodbye."}
    flow = validate_flow(doc)
    vm = IvrSession(flow, OPEN)
    vm.start()
    assert vm.on_dtmf("2") == [Play(text("Leave a message.")), RecordVoicemail(60), Hangup()]
    bye = IvrSession(flow, OPEN)
    bye.start()
    assert bye.on_dtmf("3") == [Play(text("Goodbye.")), Hangup()] and bye.state == "ended"


# --------------------------------------------------------------------------- storage


def test_session_round_trips_through_json_and_bson() -> None:
    session = started()
    session.on_dtmf("9")  # one failure so far
    stored = json.loads(json.dumps(session.to_dict()))
    bson.encode(session.to_dict())
    restored = IvrSession.from_dict(stored)
    assert restored.to_dict() == session.to_dict()
    assert restored.path == ["welcome", "main"] and restored.failures == 1
    assert Enqueue("general", "ivr_failed") in restored.on_dtmf("9")  # the count survived
    finished = _in_survey()
    finished.on_call_end()
    finished.on_dtmf("5")
    again = IvrSession.from_dict(finished.to_dict())
    assert again.survey_score == 5 and again.state == "ended" and again.agent_code == "1234"


def test_from_dict_rejects_foreign_state() -> None:
    data = started().to_dict()
    with pytest.raises(ValueError, match="unknown IVR state"):
        IvrSession.from_dict({**data, "state": "dancing"})
    with pytest.raises(ValueError, match="does not have"):
        IvrSession.from_dict({**data, "node": "gone"})
    with pytest.raises(ValueError, match="format"):
        IvrSession.from_dict({**data, "format": 99})


def test_prompts_accept_plain_strings_and_audio_ids() -> None:
    doc = minimal()
    doc["nodes"]["main"]["prompt"] = {"audio_id": "65f0c0ffee0000000000abcd"}
    flow = validate_flow(doc)
    assert flow.audio_ids() == {"65f0c0ffee0000000000abcd"}
    assert flow.to_doc()["nodes"]["main"]["prompt"] == {"audio_id": "65f0c0ffee0000000000abcd"}
    assert validate_flow(flow.to_doc()) == flow  # the stored form parses back to the same flow


# --------------------------------------------------------------------------- validation


def _set(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DEFAULT_FLOW("t", NUMBER))
    *parents, last = path.split(".")
    target: Any = doc
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is _DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "nodes.main.options.0.next",
            "bilinng",
            "node 'main' option '1': next node 'bilinng' is not defined",
        ),
        ("nodes.hours.next", "nowhere", "node 'hours' next: next node 'nowhere' is not defined"),
        ("start", _DELETE, "flow has no start node"),
        ("start", "lobby", "start node 'lobby' is not defined"),
        ("nodes.main.options.1.key", "1", "key '1' is used by two options"),
        ("nodes.main.options.1.key", "0", "key '0' is reserved"),
        ("nodes.main.options.1.key", "12", "key '12' must be one of 1-9, * or #"),
        ("nodes.main.options.1.phrases", ["Bill"], "phrase 'bill' is used by two options"),
        ("schedule.hours.mon", [["8:00", "20:00"]], "time '8:00' must be HH:MM"),
        ("schedule.hours.mon", [["08:00", "25:00"]], "time '25:00' must be HH:MM"),
        ("schedule.hours.monday", [["08:00", "20:00"]], "unknown day 'monday'"),
        ("schedule.holidays", ["2026-13-01"], "holiday '2026-13-01' is not a date"),
        ("timezone", "Europe/Atlantis", "unknown time zone 'Europe/Atlantis'"),
        ("number", "2125550100", "must be in E.164 format"),
        ("number", "+0123", "must be in E.164 format"),
        ("operator", "hours", "operator node 'hours' must be a queue node"),
        ("nodes.billing.exit_keys", {"0": "voicemail"}, "key '0' is reserved"),
        ("nodes.billing.exit_keys", {"1": "dance"}, "nodes.billing.queue.exit_keys.1"),
        ("nodes.main.type", "carousel", "does not match any of the expected tags"),
        ("nodes.hours.prompt", {"text": "a", "audio_id": "b"}, "either non-empty 'text' or an 'audio_id'"),
        ("nodes.hours.prompt", "", "either non-empty 'text' or an 'audio_id'"),
        ("nodes.hours.colour", "blue", "nodes.hours.say.colour: Extra inputs are not permitted"),
        ("survey.scale", 12, "survey.scale"),
    ],
)
def test_validation_errors_are_clear(path: str, value: Any, message: str) -> None:
    doc = _set(path, value)
    with pytest.raises(FlowError) as error:
        validate_flow(doc)
    assert message in str(error.value)


def test_a_loop_of_nodes_that_never_wait_is_rejected() -> None:
    doc = _set("nodes.hours.next", "balance")
    doc["nodes"]["balance"]["next"] = "hours"
    with pytest.raises(FlowError, match="loop without waiting for the caller: hours -> balance -> hours"):
        validate_flow(doc)


def test_the_demo_flow_is_valid_and_numbers_are_normalised() -> None:
    flow = validate_flow({**DEFAULT_FLOW("t", "+1 (212) 555-0100"), "created_at": OPEN})
    assert flow.number == NUMBER and flow.start == "welcome" and flow.survey.enabled
    assert flow.schedule is not None and flow.schedule.hours["sat"] == [("09:00", "17:00")]


# --------------------------------------------------------------------------- property test

_EVENTS = st.one_of(
    st.tuples(st.just("dtmf"), st.sampled_from([*"0123456789*#", "", "12", "x"])),
    st.tuples(
        st.just("speech"),
        st.one_of(
            st.sampled_from(["billing", "zero", "one", "outage", "agent", "삼번", "", "hours", "five"]),
            st.text(max_size=30),
        ),
    ),
    st.tuples(st.just("timeout"), st.none()),
    st.tuples(st.just("handoff"), st.sampled_from(["billing", "general", "technical", ""])),
    st.tuples(st.just("tick"), st.integers(-2, 50)),
    st.tuples(st.just("agent"), st.sampled_from(["1234", "7"])),
    st.tuples(st.just("end"), st.booleans()),
)


def _apply(session: IvrSession, kind: str, arg: Any) -> list[Any]:
    if kind == "dtmf":
        return session.on_dtmf(arg)
    if kind == "speech":
        return session.on_speech(arg)
    if kind == "timeout":
        return session.on_timeout()
    if kind == "handoff":
        return session.on_bot_handoff(arg, "bot_fallback")
    if kind == "tick":
        return session.on_queue_tick(arg)
    if kind == "agent":
        return session.on_agent_connected(arg)
    return session.on_call_end(caller_hung_up=arg)


_ACTIONS = (
    Play,
    Listen,
    EnterBot,
    Enqueue,
    LeaveQueue,
    StartHoldMusic,
    RecordVoicemail,
    CreateCallback,
    Lookup,
    Survey,
    Hangup,
)
_FLOW = demo()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    now=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    events=st.lists(_EVENTS, max_size=40),
)
def test_any_event_sequence_keeps_a_defined_state(now: datetime, events: list[tuple[str, Any]]) -> None:
    session = IvrSession(_FLOW, now)
    session.start()
    for kind, arg in events:
        actions = _apply(session, kind, arg)
        assert all(isinstance(a, _ACTIONS) for a in actions)
        assert session.state in STATES and session.state != "idle"
        assert session.node is None or session.node in _FLOW.nodes
        assert session.survey_score is None or 1 <= session.survey_score <= 5
        if session.state == "menu":
            assert session.node is not None and _FLOW.nodes[session.node].type == "menu"
    restored = IvrSession.from_dict(json.loads(json.dumps(session.to_dict())))
    assert restored.to_dict() == session.to_dict()
    session.on_call_end(caller_hung_up=True)
    assert session.state == "ended"
