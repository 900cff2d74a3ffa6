"""Scheduled reports: a report file mailed daily, weekly or monthly (`report_schedules`).

A schedule runs at `at` ("HH:MM" in the tenant's time zone): daily with the day before,
weekly on Mondays with the week before (Monday to Sunday), monthly on the 1st with the month
before. The period comes from the run's due time, not from when the loop got to it, so a
late run still reports the right days; runs missed while the hub was down are caught up
once, not once per missed period.

Exactly once: each mail is queued with the idempotency key `report:<schedule>:<due>:<to>`
(hub/outbox.py keeps one row per key), and `next_at` is then moved on with a conditional
update on the due time it had. Two hub processes running the same due schedule, or a hub
killed between queueing and moving on, queue nothing twice.

Data flows one way: this module never imports a channel. The hub passes in the function
that queues a mail (`Mailer`, channels/email/relay.py `send_report_mail`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from pymongo.errors import PyMongoError

from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, new_id, utcnow
from reports.agent_states import INTERVALS
from reports.export import historical_file
from reports.facts import zone
from reports.historical import DIMENSIONS, ReportError, ReportQuery

log = logging.getLogger(__name__)

EVERY = ("day", "week", "month")
FORMATS = ("xlsx", "csv")
REPORTS = ("historical",)
FILTERS = ("queue", "agent", "channel", "campaign", "questionnaire")
POLL_S = 30.0
BATCH = 50
MAX_RECIPIENTS = 20
AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
WAKE = "report_schedule_wake"


class Mailer(Protocol):
    """Queues one mail with attachments from the tenant's address; None when the tenant has
    no mail set up."""

    async def __call__(
        self,
        ctx: AppContext,
        *,
        tenant_id: str,
        to: str,
        subject: str,
        body: str,
        key: str,
        attachments: list[Doc],
    ) -> Doc | None: ...


# (ctx, tenant_id, schedule, first day, last day) -> (content, media type, file name)
Builder = Callable[[AppContext, str, Doc, date, date], Awaitable[tuple[bytes, str, str]]]


class ScheduleError(ValueError):
    """A schedule that cannot be saved (shown as 422)."""


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    def label(self) -> str:
        return self.start.isoformat() if self.start == self.end else f"{self.start} to {self.end}"


def period_for(every: str, due_local: date) -> Period:
    """The days a run due on `due_local` reports: the day, Monday-Sunday week or month before."""
    if every == "day":
        day = due_local - timedelta(days=1)
        return Period(day, day)
    if every == "week":
        monday = due_local - timedelta(days=due_local.weekday())
        return Period(monday - timedelta(days=7), monday - timedelta(days=1))
    first = due_local.replace(day=1)
    last = first - timedelta(days=1)
    return Period(last.replace(day=1), last)


def _runs_on(every: str, day: date) -> bool:
    return every == "day" or (every == "week" and day.weekday() == 0) or (every == "month" and day.day == 1)


def next_run(every: str, at: str, tz: ZoneInfo, after: datetime) -> datetime:
    """The first run strictly after `after`, in UTC. A wall time that a clock change skips
    runs at the same offset after it (zoneinfo's rule), never not at all."""
    hour, minute = (int(x) for x in at.split(":"))
    day = after.astimezone(tz).date()
    for _ in range(400):
        if _runs_on(every, day):
            when = datetime.combine(day, time(hour, minute), tzinfo=tz).astimezone(UTC)
            if when > after:
                return when
        day += timedelta(days=1)
    raise AssertionError("a schedule runs at least once a month")


def clean(body: Any) -> Doc:
    """The stored fields of a schedule from an API body; raises ScheduleError."""
    if not isinstance(body, dict):
        raise ScheduleError("the body must be a JSON object")
    report = body.get("report") or "historical"
    if report not in REPORTS:
        raise ScheduleError(f"report must be one of {', '.join(REPORTS)}")
    every = body.get("every")
    if every not in EVERY:
        raise ScheduleError(f"every must be one of {', '.join(EVERY)}")
    at = str(body.get("at") or "07:00")
    if not AT.match(at):
        raise ScheduleError("at must be HH:MM (24-hour, the tenant's time zone)")
    fmt = body.get("format") or "xlsx"
    if fmt not in FORMATS:
        raise ScheduleError(f"format must be one of {', '.join(FORMATS)}")
    to = body.get("to")
    if isinstance(to, str):
        to = [x for x in re.split(r"[\s,;]+", to) if x]
    if not isinstance(to, list) or not to:
        raise ScheduleError("to: at least one email address")
    addresses = sorted({str(x).strip().lower() for x in to})
    if len(addresses) > MAX_RECIPIENTS:
        raise ScheduleError(f"at most {MAX_RECIPIENTS} recipients")
    bad = [x for x in addresses if not EMAIL.match(x)]
    if bad:
        raise ScheduleError(f"not an email address: {', '.join(bad)}")
    raw = body.get("params") or {}
    if not isinstance(raw, dict):
        raise ScheduleError("params must be an object")
    params: Doc = {"by": raw.get("by") or "none", "interval": raw.get("interval") or "day"}
    if params["by"] not in DIMENSIONS:
        raise ScheduleError(f"params.by must be one of {', '.join(DIMENSIONS)}")
    if params["interval"] not in INTERVALS:
        raise ScheduleError(f"params.interval must be one of {', '.join(INTERVALS)}")
    for name in FILTERS:
        if raw.get(name):
            params[name] = str(raw[name])
    name = str(body.get("name") or "").strip()[:200]
    return {
        "name": name,
        "report": report,
        "params": params,
        "every": every,
        "at": at,
        "to": addresses,
        "format": fmt,
    }


async def tenant_zone(ctx: AppContext, tenant_id: str) -> ZoneInfo:
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"timezone": 1})
    return zone((tenant or {}).get("timezone"))


