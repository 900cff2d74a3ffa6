"""Customer profiles (CRM): found or created from an email address or phone number."""

from __future__ import annotations

import re
from typing import Any

import phonenumbers

from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, new_id, utcnow

_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


class InvalidContactDetail(ValueError):
    """An email address or phone number that cannot be used; the message says why."""


def normalise_email(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise InvalidContactDetail("that does not look like an email address")
    return value


def normalise_phone(value: str, default_region: str = "US") -> str:
    """E.164, via phonenumbers so national formats and mobile prefixes are handled."""
    try:
        number = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidContactDetail("that does not look like a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidContactDetail("that phone number is not valid")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


async def find_or_create_customer(
    ctx: AppContext,
    tenant_id: str,
    *,
    email: str | None = None,
    phone: str | None = None,
    name: str | None = None,
) -> Doc:
    """Match on any known email or phone; otherwise create a profile. Adds new details."""
    clauses: list[Doc] = []
    if email:
        clauses.append({"emails": email})
    if phone:
        clauses.append({"phones": phone})
    if not clauses:
        raise InvalidContactDetail("give an email address or a phone number")
    customer = await ctx.db.customers.find_one({"tenant_id": tenant_id, "$or": clauses})
    if customer is None:
        customer = {
            "_id": new_id(),
            "tenant_id": tenant_id,
            "name": name or None,
            "emails": [email] if email else [],
            "phones": [phone] if phone else [],
            "account_number": None,
            "segment": "prospect",
            "tags": [],
            "balance": None,
            "created_at": utcnow(),
        }
        await ctx.db.customers.insert_one(customer)
        return customer
    add: Doc = {}
    if email:
        add["emails"] = email
    if phone:
        add["phones"] = phone
    update: Doc = {"$addToSet": add}
    if name and not customer.get("name"):
        update["$set"] = {"name": name}
    await ctx.db.customers.update_one({"_id": customer["_id"]}, update)
    refreshed = await ctx.db.customers.find_one({"_id": customer["_id"]})
    assert refreshed is not None
    return refreshed


async def get_customer(ctx: AppContext, customer_id: str, tenant_id: str) -> Doc | None:
    return await ctx.db.customers.find_one({"_id": customer_id, "tenant_id": tenant_id})


def public_customer(customer: Doc) -> dict[str, Any]:
    return {
        "id": customer["_id"],
        "name": customer.get("name"),
        "email": (customer.get("emails") or [None])[0],
        "emails": customer.get("emails", []),
        "phone": (customer.get("phones") or [None])[0],
        "phones": customer.get("phones", []),
        "account_number": customer.get("account_number"),
        "segment": customer.get("segment"),
        "tags": customer.get("tags", []),
        "balance": customer.get("balance"),
        "due_date": customer.get("due_date"),
        "created_at": iso(customer.get("created_at")),
    }
