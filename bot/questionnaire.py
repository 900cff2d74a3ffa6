"""Questionnaires as data, and the session that asks one on any channel.

A questionnaire is a list of questions (single or multiple choice, free text, number,
date) with branching, plus end texts. `QuestionnaireSession` asks it one question at a
time: `start()` gives the first `Prompt`, `answer(raw)` takes what the respondent typed,
said or keyed and returns a `Step` (the next question, the same one again with an error
message, or the end). The same session drives every channel, so branching and answer
parsing are written once:

- a robot call speaks `prompt.as_voice()` and feeds keys ("1", "13#") or the transcript
  ("yes please", "press two") to `answer`;
- an SMS conversation sends `prompt.as_text()` and feeds each reply to `answer`;
- an email carries `render_text` or a link to the form of `render_html`; the form's
  fields go through `replay`, which walks the same branches;
- the agent's script replays the answers given so far (`replay`) to show the next question.

Branching, checked in this order when a question is left: its `branches` (conditions on
any answer so far, first match wins), the chosen option's `next` (for multiple choice the
first chosen option in option order that has one), the question's `next`, else the next
question in the list; past the last one the questionnaire ends with `end_text`. A target
is a question key, an ending key or "end".

Stored answers are canonical: single -> the option key, multiple -> option keys in option
order, number -> int or float, text -> str, date -> "YYYY-MM-DD"; a skipped optional
question -> None. Option keys are the digits 1-9 so every question can be answered on a
telephone keypad. This module does no I/O (storage is in `bot.questionnaire_store`).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.ivr import normalize, spoken_digit

Kind = Literal["single", "multiple", "text", "number", "date"]
KINDS: tuple[str, ...] = ("single", "multiple", "text", "number", "date")
CHOICE_KINDS = frozenset({"single", "multiple"})
END = "end"
VOICE_KEYS = "123456789"
MAX_TEXT = 2000
SKIP_WORDS = frozenset({"skip", "pass", "#"})
# Keys become form field names and MongoDB field names (answers.<questionnaire>.<key>):
# no dots or dollars, so a plain identifier.
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_GROUPED = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_SEPARATORS = re.compile(r"\s*(?:[,;/&+\u3001\uff0c]|\band\b)\s*")
_STORAGE_KEYS = frozenset(
    {
        "_id",
        "tenant_id",
        "family_id",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
        "locked",
        "used_at",
    }
)


class QuestionnaireError(ValueError):
    """A questionnaire is invalid; one line per problem, for the designer."""


class AnswerError(ValueError):
    """An answer could not be accepted; the message is meant for the respondent."""


# --------------------------------------------------------------------------- model


def _key(value: str) -> str:
    if not _KEY.match(value):
        raise ValueError(f"key {value!r} must be lower-case letters, digits or _, starting with a letter")
    if value == END:
        raise ValueError(f"key {END!r} is reserved for the end of the questionnaire")
    return value


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class Option(BaseModel):
    """One choice; `key` is the keypad digit (given in order when left out)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern="^[1-9]$")
    label: str = Field(min_length=1, max_length=200)
    next: str | None = None

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("an option needs a label")
        return value.strip()

    @field_validator("next", mode="before")
    @classmethod
    def _next(cls, value: Any) -> Any:
        return _blank_to_none(value)


