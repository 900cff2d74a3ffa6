"""Demo data for `make run`: a utility/telecom tenant with staff, FAQ articles and customers."""

from __future__ import annotations

from bot.ivr import DEFAULT_FLOW
from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow
from hub.tenancy import create_tenant, create_user, get_tenant_by_slug
from knowledge.kb import upsert_article

DEMO_TENANT = "demo"
DEMO_NUMBER = "+15550100200"  # the demo phone line (point a Twilio number's webhook here)
DEMO_PASSWORD = "northwind"
DemoUser = tuple[str, str, list[str], list[str]]
# The tenant tree above the demo customer (seed 003: operator -> reseller -> end customer).
OPERATOR_TENANT = "platform"
RESELLER_TENANT = "acme-resale"
OPERATOR_USERS: list[DemoUser] = [
    ("ops@platform.test", "Olga Operator", ["admin"], []),
    ("service@platform.test", "Sid Service", ["service"], []),
    ("finance@platform.test", "Fran Finance", ["finance"], []),
]
RESELLER_USERS: list[DemoUser] = [("admin@acme-resale.test", "Rex Reseller", ["admin"], [])]
DEMO_USERS: list[DemoUser] = [
    ("admin@northwind.test", "Ada Admin", ["admin"], []),
    ("alice@northwind.test", "Alice Agent", ["agent"], ["billing", "general"]),
    ("bob@northwind.test", "Bob Agent", ["agent"], ["technical", "general"]),
    ("sam@northwind.test", "Sam Supervisor", ["supervisor", "agent"], ["billing", "technical", "general"]),
    ("erin@northwind.test", "Erin Editor", ["editor"], []),
]
ARTICLES = [
    (
        "Moving house",
        "Tell us your moving date at least 5 working days ahead. We take a final meter reading at "
        "the old address and can start electricity and broadband at the new one on the same day.",
        ["moving"],
    ),
    (
        "Changing your tariff",
        "You can change your electricity or mobile tariff once a month at no charge in the "
        "customer portal under Account > Tariffs. The new tariff starts at your next billing date.",
        ["tariff", "plan"],
    ),
    (
        "Mobile roaming",
        "Roaming in the EU and UK is included in every mobile plan. For other countries, add the "
        "World Traveller pass (5 USD a day) in the app before you travel.",
        ["roaming", "abroad", "travel"],
    ),
    (
        "Setting up your router",
        "Connect the grey DSL cable to the wall socket and the router, plug in the power, and "
        "wait until the light turns solid white (about 10 minutes). The Wi-Fi name and password are on "
        "the router's back label.",
        ["router", "wifi", "broadband", "setup"],
    ),
    (
        "Direct debit",
        "Set up a direct debit in the customer portal under Billing > Payment method. Payments are "
        "taken on the due date shown on your bill; you can change the day once per billing cycle.",
        ["direct debit", "payment", "bank"],
    ),
    (
        "Submitting a meter reading",
        "Submit a meter reading in the app or the portal under Energy > Meter readings. "
        "Readings sent before the 25th are used on that month's bill.",
        ["meter", "reading"],
    ),
    (
        "Fibre availability",
        "Enter your postcode on our Fibre page to check availability. Where fibre is available "
        "we install it within 10 working days at no charge.",
        ["fibre", "fiber", "broadband", "availability"],
    ),
    (
        "Data allowance",
        "Check your remaining mobile data in the app. When you reach your allowance, data slows to "
        "1 Mbps; add a 5 GB booster for 3 USD at any time.",
        ["data", "allowance", "mobile"],
    ),
    (
        "Late payment",
        "If a payment is late we send a reminder after 7 days; a late fee of 5 USD applies after 14 "
        "days. Contact us early if you need a payment plan.",
        ["late payment", "fee", "overdue"],
    ),
    (
        "Paperless billing",
        "Switch to paperless billing in the portal under Billing > Preferences and get your bills "
        "by email. It saves 1 USD a month.",
        ["paperless", "email bill", "bill"],
    ),
    (
        "Resetting your password",
        "Use 'Forgot password' on the sign-in page; we send a reset link to your email "
        "address that is valid for 30 minutes.",
        ["password", "reset", "login"],
    ),
    (
        "Cancelling your contract",
        "You can cancel with 30 days' notice. Contracts within their minimum term have an "
        "early termination fee shown in the portal under Account > Contract.",
        ["cancel", "contract", "termination"],
    ),
    (
        "Smart meters",
        "We install smart meters for free. Book an appointment in the portal under Energy > Smart "
        "meter; the visit takes about two hours and the power is off for 30 minutes.",
        ["smart meter", "install"],
    ),
]
CUSTOMERS = [
    {
        "name": "Maria Garcia",
        "emails": ["maria@example.com"],
        "phones": ["+14155550101"],
        "account_number": "NW-100231",
        "segment": "residential",
        "balance": 84.20,
        "due_date": "2026-12-05",
        "tags": ["electricity", "broadband"],
    },
    {
        "name": "John Smith",
        "emails": ["john.smith@example.com"],
        "phones": ["+14155550102"],
        "account_number": "NW-100232",
        "segment": "residential",
        "balance": 0.0,
        "due_date": None,
        "tags": ["mobile"],
    },
    {
        "name": "Li Wei",
        "emails": ["li.wei@example.com"],
        "phones": ["+14155550103"],
        "account_number": "NW-100233",
        "segment": "business",
        "balance": 1240.55,
        "due_date": "2026-12-01",
        "tags": ["electricity", "fibre", "vip"],
    },
    {
        "name": "Fatima Khan",
        "emails": ["fatima@example.com"],
        "phones": ["+447700900123"],
        "account_number": "NW-100234",
        "segment": "residential",
        "balance": 23.10,
        "due_date": "2026-12-12",
        "tags": ["mobile", "roaming"],
    },
]


