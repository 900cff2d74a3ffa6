"""MongoDB access (PyMongo's async API) and the indexes the hub relies on."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

Doc = dict[str, Any]

# (collection, keys, options). Unique indexes carry invariants: one seq per message
# in a contact, one message per visitor client id, one user per email per tenant.
INDEXES: list[tuple[str, list[tuple[str, int]], dict[str, Any]]] = [
    ("tenants", [("slug", ASCENDING)], {"unique": True}),
    # the tenant tree (hub/tenancy.py): everything below a tenant; a tenant's roles
    ("tenants", [("path", ASCENDING)], {}),
    ("tenants", [("parent_id", ASCENDING)], {}),
    ("roles", [("tenant_id", ASCENDING), ("name", ASCENDING)], {"unique": True}),
    ("audit_log", [("tenant_id", ASCENDING), ("at", DESCENDING)], {}),
    ("outbox", [("tenant_id", ASCENDING), ("idempotency_key", ASCENDING)], {"unique": True}),
    ("outbox", [("state", ASCENDING), ("next_attempt_at", ASCENDING)], {}),
    ("outbox", [("provider_id", ASCENDING)], {}),
    ("contacts", [("tenant_id", ASCENDING), ("channel", ASCENDING), ("customer_number", ASCENDING)], {}),
    ("tenants", [("sms_numbers", ASCENDING)], {}),
    # email: tenants by support address, threading by Message-ID, customer's open email contact
    ("tenants", [("email.address", ASCENDING)], {}),
    ("messages", [("tenant_id", ASCENDING), ("data.message_id", ASCENDING)], {}),
    ("messages", [("tenant_id", ASCENDING), ("email_message_id", ASCENDING)], {}),
    ("contacts", [("tenant_id", ASCENDING), ("channel", ASCENDING), ("customer_email", ASCENDING)], {}),
    ("canned_responses", [("tenant_id", ASCENDING), ("title", ASCENDING)], {}),
    ("users", [("tenant_id", ASCENDING), ("email", ASCENDING)], {"unique": True}),
    ("agents", [("tenant_id", ASCENDING), ("state", ASCENDING), ("idle_since", ASCENDING)], {}),
    ("agents", [("state", ASCENDING), ("wrapup_until", ASCENDING)], {}),
    ("contacts", [("tenant_id", ASCENDING), ("status", ASCENDING), ("queued_at", ASCENDING)], {}),
    (
        "contacts",
        [("tenant_id", ASCENDING), ("status", ASCENDING), ("priority", DESCENDING), ("queued_at", ASCENDING)],
        {},
    ),
    ("contacts", [("tenant_id", ASCENDING), ("customer_id", ASCENDING), ("opened_at", DESCENDING)], {}),
    ("contacts", [("tenant_id", ASCENDING), ("visitor_id", ASCENDING), ("opened_at", DESCENDING)], {}),
    ("contacts", [("offer.agent_ids", ASCENDING)], {}),
    ("contacts", [("status", ASCENDING), ("offer.expires_at", ASCENDING)], {}),
    ("contacts", [("agent_id", ASCENDING), ("status", ASCENDING)], {}),
    ("messages", [("contact_id", ASCENDING), ("seq", ASCENDING)], {"unique": True}),
    ("messages", [("contact_id", ASCENDING), ("dedupe_key", ASCENDING)], {"unique": True}),
    ("messages", [("bot_state", ASCENDING)], {}),
    ("customers", [("tenant_id", ASCENDING), ("emails", ASCENDING)], {}),
    ("customers", [("tenant_id", ASCENDING), ("phones", ASCENDING)], {}),
    ("customers", [("tenant_id", ASCENDING), ("account_number", ASCENDING)], {}),
    ("kb_articles", [("tenant_id", ASCENDING), ("slug", ASCENDING)], {"unique": True}),
    # the editor: newest first per tenant (also knowledge.search's freshness check); an
    # article's revisions in order
    ("kb_articles", [("tenant_id", ASCENDING), ("updated_at", DESCENDING)], {}),
    ("kb_revisions", [("tenant_id", ASCENDING), ("article_id", ASCENDING), ("seq", ASCENDING)], {}),
    # knowledge-base usage (knowledge/usage.py): statistics by period, per article, content gaps
    ("kb_events", [("tenant_id", ASCENDING), ("type", ASCENDING), ("at", DESCENDING)], {}),
    ("kb_events", [("tenant_id", ASCENDING), ("article_id", ASCENDING)], {}),
    ("tickets", [("tenant_id", ASCENDING), ("created_at", DESCENDING)], {}),
    ("ivr_flows", [("number", ASCENDING)], {"unique": True}),
    ("queues", [("tenant_id", ASCENDING), ("name", ASCENDING)], {}),
    # quality inspection: reports by agent / period, the scoring queue, scorecard versions
    ("evaluations", [("tenant_id", ASCENDING), ("agent_id", ASCENDING), ("created_at", ASCENDING)], {}),
    ("evaluations", [("tenant_id", ASCENDING), ("created_at", ASCENDING)], {}),
    ("evaluations", [("tenant_id", ASCENDING), ("contact_id", ASCENDING)], {}),
    ("contacts", [("tenant_id", ASCENDING), ("status", ASCENDING), ("closed_at", DESCENDING)], {}),
    ("scorecards", [("tenant_id", ASCENDING), ("family_id", ASCENDING)], {}),
    ("tasks", [("tenant_id", ASCENDING), ("status", ASCENDING), ("created_at", ASCENDING)], {}),
    ("announcements", [("tenant_id", ASCENDING), ("target_ids", ASCENDING), ("expires_at", DESCENDING)], {}),
    ("announcements", [("tenant_id", ASCENDING), ("created_at", DESCENDING)], {}),
    ("recordings", [("tenant_id", ASCENDING), ("started_at", DESCENDING)], {}),
    ("recordings", [("tenant_id", ASCENDING), ("agent_ids", ASCENDING)], {}),
    ("recordings", [("contact_id", ASCENDING)], {}),
    ("recording_access", [("tenant_id", ASCENDING), ("recording_id", ASCENDING), ("at", DESCENDING)], {}),
    # compliance: one entry per number per list; opt-outs skip targets across campaigns;
    # the frequency cap reads the last answered call per number
    ("dnc_entries", [("tenant_id", ASCENDING), ("number", ASCENDING), ("list", ASCENDING)], {"unique": True}),
    ("dnc_entries", [("tenant_id", ASCENDING), ("created_at", DESCENDING)], {}),
    ("campaign_targets", [("tenant_id", ASCENDING), ("number", ASCENDING), ("status", ASCENDING)], {}),
    ("dial_attempts", [("tenant_id", ASCENDING), ("number", ASCENDING), ("answered_at", DESCENDING)], {}),
    ("caller_ids", [("tenant_id", ASCENDING), ("number", ASCENDING)], {"unique": True}),
    # outbound lists: one target per number per campaign; assignment and list order; import jobs
    ("campaign_targets", [("campaign_id", ASCENDING), ("number", ASCENDING)], {"unique": True}),
    (
        "campaign_targets",
        [("campaign_id", ASCENDING), ("status", ASCENDING), ("assigned_agent_id", ASCENDING)],
        {},
    ),
    ("list_imports", [("tenant_id", ASCENDING), ("campaign_id", ASCENDING), ("created_at", DESCENDING)], {}),
    # questionnaires: a family's versions; answers per questionnaire for statistics
    ("questionnaires", [("tenant_id", ASCENDING), ("family_id", ASCENDING), ("version", DESCENDING)], {}),
    (
        "questionnaire_answers",
        [("tenant_id", ASCENDING), ("questionnaire_id", ASCENDING), ("updated_at", DESCENDING)],
        {},
    ),
    # the wallboard's today (dashboard/wallboard_today.py): the day's first look, then changes
    ("contacts", [("tenant_id", ASCENDING), ("queued_at", ASCENDING)], {}),
    ("contacts", [("tenant_id", ASCENDING), ("assigned_at", ASCENDING)], {}),
    ("contacts", [("tenant_id", ASCENDING), ("updated_at", ASCENDING)], {}),
    ("agent_states", [("tenant_id", ASCENDING), ("end", ASCENDING)], {}),
    # scheduled reports (reports/schedule.py): the due ones across tenants
    ("report_schedules", [("next_at", ASCENDING)], {}),
    ("report_schedules", [("tenant_id", ASCENDING), ("created_at", ASCENDING)], {}),
    # reports (docs/reports.md): agent state spells; contact facts by period, agent, queue,
    # campaign; the fact updater's watermark on contacts and on unanswered dial attempts
    ("agent_states", [("tenant_id", ASCENDING), ("start", ASCENDING)], {}),
    ("agent_states", [("agent_id", ASCENDING), ("state", ASCENDING), ("start", ASCENDING)], {}),
    ("agent_states", [("state", ASCENDING), ("end", ASCENDING)], {}),
    ("agent_states", [("end", ASCENDING)], {}),
    ("contact_facts", [("tenant_id", ASCENDING), ("interval_start", ASCENDING)], {}),
    ("contact_facts", [("tenant_id", ASCENDING), ("agent_id", ASCENDING), ("interval_start", ASCENDING)], {}),
    ("contact_facts", [("tenant_id", ASCENDING), ("queue", ASCENDING), ("interval_start", ASCENDING)], {}),
    ("contact_facts", [("tenant_id", ASCENDING), ("campaign_id", ASCENDING)], {}),
    (
        "fact_rollups",
        [("tenant_id", ASCENDING), ("gran", ASCENDING), ("dim", ASCENDING), ("interval_start", ASCENDING)],
        {},
    ),
    ("contacts", [("updated_at", ASCENDING)], {}),
    ("dial_attempts", [("ended_at", ASCENDING)], {}),
    # bot analytics (reports/bot_analytics.py): contacts opened, bot replies and turns by period
    ("contacts", [("tenant_id", ASCENDING), ("opened_at", ASCENDING)], {}),
    ("messages", [("tenant_id", ASCENDING), ("author", ASCENDING), ("created_at", ASCENDING)], {}),
    # billing (billing/, docs/admin.md): a rate table's prefixes; one record per event per
    # charged tenant; records and top-ups by period; unapplied entries for recovery; the
    # rater's watermark on sent SMS
    ("rates", [("group_id", ASCENDING), ("prefix", ASCENDING)], {"unique": True}),
    ("rate_groups", [("tenant_id", ASCENDING), ("name", ASCENDING)], {}),
    ("billing_records", [("tenant_id", ASCENDING), ("source_key", ASCENDING)], {"unique": True}),
    ("billing_records", [("tenant_id", ASCENDING), ("at", ASCENDING)], {}),
    ("billing_records", [("applied", ASCENDING), ("created_at", ASCENDING)], {}),
    ("billing_records", [("charge_id", ASCENDING)], {}),
    ("billing_charges", [("state", ASCENDING), ("created_at", ASCENDING)], {}),
    ("top_ups", [("tenant_id", ASCENDING), ("at", ASCENDING)], {}),
    ("top_ups", [("applied", ASCENDING), ("created_at", ASCENDING)], {}),
    ("outbox", [("sent_at", ASCENDING)], {}),
    ("contacts", [("call_ended_at", ASCENDING)], {}),  # the rater's watermark on inbound calls
    # telephony administration (docs/admin.md): the number inventory, tenants' own Twilio
    # accounts (a webhook's AccountSid finds its tenant), SIP trunks and outbound routes;
    # hanging up a call finds its tenant by call sid
    ("phone_numbers", [("number", ASCENDING)], {"unique": True}),
    ("phone_numbers", [("tenant_id", ASCENDING), ("number", ASCENDING)], {}),
    ("telephony_settings", [("tenant_id", ASCENDING)], {"unique": True}),
    ("telephony_settings", [("twilio_account_sid", ASCENDING)], {"unique": True}),
    ("sip_trunks", [("tenant_id", ASCENDING), ("name", ASCENDING)], {"unique": True}),
    ("outbound_routes", [("tenant_id", ASCENDING), ("priority", ASCENDING)], {}),
    ("dial_attempts", [("call_sid", ASCENDING)], {}),
    ("contacts", [("call_sid", ASCENDING)], {}),
]


class Database:
    """One client per process; collections by attribute (`db.contacts`)."""

    def __init__(self, uri: str, name: str) -> None:
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(
            uri, tz_aware=True, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, retryWrites=True
        )
        self.db: AsyncDatabase[Doc] = self.client[name]

    def __getattr__(self, name: str) -> AsyncCollection[Doc]:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.db[name]

    async def ensure_indexes(self) -> None:
        for collection, keys, options in INDEXES:
            await self.db[collection].create_index(keys, **options)

    async def ping(self) -> bool:
        try:
            await self.client.admin.command("ping")
            return True
        except PyMongoError:
            return False

    async def close(self) -> None:
        await self.client.close()


async def update_then_read(collection: AsyncCollection[Doc], query: Doc, update: Doc) -> Doc | None:
    """A conditional update, then the document as it is now; None if `query` matched nothing.

    Used instead of find_one_and_update on hot paths because the embedded SecantusDB
    0.7 writes findAndModify's pick back with an `$and` filter its index lookup skips, so
    each call scans the whole collection (55 ms at 10,000 contacts against 2 ms for
    update_one + find_one, measured by bench.router). The update itself stays atomic;
    the read may already show a later change by someone else, which callers accept.
    Not for counters whose post-increment value must be exact (use find_one_and_update).
    """
    result = await collection.update_one(query, update)
    if result.matched_count == 0:
        return None
    return await collection.find_one({"_id": query["_id"]})
