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
    ("kb_articles", [("tenant_id", ASCENDING), ("terms", ASCENDING)], {}),
    ("kb_articles", [("tenant_id", ASCENDING), ("slug", ASCENDING)], {"unique": True}),
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