class Condition(BaseModel):
    """`{"q": key, "in": [...]}`, `{"q": key, "gt": n}`, `{"q": key, "lt": n}` (all given must hold).

    `in` lists option keys for choice questions (any chosen one matches for multiple
    choice), values for the others; `gt`/`lt` compare numbers, or ISO dates for dates.
    An unanswered or skipped question matches nothing.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    q: str
    in_: list[str | int | float] | None = Field(default=None, alias="in", max_length=50)
    gt: float | str | None = None
    lt: float | str | None = None

    @model_validator(mode="after")
    def _something(self) -> Condition:
        if self.in_ is None and self.gt is None and self.lt is None:
            raise ValueError("a condition needs 'in', 'gt' or 'lt'")
        return self

    def holds(self, question: Question, value: Any) -> bool:
        if value is None:
            return False
        if self.in_ is not None and not _is_in(question, value, self.in_):
            return False
        if self.gt is not None and not _compare(question, value, self.gt) > 0:
            return False
        return not (self.lt is not None and not _compare(question, value, self.lt) < 0)


def _is_in(question: Question, value: Any, wanted: list[str | int | float]) -> bool:
    if question.kind in CHOICE_KINDS:
        chosen = value if isinstance(value, list) else [value]
        return bool({str(v) for v in chosen} & {str(w) for w in wanted})
    if question.kind == "number":
        return any(isinstance(w, int | float) and float(w) == float(value) for w in wanted)
    if question.kind == "text":
        return normalize(str(value)) in {normalize(str(w)) for w in wanted}
    return str(value) in {str(w) for w in wanted}


def _compare(question: Question, value: Any, bound: float | str) -> int:
    """-1, 0 or 1; dates compare as ISO strings (which sort like dates)."""
    if question.kind == "date":
        left, right = str(value), str(bound)
        return (left > right) - (left < right)
    a, b = float(value), float(bound)
    return (a > b) - (a < b)


class Branch(BaseModel):
    """`{"if": {...condition}, "then": target}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    when: Condition = Field(alias="if")
    then: str


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    text: str = Field(min_length=1, max_length=1000)
    kind: Kind
    options: list[Option] = Field(default_factory=list)
    required: bool = True
    min: float | None = None
    max: float | None = None
    next: str | None = None
    branches: list[Branch] = Field(default_factory=list, max_length=20)

    @field_validator("key")
    @classmethod
    def _valid_key(cls, value: str) -> str:
        return _key(value)

    @field_validator("next", mode="before")
    @classmethod
    def _next(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @field_validator("options", mode="before")
    @classmethod
    def _number_options(cls, value: Any) -> Any:
        """Plain labels and options without a key get the next free digit, in order."""
        if not isinstance(value, list):
            return value
        if len(value) > len(VOICE_KEYS):
            raise ValueError(f"at most {len(VOICE_KEYS)} options, one per keypad digit 1-9")
        items = [{"label": o} if isinstance(o, str) else o for o in value]
        taken = {str(o.get("key")) for o in items if isinstance(o, dict) and o.get("key")}
        free = iter(k for k in VOICE_KEYS if k not in taken)
        out = []
        for item in items:
            if isinstance(item, dict) and not item.get("key"):
                item = {**item, "key": next(free, "")}
            out.append(item)
        return out

    @model_validator(mode="after")
    def _shape(self) -> Question:
        if self.kind in CHOICE_KINDS:
            if len(self.options) < 2:
                raise ValueError(f"{self.kind} choice question {self.key!r} needs at least 2 options")
            keys = [o.key for o in self.options]
            if len(set(keys)) != len(keys):
                raise ValueError(f"question {self.key!r}: two options have the same key")
            labels = [normalize(o.label) for o in self.options]
            if len(set(labels)) != len(labels):
                raise ValueError(f"question {self.key!r}: two options have the same label")
        elif self.options:
            raise ValueError(f"{self.kind} question {self.key!r} cannot have options")
        if (self.min is not None or self.max is not None) and self.kind != "number":
            raise ValueError(f"question {self.key!r}: min and max are for number questions")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"question {self.key!r}: min is greater than max")
        return self

    def option(self, key: str) -> Option | None:
        return next((o for o in self.options if o.key == key), None)


class Ending(BaseModel):
    """A named end with its own closing text (e.g. "not_interested")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    text: str = Field(min_length=1, max_length=1000)

    @field_validator("key")
    @classmethod
    def _valid_key(cls, value: str) -> str:
        return _key(value)


class Questionnaire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default="", max_length=64)
    name: str = Field(min_length=1, max_length=200)
    intro: str = Field(default="", max_length=2000)
    questions: list[Question] = Field(min_length=1, max_length=100)
    endings: list[Ending] = Field(default_factory=list, max_length=20)
    end_text: str = Field(default="Thank you for your answers.", min_length=1, max_length=1000)
    # How "03/05/2026" reads; ISO dates and 8 keypad digits (YYYYMMDD) are always accepted.
    date_order: Literal["YMD", "DMY", "MDY"] = "YMD"
    version: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _graph(self) -> Questionnaire:
        problems = graph_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # ---- lookups

    def question(self, key: str) -> Question:
        for question in self.questions:
            if question.key == key:
                return question
        raise KeyError(key)

    def has_question(self, key: str) -> bool:
        return any(q.key == key for q in self.questions)

    def ending_text(self, key: str) -> str:
        return next((e.text for e in self.endings if e.key == key), self.end_text)

    def successor(self, key: str, answers: Mapping[str, Any]) -> str:
        """Where to go after question `key`, given every answer so far (see the module doc)."""
        question = self.question(key)
        for branch in question.branches:
            asked = self.question(branch.when.q)
            if branch.when.holds(asked, answers.get(asked.key)):
                return branch.then
        value = answers.get(key)
        if question.kind in CHOICE_KINDS and value is not None:
            chosen = set(value) if isinstance(value, list) else {value}
            for option in question.options:
                if option.key in chosen and option.next:
                    return option.next
        return question.next or self.following(key)

    def following(self, key: str) -> str:
        """The question after `key` in list order, or the end."""
        keys = [q.key for q in self.questions]
        index = keys.index(key)
        return keys[index + 1] if index + 1 < len(keys) else END

    def to_doc(self) -> dict[str, Any]:
        """JSON/BSON-safe, with the aliases ("if", "in") the documents use."""
        return self.model_dump(mode="json", by_alias=True)


def _edges(questionnaire: Questionnaire, question: Question) -> list[str]:
    """Every target leaving `question` can take (the fall-through only when it can happen)."""
    targets = [b.then for b in question.branches] + [o.next for o in question.options if o.next]
    every_option_jumps = question.kind in CHOICE_KINDS and all(o.next for o in question.options)
    if not (every_option_jumps and question.required):
        targets.append(question.next or questionnaire.following(question.key))
    return targets


def graph_problems(questionnaire: Questionnaire) -> list[str]:
    """Unique keys, known targets, conditions that can be evaluated, everything reachable, no cycles."""
    problems: list[str] = []
    questions = {q.key: q for q in questionnaire.questions}
    endings = {e.key for e in questionnaire.endings}
    keys = [q.key for q in questionnaire.questions] + [e.key for e in questionnaire.endings]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        return [f"keys must be unique: {', '.join(duplicates)} used twice"]
    known = set(questions) | endings | {END}
    for question in questionnaire.questions:
        where = f"question {question.key!r}"
        for target in _edges(questionnaire, question):
            if target not in known:
                problems.append(f"{where} goes to {target!r}, which is no question or ending")
        for branch in question.branches:
            problems += _condition_problems(where, branch.when, questions)
    if problems:
        return problems
    graph = {q.key: [t for t in _edges(questionnaire, q) if t in questions] for q in questionnaire.questions}
    cycle = _find_cycle(graph, [q.key for q in questionnaire.questions])
    if cycle:
        return [f"questions loop back: {' -> '.join(cycle)}"]
    reach = _reachable(graph, questionnaire.questions[0].key)
    for question in questionnaire.questions:
        if question.key not in reach:
            problems.append(f"question {question.key!r} can never be reached")
        for branch in question.branches:
            source = branch.when.q
            if source != question.key and question.key not in _reachable(graph, source):
                problems.append(
                    f"question {question.key!r} branches on {source!r}, which is never asked before it"
                )
    used = {t for q in questionnaire.questions if q.key in reach for t in _edges(questionnaire, q)}
    for ending in sorted(endings - used):
        problems.append(f"ending {ending!r} can never be reached")
    return problems


def _condition_problems(where: str, condition: Condition, questions: Mapping[str, Question]) -> list[str]:
    source = questions.get(condition.q)
    if source is None:
        return [f"{where} has a condition on {condition.q!r}, which is no question"]
    problems = []
    if condition.in_ is not None:
        if source.kind in CHOICE_KINDS:
            bad = [str(v) for v in condition.in_ if str(v) not in {o.key for o in source.options}]
            if bad:
                problems.append(f"{where}: {', '.join(bad)} are not option keys of {source.key!r}")
        elif source.kind == "number" and not all(isinstance(v, int | float) for v in condition.in_):
            problems.append(f"{where}: 'in' on number question {source.key!r} needs numbers")
        elif source.kind == "date" and not all(
            isinstance(v, str) and _iso_date_or_none(v) for v in condition.in_
        ):
            problems.append(f"{where}: 'in' on date question {source.key!r} needs YYYY-MM-DD dates")
    for name, bound in (("gt", condition.gt), ("lt", condition.lt)):
        if bound is None:
            continue
        if source.kind == "number" and not isinstance(bound, int | float):
            problems.append(f"{where}: '{name}' on number question {source.key!r} needs a number")
        elif source.kind == "date" and not (isinstance(bound, str) and _iso_date_or_none(bound)):
            problems.append(f"{where}: '{name}' on date question {source.key!r} needs a YYYY-MM-DD date")
        elif source.kind not in ("number", "date"):
            problems.append(f"{where}: '{name}' only works on number and date questions")
    return problems


def _iso_date_or_none(value: str) -> date | None:
    if not _ISO_DATE.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _reachable(graph: Mapping[str, list[str]], start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _find_cycle(graph: Mapping[str, list[str]], order: list[str]) -> list[str] | None:
    """One cycle as a path (first node repeated at the end), or None. Iterative DFS."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in order:
        if root in state:
            continue
        stack: list[tuple[str, Iterable[str]]] = [(root, iter(graph[root]))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(iter(children), None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return [*path[path.index(child) :], child]
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(graph[child])))
                path.append(child)
    return None


def validate_questionnaire(doc: Mapping[str, Any]) -> Questionnaire:
    """Parse a stored or submitted document (storage fields ignored); QuestionnaireError if invalid."""
    data = {k: v for k, v in doc.items() if k not in _STORAGE_KEYS}
    if "_id" in doc and not data.get("id"):
        data["id"] = str(doc["_id"])
    try:
        return Questionnaire.model_validate(data)
    except ValidationError as exc:
        raise QuestionnaireError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False)[:10]:
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


# --------------------------------------------------------------------------- answer parsing


def parse_answer(question: Question, raw: str, date_order: str = "YMD") -> Any:
    """The canonical value of `raw` for `question`; AnswerError with a message for the respondent.

    The empty string (or "skip") means no answer: None for optional questions.
    """
    text = raw.strip()
    if text.endswith("#") and len(text) > 1:  # a keypad entry ends with the pound key
        text = text[:-1].strip()
    skip = not text or text == "#" or normalize(text) in SKIP_WORDS
    if skip and text and question.kind in CHOICE_KINDS and _exact_option(question, text) is not None:
        skip = False  # an option literally called "Pass"
    if skip:
        if question.required:
            raise AnswerError("An answer is required.")
        return None
    if question.kind == "single":
        return _single(question, text)
    if question.kind == "multiple":
        return _multiple(question, text)
    if question.kind == "number":
        return _number(question, text)
    if question.kind == "date":
        return _date(text, date_order)
    if len(text) > MAX_TEXT:
        raise AnswerError(f"Please keep the answer under {MAX_TEXT} characters.")
    return text


def _choices_hint(question: Question) -> str:
    return ", ".join(f"{o.key} ({o.label})" for o in question.options)


def _exact_option(question: Question, text: str) -> Option | None:
    said = normalize(text)
    for option in question.options:
        if said in (option.key, normalize(option.label)):
            return option
    return None


def _single(question: Question, text: str) -> str:
    option = _exact_option(question, text)
    if option is not None:
        return option.key
    said = normalize(text)
    # the label said within a sentence ("yes please"); a label inside a longer matched
    # one ("yes" in "yes definitely") does not count twice
    found = [o for o in question.options if f" {normalize(o.label)} " in f" {said} "]
    found = [
        o for o in found if not any(o is not p and normalize(o.label) in normalize(p.label) for p in found)
    ]
    if len(found) == 1:
        return found[0].key
    if len(found) > 1:
        raise AnswerError(f"Please choose only one of: {_choices_hint(question)}.")
    digit = spoken_digit(text)
    if digit is not None and question.option(digit) is not None:
        return digit
    raise AnswerError(f"Please answer with one of: {_choices_hint(question)}.")


def _multiple(question: Question, text: str) -> list[str]:
    whole = _exact_option(question, text)
    if whole is not None:
        return [whole.key]
    chosen: set[str] = set()
    for part in _SEPARATORS.split(text):
        if not part.strip():
            continue
        option = _exact_option(question, part)
        if option is not None:
            chosen.add(option.key)
            continue
        compact = part.replace(" ", "").replace("*", "")
        tokens = list(compact) if compact.isdigit() else part.split()
        for token in tokens:
            key = token if token.isdigit() else spoken_digit(token)
            if key is None or question.option(key) is None:
                raise AnswerError(
                    f"{part.strip()!r} is not one of the options; answer with their numbers, "
                    f"e.g. 1 3. Options: {_choices_hint(question)}."
                )
            chosen.add(key)
    if not chosen:
        raise AnswerError(f"Please choose at least one of: {_choices_hint(question)}.")
    return [o.key for o in question.options if o.key in chosen]


def _number(question: Question, text: str) -> int | float:
    cleaned = text.replace(" ", "").replace("_", "").replace("*", ".")  # "*" is the keypad's point
    if _GROUPED.match(cleaned):
        cleaned = cleaned.replace(",", "")
    elif "," in cleaned:
        raise AnswerError("Please write the number with a point for decimals, e.g. 3.5.")
    if not _NUMBER.match(cleaned):
        digit = spoken_digit(text)
        if digit is None:
            raise AnswerError("Please answer with a number, e.g. 42.")
        cleaned = digit
    value = float(cleaned)
    if not math.isfinite(value):
        raise AnswerError("Please answer with a number, e.g. 42.")
    if question.min is not None and value < question.min:
        raise AnswerError(f"Please answer with a number of at least {_fmt(question.min)}.")
    if question.max is not None and value > question.max:
        raise AnswerError(f"Please answer with a number of at most {_fmt(question.max)}.")
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_LOCAL_DATE = re.compile(r"^(\d{1,4})[./-](\d{1,2})[./-](\d{1,4})$")
_CJK_DATE = re.compile(r"^(\d{4})\s*[年년]\s*(\d{1,2})\s*[月월]\s*(\d{1,2})\s*[日일]?$")
_DATE_EXAMPLES = {"YMD": "2026-03-15", "DMY": "15/03/2026 or 2026-03-15", "MDY": "03/15/2026 or 2026-03-15"}


def _date(text: str, date_order: str) -> str:
    """ISO, 8 keypad digits (YYYYMMDD), 2026年3月15日, or day/month/year in the questionnaire's order.

    Written here rather than with dateutil's parser because that guesses the order of an
    ambiguous date like 03/05/2026 silently; here the questionnaire says which it is.
    """
    hint = f"Please answer with a date like {_DATE_EXAMPLES.get(date_order, _DATE_EXAMPLES['YMD'])}."
    cleaned = text.strip()
    parts: tuple[int, int, int] | None = None
    if cleaned.isdigit() and len(cleaned) == 8:
        parts = (int(cleaned[:4]), int(cleaned[4:6]), int(cleaned[6:]))
    elif match := _CJK_DATE.match(cleaned):
        parts = (int(match[1]), int(match[2]), int(match[3]))
    elif match := _LOCAL_DATE.match(cleaned):
        first, middle, last = match[1], match[2], match[3]
        if len(first) == 4:  # the year comes first: 2026/3/15
            parts = (int(first), int(middle), int(last))
        elif date_order == "YMD" and len(last) <= 2:  # 26-03-15
            parts = (_century(int(first)), int(middle), int(last))
        elif date_order in ("DMY", "MDY") and len(last) in (2, 4):
            year = int(last) if len(last) == 4 else _century(int(last))
            day, month = (int(first), int(middle)) if date_order == "DMY" else (int(middle), int(first))
            parts = (year, month, day)
    if parts is None:
        raise AnswerError(hint)
    year, month, day = parts
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        raise AnswerError(f"There is no such date. {hint}") from None


def _century(two_digits: int) -> int:
    """A two-digit year: 00-69 -> 2000s, 70-99 -> 1900s (birth dates and near dates both work)."""
    return 2000 + two_digits if two_digits < 70 else 1900 + two_digits


def raw_of(value: Any) -> str:
    """A stored (canonical) value back as input `parse_answer` accepts; None -> "" (skipped)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        raise AnswerError("a yes/no answer must be one of the options")
    if isinstance(value, list | tuple):
        return " ".join(raw_of(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


# --------------------------------------------------------------------------- prompts and steps


@dataclass(frozen=True)
class Prompt:
    """One question as it is asked now; `intro` only on the first."""

    key: str
    kind: str
    text: str
    options: tuple[tuple[str, str], ...]
    required: bool
    number: int
    min: float | None = None
    max: float | None = None
    intro: str | None = None

    def as_text(self) -> str:
        """For SMS and chat: the question, numbered options and how to answer."""
        lines = [self.intro] if self.intro else []
        lines.append(self.text)
        lines += [f"{key}) {label}" for key, label in self.options]
        lines.append(_text_hint(self))
        return "\n".join(lines)

    def as_voice(self) -> str:
        """For a robot call: options read out with their keys."""
        parts = [self.intro] if self.intro else []
        parts.append(self.text)
        if self.kind == "single":
            parts += [f"For {label}, press {key}." for key, label in self.options]
        elif self.kind == "multiple":
            parts += [f"For {label}, press {key}." for key, label in self.options]
            parts.append("Press every key that applies, then the pound key.")
        elif self.kind == "number":
            parts.append("Enter the number on your keypad, then press the pound key.")
        elif self.kind == "date":
            parts.append("Enter the date as eight digits, year, month and day, then press the pound key.")
        else:
            parts.append("Please say your answer after the tone.")
        if not self.required:
            parts.append("To skip this question, press the pound key.")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "text": self.text,
            "options": [{"key": k, "label": v} for k, v in self.options],
            "required": self.required,
            "number": self.number,
            "min": self.min,
            "max": self.max,
            "intro": self.intro,
        }


def _text_hint(prompt: Prompt) -> str:
    skip = "" if prompt.required else ' (or "skip")'
    if prompt.kind == "single":
        return f"Reply with the number of your answer{skip}."
    if prompt.kind == "multiple":
        return f"Reply with the numbers of all that apply, e.g. 1 3{skip}."
    if prompt.kind == "number":
        bounds = ""
        if prompt.min is not None and prompt.max is not None:
            bounds = f" from {_fmt(prompt.min)} to {_fmt(prompt.max)}"
        elif prompt.min is not None:
            bounds = f" of at least {_fmt(prompt.min)}"
        elif prompt.max is not None:
            bounds = f" of at most {_fmt(prompt.max)}"
        return f"Reply with a number{bounds}{skip}."
    if prompt.kind == "date":
        return f"Reply with a date, e.g. 2026-03-15{skip}."
    return f"Reply with your answer{skip}."


@dataclass(frozen=True)
class Step:
    """The outcome of one answer: the question to ask now (the same one after an error), or the end."""

    accepted: bool
    prompt: Prompt | None
    error: str | None = None
    done: bool = False
    ending: str | None = None
    end_text: str | None = None
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "error": self.error,
            "prompt": self.prompt.to_dict() if self.prompt else None,
            "done": self.done,
            "ending": self.ending,
            "end_text": self.end_text,
            "attempts": self.attempts,
        }


# --------------------------------------------------------------------------- the session


class QuestionnaireSession:
    """Asks one questionnaire of one respondent; no I/O, storable with to_dict/from_dict."""

    FORMAT = 1

    def __init__(self, questionnaire: Questionnaire) -> None:
        self.questionnaire = questionnaire
        self.answers: dict[str, Any] = {}
        self.path: list[str] = []  # questions answered or skipped, in the order asked
        self.current: str | None = None
        self.ending: str | None = None
        self.attempts = 0  # failed answers to the current question
        self.started = False

    @property
    def done(self) -> bool:
        return self.ending is not None

    def start(self) -> Prompt:
        """The first question with the intro (again the current one if already started)."""
        if not self.started:
            self.started = True
            self.current = self.questionnaire.questions[0].key
        prompt = self.prompt()
        if prompt is None:
            raise RuntimeError("the questionnaire is finished")
        return prompt

    def prompt(self) -> Prompt | None:
        if self.current is None:
            return None
        question = self.questionnaire.question(self.current)
        first = not self.path
        return Prompt(
            key=question.key,
            kind=question.kind,
            text=question.text,
            options=tuple((o.key, o.label) for o in question.options),
            required=question.required,
            number=len(self.path) + 1,
            min=question.min,
            max=question.max,
            intro=(self.questionnaire.intro or None) if first else None,
        )

    def answer(self, raw: str) -> Step:
        """Take the respondent's input for the current question (text, keys or a transcript)."""
        if not self.started:
            self.start()
        if self.current is None:
            return self._end_step(accepted=False, error="The questionnaire is already finished.")
        question = self.questionnaire.question(self.current)
        try:
            value = parse_answer(question, raw, self.questionnaire.date_order)
        except AnswerError as exc:
            self.attempts += 1
            return Step(False, self.prompt(), error=str(exc), attempts=self.attempts)
        return self._accept(question, value)

    def answer_value(self, value: Any) -> Step:
        """Take a stored (canonical) value, e.g. from the agent's script or a saved session."""
        try:
            raw = raw_of(value)
        except AnswerError as exc:
            return Step(False, self.prompt(), error=str(exc), attempts=self.attempts)
        return self.answer(raw)

    def _accept(self, question: Question, value: Any) -> Step:
        self.answers[question.key] = value
        self.path.append(question.key)
        self.attempts = 0
        target = self.questionnaire.successor(question.key, self.answers)
        if self.questionnaire.has_question(target):
            self.current = target
            return Step(True, self.prompt())
        self.current = None
        self.ending = target
        return self._end_step(accepted=True)

    def _end_step(self, accepted: bool, error: str | None = None) -> Step:
        ending = self.ending or END
        return Step(
            accepted,
            None,
            error=error,
            done=True,
            ending=ending,
            end_text=self.questionnaire.ending_text(ending),
        )

    def back(self) -> Prompt:
        """Undo the last answer and ask that question again (the agent's script "Back")."""
        if not self.path:
            return self.start()
        key = self.path.pop()
        self.answers.pop(key, None)
        self.current = key
        self.ending = None
        self.attempts = 0
        prompt = self.prompt()
        assert prompt is not None
        return prompt

    def state(self) -> dict[str, Any]:
        """What a client shows: the answers, the path, the current question or the end."""
        prompt = self.prompt() if self.started else None
        return {
            "answers": dict(self.answers),
            "path": list(self.path),
            "prompt": prompt.to_dict() if prompt else None,
            "done": self.done,
            "ending": self.ending,
            "end_text": self.questionnaire.ending_text(self.ending) if self.ending else None,
        }

    # ---- storage

    def to_dict(self) -> dict[str, Any]:
        """BSON/JSON-safe, with a snapshot of the questionnaire so an edit cannot break a live session."""
        return {
            "format": self.FORMAT,
            "questionnaire": self.questionnaire.to_doc(),
            "answers": dict(self.answers),
            "path": list(self.path),
            "current": self.current,
            "ending": self.ending,
            "attempts": self.attempts,
            "started": self.started,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], questionnaire: Questionnaire | None = None
    ) -> QuestionnaireSession:
        if data.get("format") != cls.FORMAT:
            raise ValueError(f"unsupported questionnaire session format {data.get('format')!r}")
        session = cls(questionnaire or validate_questionnaire(data["questionnaire"]))
        known = {q.key for q in session.questionnaire.questions}
        endings = {e.key for e in session.questionnaire.endings} | {END}
        path = [str(k) for k in data.get("path", [])]
        answers = dict(data.get("answers") or {})
        current = data.get("current")
        ending = data.get("ending")
        if not set(path) <= known or not set(answers) <= set(path):
            raise ValueError("the stored session refers to questions the questionnaire does not have")
        if current is not None and current not in known:
            raise ValueError(f"the stored session is at {current!r}, which the questionnaire does not have")
        if ending is not None and ending not in endings:
            raise ValueError(f"the stored session ended at {ending!r}, which the questionnaire does not have")
        session.path = path
        session.answers = answers
        session.current = current
        session.ending = ending
        session.attempts = int(data.get("attempts", 0))
        session.started = bool(data.get("started", bool(path) or current is not None))
        return session


@dataclass
class Replay:
    """The session after replaying stored answers; what did not fit is reported, not raised."""

    session: QuestionnaireSession
    errors: dict[str, str] = field(default_factory=dict)  # question key -> message (stops the replay)
    off_path: list[str] = field(default_factory=list)  # answers to questions the branches skip


def replay(questionnaire: Questionnaire, answers: Mapping[str, Any], *, until_missing: bool = True) -> Replay:
    """Walk the branches with `answers` (canonical values, or a form's strings and lists).

    Stops at the first question without an answer (`until_missing`), or feeds it "" so a
    form submission reports a required question left empty. Answers the path never
    reaches land in `off_path` (an email form shows every question; the agent's script
    should not send them).
    """
    session = QuestionnaireSession(questionnaire)
    session.start()
    out = Replay(session)
    while session.current is not None:
        key = session.current
        if key not in answers and until_missing:
            break
        step = session.answer_value(answers.get(key))
        if not step.accepted:
            out.errors[key] = step.error or "invalid answer"
            break
    out.off_path = [k for k in answers if k not in session.path and k not in out.errors]
    return out


# --------------------------------------------------------------------------- rendering


def _jump_note(questionnaire: Questionnaire, target: str, numbers: Mapping[str, int]) -> str:
    if target in numbers:
        return f"go to question {numbers[target]}"
    return "end"


def _branch_note(questionnaire: Questionnaire, branch: Branch, numbers: Mapping[str, int]) -> str:
    cond = branch.when
    source = questionnaire.question(cond.q)
    parts = []
    if cond.in_ is not None:
        if source.kind in CHOICE_KINDS:
            labels = [o.label for o in source.options if o.key in {str(v) for v in cond.in_}]
            parts.append("is " + " or ".join(repr(label) for label in labels))
        else:
            parts.append("is " + " or ".join(str(v) for v in cond.in_))
    if cond.gt is not None:
        parts.append(f"is {'after' if source.kind == 'date' else 'more than'} {_bound(cond.gt)}")
    if cond.lt is not None:
        parts.append(f"is {'before' if source.kind == 'date' else 'less than'} {_bound(cond.lt)}")
    return (
        f"If your answer to question {numbers[cond.q]} {' and '.join(parts)}, "
        f"{_jump_note(questionnaire, branch.then, numbers)}."
    )


def _bound(value: float | str) -> str:
    return value if isinstance(value, str) else _fmt(value)


def render_text(questionnaire: Questionnaire) -> str:
    """The whole questionnaire as plain text (an email body, a printout), jumps written out."""
    numbers = {q.key: i + 1 for i, q in enumerate(questionnaire.questions)}
    lines = [questionnaire.name, ""]
    if questionnaire.intro:
        lines += [questionnaire.intro, ""]
    for index, question in enumerate(questionnaire.questions):
        mark = "" if question.required else " (optional)"
        lines.append(f"{index + 1}. {question.text}{mark}")
        for option in question.options:
            jump = f"  -> {_jump_note(questionnaire, option.next, numbers)}" if option.next else ""
            lines.append(f"   {option.key}) {option.label}{jump}")
        if question.kind == "multiple":
            lines.append("   (choose all that apply)")
        elif question.kind == "number":
            lines.append("   " + _text_hint(_prompt_of(question)).replace("Reply with", "Answer:"))
        elif question.kind == "date":
            lines.append(f"   Answer: a date, e.g. {_DATE_EXAMPLES[questionnaire.date_order]}")
        elif question.kind == "text":
            lines.append("   Answer: ____________________")
        for branch in question.branches:
            lines.append(f"   {_branch_note(questionnaire, branch, numbers)}")
        following = questionnaire.following(question.key)
        if question.next and question.next != following:
            lines.append(f"   Then {_jump_note(questionnaire, question.next, numbers)}.")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _prompt_of(question: Question) -> Prompt:
    return Prompt(
        key=question.key,
        kind=question.kind,
        text=question.text,
        options=tuple((o.key, o.label) for o in question.options),
        required=question.required,
        number=0,
        min=question.min,
        max=question.max,
    )


_PAGE_STYLE = (
    "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:640px;margin:24px auto;"
    "padding:0 16px;color:#1f2933;line-height:1.45}fieldset{border:1px solid #d0d7de;border-radius:8px;"
    "margin:0 0 16px;padding:12px 16px}legend{font-weight:600;padding:0 4px}label{display:block;margin:4px 0}"
    "input[type=text],input[type=number],input[type=date],textarea{width:100%;box-sizing:border-box;"
    "padding:6px;border:1px solid #c0c8d0;border-radius:6px;font:inherit}.jump{color:#52606d;font-size:.9em}"
    ".error{color:#b42318;font-weight:600}.notice{background:#fff4e5;border-radius:6px;padding:8px 12px}"
    "button{background:#2563eb;color:#fff;border:0;border-radius:6px;padding:10px 20px;font:inherit}"
)


def render_html(
    questionnaire: Questionnaire,
    action: str,
    *,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    notice: str | None = None,
) -> str:
    """An HTML page with the questionnaire as a form posting to `action` (the respondent's link).

    A plain form cannot branch as you type, so every question is shown with its jumps
    written out and the server walks the branches on submission (`replay(..., until_missing=False)`);
    fields carry no `required` attribute because a question the branches skip needs no answer.
    `values` fills the form again (canonical answers or submitted strings).
    """
    esc = html.escape
    values = values or {}
    errors = errors or {}
    numbers = {q.key: i + 1 for i, q in enumerate(questionnaire.questions)}
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(questionnaire.name)}</title><style>{_PAGE_STYLE}</style></head><body>",
        f"<h1>{esc(questionnaire.name)}</h1>",
    ]
    if questionnaire.intro:
        out.append(f"<p>{esc(questionnaire.intro)}</p>")
    if notice:
        out.append(f'<p class="notice" role="alert">{esc(notice)}</p>')
    out.append(f'<form method="post" action="{esc(action, quote=True)}">')
    for index, question in enumerate(questionnaire.questions):
        name = esc(question.key, quote=True)
        mark = "" if question.required else " (optional)"
        out.append(f'<fieldset id="q-{name}"><legend>{index + 1}. {esc(question.text)}{esc(mark)}</legend>')
        if question.key in errors:
            out.append(f'<p class="error" role="alert">{esc(errors[question.key])}</p>')
        given = values.get(question.key)
        chosen = {str(v) for v in given} if isinstance(given, list) else {str(given)} if given else set()
        if question.kind in CHOICE_KINDS:
            kind = "radio" if question.kind == "single" else "checkbox"
            for option in question.options:
                checked = " checked" if option.key in chosen else ""
                jump = (
                    f' <span class="jump">({_jump_note(questionnaire, option.next, numbers)})</span>'
                    if option.next
                    else ""
                )
                out.append(
                    f'<label><input type="{kind}" name="{name}" value="{esc(option.key, quote=True)}"'
                    f"{checked}> {esc(option.label)}{jump}</label>"
                )
        else:
            value = esc(raw_of(given), quote=True)
            if question.kind == "text":
                out.append(f'<textarea name="{name}" rows="3" maxlength="{MAX_TEXT}">{value}</textarea>')
            elif question.kind == "number":
                bounds = "".join(
                    f' {attr}="{_fmt(bound)}"'
                    for attr, bound in (("min", question.min), ("max", question.max))
                    if bound is not None
                )
                out.append(f'<input type="number" step="any" name="{name}" value="{value}"{bounds}>')
            else:
                out.append(f'<input type="date" name="{name}" value="{value}">')
        for branch in question.branches:
            out.append(f'<p class="jump">{esc(_branch_note(questionnaire, branch, numbers))}</p>')
        following = questionnaire.following(question.key)
        if question.next and question.next != following:
            out.append(f'<p class="jump">Then {esc(_jump_note(questionnaire, question.next, numbers))}.</p>')
        out.append("</fieldset>")
    out += ['<button type="submit">Send my answers</button>', "</form></body></html>"]
    return "\n".join(out)


def render_message_page(title: str, message: str) -> str:
    """A small page for the respondent (thank you, link expired, not found)."""
    esc = html.escape
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_PAGE_STYLE}</style></head>"
        f"<body><h1>{esc(title)}</h1><p>{esc(message)}</p></body></html>"
    )
