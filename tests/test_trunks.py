"""SIP trunks and outbound routes (routing/trunks.py, /api/admin/telephony/trunks|routes).

`select_route` is a pure function: the longest matching pattern wins, then the lowest priority,
and the dialled string is the number's digits after strip / prepend. Over HTTP against a real
hub: validation answers clear 422s, the password is never returned (and is stored encrypted),
a trunk used by a route cannot be deleted (409), other tenants get 404 and agents 403.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hub import secretbox
from hub.embedded_db import EmbeddedDatabase
from routing.trunks import RouteIn, TrunkIn, select_route
from tests.conftest import context_for
from tests.support import TEST_SECRET, Agent, HubProcess

STAFF = {"agents": {"ada": [], "ann": ["general"]}, "roles": {"ada": ["admin"]}}


def route(name: str, pattern: str, priority: int = 100, strip: int = 0, prepend: str = "") -> dict[str, Any]:
    return {
        "_id": name,
        "name": name,
        "pattern": pattern,
        "trunk_id": f"trunk-{name}",
        "strip_digits": strip,
        "prepend": prepend,
        "priority": priority,
    }


def test_select_route_longest_pattern_then_priority() -> None:
    routes = [
        route("default", ""),
        route("us", "1", priority=5),
        route("sf", "1415", priority=50, strip=1, prepend="9"),
        route("sf-backup", "1415", priority=60),
        route("uk", "44", strip=2, prepend="0"),
    ]
    chosen = select_route(routes, "+14155550100")
    assert chosen is not None and chosen.route["name"] == "sf"  # longest pattern beats priority 5
    assert chosen.dialled == "94155550100"  # "1" stripped, "9" prepended
    us = select_route(routes, "+12125550100")
    assert us is not None and us.route["name"] == "us" and us.dialled == "12125550100"
    uk = select_route(routes, "+442071838750")
    assert uk is not None and uk.route["name"] == "uk" and uk.dialled == "02071838750"
    other = select_route(routes, "+33142685300")
    assert other is not None and other.route["name"] == "default"
    assert select_route([route("us", "1")], "+33142685300") is None
    assert select_route(routes, "") is None
    # same pattern: the lower priority number wins; then the name decides
    tie = select_route([route("b", "49", 10), route("a", "49", 10), route("c", "49", 1)], "+4930123456")
    assert tie is not None and tie.route["name"] == "c"
    tie = select_route([route("b", "49", 10), route("a", "49", 10)], "4930123456")
    assert tie is not None and tie.route["name"] == "a"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"host": "bad host!"}, "neither a hostname nor an IP"),
        ({"host": "999.1.1.1"}, "neither a hostname nor an IP"),
        ({"port": 0}, "greater than or equal to 1"),
        ({"port": 70000}, "less than or equal to 65535"),
        ({"transport": "sctp"}, "'udp', 'tcp' or 'tls'"),
        ({"codecs": ["PCMU", "GSM"]}, "unknown codec 'GSM'"),
        ({"codecs": []}, "at least 1"),
        ({"codecs": ["PCMU", "PCMU"]}, "listed twice"),
        ({"caller_id_prefix": "abc"}, "digits"),
    ],
)
def test_trunk_validation(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        TrunkIn.model_validate({"name": "carrier", "host": "sip.example.com", **fields})


def test_trunk_and_route_accept_good_values() -> None:
    trunk = TrunkIn.model_validate(
        {"name": "c", "host": "10.0.0.5", "port": 5061, "transport": "tls", "codecs": ["opus", "G722"]}
    )
    assert trunk.host == "10.0.0.5" and trunk.codecs == ["opus", "G722"]
    assert TrunkIn.model_validate({"name": "c", "host": "[2001:db8::1]"}).host == "2001:db8::1"
    assert TrunkIn.model_validate({"name": "c", "host": "SIP.Example.COM"}).host == "sip.example.com"
    assert RouteIn.model_validate({"name": "r", "pattern": "+44", "trunk_id": "t"}).pattern == "44"
    with pytest.raises(ValidationError, match="prefix of digits"):
        RouteIn.model_validate({"name": "r", "pattern": "44x", "trunk_id": "t"})
    with pytest.raises(ValidationError, match="prepend digits"):
        RouteIn.model_validate({"name": "r", "prepend": "9a", "trunk_id": "t"})
    with pytest.raises(ValidationError):
        RouteIn.model_validate({"name": "r", "strip_digits": -1, "trunk_id": "t"})


async def signed_in(hub: HubProcess, tenant: dict[str, Any], name: str) -> Agent:
    client = Agent(hub.url, tenant["slug"], f"{name}@t.test")
    await client.login()
    return client


async def test_trunks_and_routes_over_http(hub_nobot: HubProcess, tenant_in, mongo: EmbeddedDatabase) -> None:
    t = await tenant_in(hub_nobot, **STAFF)
    other = await tenant_in(hub_nobot, **STAFF)
    ada, ann = await signed_in(hub_nobot, t, "ada"), await signed_in(hub_nobot, t, "ann")
    ada2 = await signed_in(hub_nobot, other, "ada")
    db = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    base = "/api/admin/telephony"
    try:
        trunk_body = {
            "name": "Carrier A",
            "host": "sip.carrier-a.example",
            "port": 5061,
            "transport": "tls",
            "codecs": ["PCMA", "G729"],
            "username": "acme",
            "password": "trunk-pass-9876",
            "register": True,
        }
        created = await ada.http.post(f"{base}/trunks", json=trunk_body)
        assert created.status_code == 201, created.text
        trunk = created.json()
        assert trunk["password_set"] is True and trunk["password_last4"] == "9876"
        assert "password" not in trunk and "trunk-pass-9876" not in created.text
        assert trunk["register"] is True and trunk["codecs"] == ["PCMA", "G729"]
        row = await db.db.sip_trunks.find_one({"_id": trunk["id"]})
        assert row is not None and "trunk-pass-9876" not in str(row)
        assert secretbox.decrypt(TEST_SECRET, row["password_enc"]) == "trunk-pass-9876"

        bad = await ada.http.post(f"{base}/trunks", json={**trunk_body, "name": "B", "codecs": ["GSM"]})
        assert bad.status_code == 422 and "unknown codec 'GSM'" in bad.text
        bad = await ada.http.post(f"{base}/trunks", json={**trunk_body, "name": "B", "port": 0})
        assert bad.status_code == 422
        dup = await ada.http.post(f"{base}/trunks", json=trunk_body)
        assert dup.status_code == 409 and "already exists" in dup.json()["detail"]

        # an update without a password keeps the stored one
        changed = await ada.http.put(
            f"{base}/trunks/{trunk['id']}", json={**trunk_body, "password": None, "port": 5080}
        )
        assert (
            changed.status_code == 200 and changed.json()["port"] == 5080 and changed.json()["password_set"]
        )
        backup = (await ada.http.post(f"{base}/trunks", json={"name": "Backup", "host": "192.0.2.10"})).json()

        bad_route = await ada.http.post(
            f"{base}/routes", json={"name": "x", "pattern": "1", "trunk_id": "nope"}
        )
        assert bad_route.status_code == 422 and "no such trunk" in bad_route.text
        r1 = await ada.http.post(
            f"{base}/routes",
            json={
                "name": "Bay Area",
                "pattern": "1415",
                "trunk_id": trunk["id"],
                "strip_digits": 1,
                "prepend": "9",
            },
        )
        assert r1.status_code == 201, r1.text
        r2 = await ada.http.post(
            f"{base}/routes", json={"name": "Default", "pattern": "", "trunk_id": backup["id"]}
        )
        assert r2.status_code == 201
        routes = (await ada.http.get(f"{base}/routes")).json()
        assert {r["name"]: r["trunk_name"] for r in routes} == {"Bay Area": "Carrier A", "Default": "Backup"}
        tried = (await ada.http.post(f"{base}/routes/test", json={"number": "+14155550100"})).json()
        assert tried["route"]["name"] == "Bay Area" and tried["trunk"]["name"] == "Carrier A"
        assert tried["dialled"] == "94155550100" and "password" not in tried["trunk"]
        tried = (await ada.http.post(f"{base}/routes/test", json={"number": "+442071838750"})).json()
        assert tried["route"]["name"] == "Default" and tried["dialled"] == "442071838750"

        in_use = await ada.http.delete(f"{base}/trunks/{trunk['id']}")
        assert in_use.status_code == 409 and "Bay Area" in in_use.json()["detail"]

        # other tenants and other roles
        assert (await ada2.http.get(f"{base}/trunks")).json() == []
        assert (await ada2.http.delete(f"{base}/trunks/{trunk['id']}")).status_code == 404
        stolen = {"name": "mine", "trunk_id": trunk["id"]}
        assert (await ada2.http.put(f"{base}/routes/{r1.json()['id']}", json=stolen)).status_code == 404
        assert (await ada2.http.delete(f"{base}/routes/{r1.json()['id']}")).status_code == 404
        assert (await ann.http.get(f"{base}/trunks")).status_code == 403
        assert (await ann.http.post(f"{base}/trunks", json=trunk_body)).status_code == 403

        assert (await ada.http.delete(f"{base}/routes/{r1.json()['id']}")).status_code == 200
        assert (await ada.http.delete(f"{base}/trunks/{trunk['id']}")).status_code == 200
        actions = [a["action"] async for a in db.db.audit_log.find({"tenant_id": t["tenant"]["_id"]})]
        assert {"telephony.trunk.create", "telephony.trunk.update", "telephony.route.create"} <= set(actions)
        assert "telephony.trunk.delete" in actions and "telephony.route.delete" in actions
        logged = await db.db.audit_log.find_one(
            {"action": "telephony.trunk.create", "tenant_id": t["tenant"]["_id"]}
        )
        assert logged is not None and "trunk-pass-9876" not in str(logged)
    finally:
        for client in (ada, ann, ada2):
            await client.close()
        await db.db.close()