async def create(ctx: AppContext, tenant_id: str, user_id: str, body: Doc) -> Doc:
    """Store a schedule (its first run computed) and wake the loop."""
    fields = clean(body)
    now = utcnow()
    doc: Doc = {
        "_id": new_id(),
        "tenant_id": tenant_id,
        **fields,
        "created_by": user_id,
        "created_at": now,
        "last_sent_at": None,
        "last_period": None,
        "last_error": None,
        "next_at": next_run(fields["every"], fields["at"], await tenant_zone(ctx, tenant_id), now),
    }
    await ctx.db.report_schedules.insert_one(doc)
    wake(ctx)
    return doc


def public(doc: Doc) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "name": doc.get("name") or "",
        "report": doc["report"],
        "params": doc.get("params") or {},
        "every": doc["every"],
        "at": doc["at"],
        "to": doc.get("to") or [],
        "format": doc["format"],
        "last_sent_at": iso(doc.get("last_sent_at")),
        "last_period": doc.get("last_period"),
        "last_error": doc.get("last_error"),
        "next_at": iso(doc.get("next_at")),
        "created_at": iso(doc.get("created_at")),
    }


async def build_historical(
    ctx: AppContext, tenant_id: str, schedule: Doc, start: date, end: date
) -> tuple[bytes, str, str]:
    """The historical report of the schedule's params over the period (reports/export.py)."""
    params = schedule.get("params") or {}
    query = ReportQuery(
        by=params.get("by", "none"),
        interval=params.get("interval", "day"),
        start=start,
        end=end,
        **{name: params.get(name) for name in FILTERS},
    )
    query.check()
    return await historical_file(ctx, tenant_id, query, schedule["format"])


def _subject(schedule: Doc, period: Period) -> str:
    title = schedule.get("name") or f"Report by {(schedule.get('params') or {}).get('by', 'none')}"
    return f"{title}: {period.label()}"


async def run_one(ctx: AppContext, schedule: Doc, send: Mailer, build: Builder, now: datetime) -> bool:
    """Mail one due schedule and move it on; False if another process moved it first."""
    due: datetime = schedule["next_at"]
    tz = await tenant_zone(ctx, schedule["tenant_id"])
    period = period_for(schedule["every"], due.astimezone(tz).date())
    error: str | None = None
    try:
        content, media_type, filename = await build(
            ctx, schedule["tenant_id"], schedule, period.start, period.end
        )
        attachment = {"filename": filename, "content_type": media_type.split(";")[0], "data": content}
        body = (
            f"The attached report covers {period.label()} ({tz.key}).\n\n"
            "You receive it because a supervisor scheduled it on the Reports page."
        )
        for to in schedule.get("to") or []:
            row = await send(
                ctx,
                tenant_id=schedule["tenant_id"],
                to=to,
                subject=_subject(schedule, period),
                body=body,
                key=f"report:{schedule['_id']}:{iso(due)}:{to}",
                attachments=[attachment],
            )
            if row is None:
                error = "this tenant has no email address set up"
                break
    except PyMongoError:
        raise  # the database is away: the loop retries the run, the outbox keys keep it single
    except (ReportError, ValueError) as exc:  # bad params, a broken template
        error = str(exc)
    except Exception as exc:  # any other fault is reported on the schedule, not retried forever
        log.exception("scheduled report %s failed", schedule["_id"])
        error = f"could not build the report ({type(exc).__name__})"
    moved = await ctx.db.report_schedules.update_one(
        {"_id": schedule["_id"], "next_at": due},
        {
            "$set": {
                "next_at": next_run(schedule["every"], schedule["at"], tz, max(due, now)),
                "last_sent_at": None if error else now,
                "last_period": {"from": period.start.isoformat(), "to": period.end.isoformat()},
                "last_error": error,
            }
        },
    )
    if error:
        log.warning("scheduled report %s not sent: %s", schedule["_id"], error)
    return moved.modified_count == 1


async def run_due(ctx: AppContext, send: Mailer, build: Builder = build_historical) -> int:
    """Every schedule due now, oldest first; returns how many this call moved on."""
    now = utcnow()
    done = 0
    due = ctx.db.report_schedules.find({"next_at": {"$lte": now}}).sort("next_at", 1).limit(BATCH)
    for schedule in [s async for s in due]:
        done += int(await run_one(ctx, schedule, send, build, now))
    return done


def wake(ctx: AppContext) -> None:
    event = ctx.extra.get(WAKE)
    if isinstance(event, asyncio.Event):
        event.set()


async def run(ctx: AppContext, send: Mailer, poll_s: float = POLL_S) -> None:
    """The hub's loop (a lifespan task): due schedules every `poll_s`, or at once when woken."""
    event = ctx.extra.setdefault(WAKE, asyncio.Event())
    while True:
        event.clear()
        try:
            await run_due(ctx, send)
        except PyMongoError as exc:
            log.warning("scheduled reports: database unavailable (%s)", exc)
        except Exception:  # never let one bad run end the loop
            log.exception("scheduled reports: run failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), poll_s)
