"""Quality inspection: scorecards and the scoring of one evaluated contact (pure, no I/O).

A scorecard is a name, a description and sections of items. Each item is either a
`scale` answered with a whole number 0..max or a `yes_no` answered yes/no (worth 0 or
1); `na_allowed` lets the evaluator answer N/A (None), which drops the item from both
the numerator and the denominator. Items carry a weight (> 0). A `critical` item that
fails (answered "no", or 0 on a scale) sets the total to 0: the evaluation is an
"auto-fail", and `raw_pct` still says what the total would have been.

    total_pct = 100 * sum(weight * value / max) / sum(weight)   over the items not N/A

Answers are validated against the scorecard (`ScoreError`, a ValueError); scorecards
with pydantic (`Scorecard.model_validate`): 1..50 items, unique keys, weights > 0,
max 1..10.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_ITEMS = 50
KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,39}$"


class ScoreError(ValueError):
    """Answers that do not fit the scorecard; the message is safe to show."""


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=KEY_PATTERN, description="stable id of the item within the scorecard")
    label: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=1000)
    kind: Literal["scale", "yes_no"] = "yes_no"
    max: int = Field(default=1, ge=1, le=10, description="top of a scale (0..max); 1 for yes/no")
    weight: float = Field(default=1.0, gt=0, le=100)
    critical: bool = False
    na_allowed: bool = False

    @field_validator("label")
    @classmethod
    def _strip_label(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("label must not be blank")
        return value

    @model_validator(mode="after")
    def _yes_no_max(self) -> Item:
        if self.kind == "yes_no":
            self.max = 1
        return self


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="", max_length=120)
    items: list[Item] = Field(min_length=1, max_length=MAX_ITEMS)


class Scorecard(BaseModel):
    """What a supervisor designs; `items` (without sections) is accepted as one section."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)
    sections: list[Section] = Field(min_length=1, max_length=MAX_ITEMS)

    @model_validator(mode="before")
    @classmethod
    def _flat_items(cls, data: Any) -> Any:
        if isinstance(data, dict) and "sections" not in data and "items" in data:
            data = {**data, "sections": [{"title": "", "items": data["items"]}]}
        return data

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be blank")
        return value

    @model_validator(mode="after")
    def _keys(self) -> Scorecard:
        keys = [item.key for item in self.items]
        if len(keys) > MAX_ITEMS:
            raise ValueError(f"a scorecard has at most {MAX_ITEMS} items, not {len(keys)}")
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"item keys must be unique: {', '.join(duplicates)}")
        return self

    @property
    def items(self) -> list[Item]:
        return [item for section in self.sections for item in section.items]

    def item(self, key: str) -> Item | None:
        return next((item for item in self.items if item.key == key), None)


def _value(item: Item, raw: Any) -> int | None:
    """The answer as points 0..max, or None for N/A; ScoreError when it does not fit."""
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "na", "n/a")):
        if not item.na_allowed:
            raise ScoreError(f"{item.key}: an answer is required (N/A is not allowed)")
        return None
    if item.kind == "yes_no":
        if isinstance(raw, bool):
            return int(raw)
        if isinstance(raw, str) and raw.strip().lower() in ("yes", "no"):
            return int(raw.strip().lower() == "yes")
        if isinstance(raw, int) and raw in (0, 1):
            return raw
        raise ScoreError(f"{item.key}: answer yes or no (true/false)")
    if isinstance(raw, bool):
        raise ScoreError(f"{item.key}: answer a number 0..{item.max}")
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, str) and re.fullmatch(r"\s*\d{1,2}\s*", raw):
        raw = int(raw)
    if not isinstance(raw, int) or not 0 <= raw <= item.max:
        raise ScoreError(f"{item.key}: answer a whole number 0..{item.max}")
    return raw


def normalize_answers(scorecard: Scorecard, answers: dict[str, Any]) -> dict[str, int | None]:
    """Every item's points (None = N/A); unknown keys and missing answers are errors."""
    unknown = sorted(set(answers) - {item.key for item in scorecard.items})
    if unknown:
        raise ScoreError(f"no such item on this scorecard: {', '.join(unknown)}")
    out: dict[str, int | None] = {}
    for item in scorecard.items:
        if item.key not in answers:
            if item.na_allowed:
                raise ScoreError(f"{item.key}: answer it or mark it N/A")
            raise ScoreError(f"{item.key}: an answer is required")
        out[item.key] = _value(item, answers[item.key])
    return out


def _round(value: float) -> float:
    return round(value, 2)


def score(scorecard: Scorecard, answers: dict[str, Any]) -> dict[str, Any]:
    """{total_pct, raw_pct, by_item, auto_failed, failed_critical} for one set of answers.

    by_item[key] = {value, max, pct (None when N/A), weight, na, critical, failed}.
    """
    values = normalize_answers(scorecard, answers)
    by_item: dict[str, dict[str, Any]] = {}
    earned = possible = 0.0
    failed_critical: list[str] = []
    for item in scorecard.items:
        value = values[item.key]
        na = value is None
        fraction = None if value is None else value / item.max
        failed = item.critical and value == 0
        if failed:
            failed_critical.append(item.key)
        if fraction is not None:
            earned += item.weight * fraction
            possible += item.weight
        by_item[item.key] = {
            "value": value,
            "max": item.max,
            "pct": None if fraction is None else _round(100 * fraction),
            "weight": item.weight,
            "na": na,
            "critical": item.critical,
            "failed": failed,
        }
    if possible == 0:
        raise ScoreError("every item is N/A: nothing to score")
    raw_pct = _round(100 * earned / possible)
    auto_failed = bool(failed_critical)
    return {
        "total_pct": 0.0 if auto_failed else raw_pct,
        "raw_pct": raw_pct,
        "by_item": by_item,
        "auto_failed": auto_failed,
        "failed_critical": failed_critical,
    }