async def _demo_tenant(
    ctx: AppContext, slug: str, name: str, level: str, parent: Doc | None, users: list[DemoUser]
) -> Doc:
    tenant = await get_tenant_by_slug(ctx, slug) or await create_tenant(
        ctx, slug, name, level=level, parent=parent
    )
    for email, user_name, roles, skills in users:
        if await ctx.db.users.find_one({"tenant_id": tenant["_id"], "email": email}) is None:
            await create_user(ctx, tenant["_id"], email, user_name, DEMO_PASSWORD, roles, skills)
    return tenant


async def _attach(ctx: AppContext, demo: Doc, reseller: Doc) -> Doc:
    """A demo tenant made before the tree (a top-level customer, or no level at all) goes
    below the reseller; one already placed anywhere is left alone."""
    if demo.get("parent_id") or demo.get("path") or (demo.get("level") or "customer") != "customer":
        return demo
    attached = {
        "level": "customer",
        "parent_id": reseller["_id"],
        "path": [*(reseller.get("path") or []), reseller["_id"]],
    }
    await ctx.db.tenants.update_one({"_id": demo["_id"]}, {"$set": attached})
    return {**demo, **attached}


async def seed_demo(ctx: AppContext, slug: str = DEMO_TENANT) -> Doc:
    """Create or refresh the demo tenant, a customer of the reseller `acme-resale` below the
    operator `platform`; safe to run on every start."""
    operator = await _demo_tenant(
        ctx, OPERATOR_TENANT, "Contact hub platform", "operator", None, OPERATOR_USERS
    )
    reseller = await _demo_tenant(ctx, RESELLER_TENANT, "Acme Resale", "reseller", operator, RESELLER_USERS)
    tenant = await get_tenant_by_slug(ctx, slug) or await create_tenant(
        ctx, slug, "Northwind Energy & Telecom", level="customer", parent=reseller
    )
    tenant = await _attach(ctx, tenant, reseller)
    for email, name, roles, skills in DEMO_USERS:
        if await ctx.db.users.find_one({"tenant_id": tenant["_id"], "email": email}) is None:
            await create_user(ctx, tenant["_id"], email, name, DEMO_PASSWORD, roles, skills)
    for title, body, tags in ARTICLES:
        await upsert_article(ctx, tenant["_id"], title, body, tags)
    for customer in CUSTOMERS:
        await ctx.db.customers.update_one(
            {"tenant_id": tenant["_id"], "account_number": customer["account_number"]},
            {"$set": customer, "$setOnInsert": {"_id": new_id(), "created_at": utcnow()}},
            upsert=True,
        )
    if await ctx.db.ivr_flows.find_one({"number": DEMO_NUMBER}) is None:
        await ctx.db.ivr_flows.insert_one(
            {**DEFAULT_FLOW(tenant["_id"], DEMO_NUMBER), "created_at": utcnow()}
        )
    return tenant
