"""The administration page in a real browser: an admin brands the tenant (the top bar and the
sign-in page show it), creates a custom role and a user holding it through the page; the new
user signs in with the password the page showed once, must change it first (the password form,
then back where they were going), reaches what the custom role grants, and changes the password
again on the admin page."""

from __future__ import annotations

import struct
import zlib

import httpx
import pytest
from playwright.async_api import expect

from tests.conftest import TenantFactory
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_wallboard_e2e import logs_in
from tests.support import HubProcess

pytestmark = [pytest.mark.e2e]


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00\x20\x60\xc0"))
        + chunk(b"IEND", b"")
    )


async def test_admin_brands_the_tenant_and_adds_a_role_and_a_user(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage, tmp_path
) -> None:
    hub = hub_nobot
    t = await tenant_in(hub, level="reseller", agents={"ada": []}, roles={"ada": ["admin"]})
    slug = t["slug"]

    # ---- the admin finds the page from the desk
    ada = await open_page("admin")
    await logs_in(ada, hub, slug, "ada@t.test", "Ada")
    link = ada.locator("#admin-link")
    await expect(link).to_be_visible()
    await link.click()
    await expect(ada).to_have_url(f"{hub.url}/admin#tenants")
    await expect(ada.locator("#tenants-empty")).to_be_visible()

    # ---- branding: a name and a logo, shown in the top bar at once and after a reload
    await ada.locator("#tab-branding").click()
    await expect(ada.locator("#br-effective")).to_have_text("Contact hub")  # loaded: nothing set yet
    await ada.locator("#br-name").fill("Acme Voice")
    await ada.locator("#br-save").click()
    await expect(ada.locator(".topbar .brand .brand-name")).to_have_text("Acme Voice")
    logo = tmp_path / "acme.png"
    logo.write_bytes(tiny_png())
    await ada.locator("#br-file").set_input_files(str(logo))
    await ada.locator("#br-upload").click()
    await expect(ada.locator("#ad-notice")).to_contain_text("Logo uploaded")
    await expect(ada.locator("#br-logo")).to_be_visible()
    svg = tmp_path / "evil.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    await ada.locator("#br-file").set_input_files(str(svg))
    await ada.locator("#br-upload").click()
    await expect(ada.locator("#ad-error")).to_contain_text("PNG, JPEG or WebP")
    await ada.reload()
    await expect(ada.locator(".topbar .brand .brand-name")).to_have_text("Acme Voice")
    await expect(ada.locator(".topbar .brand .brand-logo")).to_be_visible()

    # ---- a custom role with one permission
    await ada.locator("#tab-roles").click()
    await expect(ada.locator('#roles tr[data-role="admin"] input').first).to_be_disabled()
    await ada.locator("#rl-name").fill("qa")
    await ada.locator("#rl-label").fill("Quality lead")
    await ada.locator('#rl-permissions input[value="agents.manage"]').check()
    await ada.locator("#rl-save").click()
    row = ada.locator('#roles tr[data-role="qa"]')
    await expect(row).to_have_count(1)
    await expect(row.locator('input[value="agents.manage"]')).to_be_checked()

    # ---- a user holding it; the page shows the generated password once
    await ada.locator("#tab-users").click()
    await expect(ada.locator("#users tr", has_text="ada@t.test")).to_have_count(1)
    await ada.locator("#us-email").fill("quinn@t.test")
    await ada.locator("#us-name").fill("Quinn")
    await expect(ada.locator('#us-roles input[data-role="agent"]')).to_be_checked()
    await ada.locator('#us-roles input[data-role="qa"]').check()
    await ada.locator("#us-save").click()
    await expect(ada.locator("#ad-notice .ad-secret")).to_be_visible()
    password = (await ada.locator("#ad-notice .ad-secret").text_content()) or ""
    user_row = ada.locator("#users tr", has_text="quinn@t.test")
    await expect(user_row.locator(".user-roles")).to_have_text("agent, qa")
    await expect(user_row.locator(".user-state")).to_contain_text("must change password")

    # ---- the sign-in page shows the tenant's branding once the organisation is typed
    quinn = await open_page("quinn")
    await quinn.goto(f"{hub.url}/login")
    await quinn.locator("#login-tenant").fill(slug)
    await expect(quinn.locator("#login-title")).to_have_text("Acme Voice")
    await expect(quinn.locator("#login-logo")).to_be_visible()
    await quinn.locator("#login-email").fill("quinn@t.test")
    await quinn.locator("#login-password").fill(password)
    await quinn.locator("#login-submit").click()
    # the shown password was set by the admin: the password form comes first (the page guard)
    await expect(quinn).to_have_url(f"{hub.url}/password?next=%2Fagent")
    await quinn.goto(f"{hub.url}/routing")
    await expect(quinn).to_have_url(f"{hub.url}/password?next=%2Frouting")
    await expect(quinn.locator("#pw-logo")).to_be_visible()  # the tenant's branding
    await quinn.locator("#pw-current").fill(password)
    await quinn.locator("#pw-new").fill("quinn-new-pass")
    await quinn.locator("#pw-repeat").fill("quinn-new-pass")
    await quinn.locator("#pw-submit").click()
    # back where the user was going: the custom role grants agents.manage, the routing page opens
    await expect(quinn).to_have_url(f"{hub.url}/routing")
    await expect(quinn.locator("#queues-empty")).to_be_visible()
    await quinn.goto(f"{hub.url}/agent")
    await expect(quinn.locator(".topbar .brand .brand-name")).to_have_text("Acme Voice")
    await expect(quinn.locator("#must-change-password")).to_have_count(0)
    # ---- a later change of one's own choice on the admin page (only that tab)
    await quinn.goto(f"{hub.url}/admin#password")
    await expect(quinn.locator("#tab-users")).to_be_hidden()
    await expect(quinn.locator("#pw-must")).to_be_hidden()
    await quinn.locator("#pw-current").fill("quinn-new-pass")
    await quinn.locator("#pw-new").fill("quinn-newer-pass")
    await quinn.locator("#pw-repeat").fill("quinn-newer-pass")
    await quinn.locator("#pw-save").click()
    await expect(quinn.locator("#ad-notice")).to_contain_text("Password changed")
    async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
        ok = await http.post(
            "/api/auth/login", json={"tenant": slug, "email": "quinn@t.test", "password": "quinn-newer-pass"}
        )
        assert ok.status_code == 200

    errors = console_errors(open_page)
    admin_errors = [e for e in errors.pop("admin", []) if "415" not in e]
    assert admin_errors == [] and errors == {}
