"""Articles and FAQ entries: the review workflow (four eyes), drafts of published articles that
search does not see until published, revisions, diff, rollback, attachments (limits and
tenancy), import / export round trips in CSV, Excel and Markdown, and the editor API."""

from __future__ import annotations

import asyncio
import csv
import io
import zipfile
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from hub.auth import Principal
from hub.context import AppContext
from hub.ids import new_id
from hub.tenancy import create_tenant
from knowledge import articles, kb_transfer
from knowledge.articles import ArticleError, Conflict, Forbidden, NotFound
from knowledge.search import search
from tests.conftest import TenantFactory
from tests.support import Agent, HubProcess


async def make_tenant(ctx: AppContext) -> str:
    tenant = await create_tenant(ctx, f"kb-{new_id()[:10]}", "KB tenant")
    return str(tenant["_id"])


def person(tenant_id: str, name: str, *roles: str) -> Principal:
    return Principal(
        user_id=f"{name}-{tenant_id[:6]}",
        tenant_id=tenant_id,
        tenant_slug="t",
        tenant_name="T",
        email=f"{name}@t.test",
        name=name.title(),
        roles=roles or ("editor",),
    )


FAQ = {
    "title": "How do I reset my router?",
    "body": "Hold the **reset** button for ten seconds.\n\nWait for the lights.",
    "questions": ["How do I reset my router?", "My modem needs a restart"],
    "category": "internet",
    "tags": ["router"],
    "locale": "en",
}


async def slugs_found(ctx: AppContext, tenant_id: str, query: str, **kw: Any) -> list[str]:
    return [h.article["slug"] for h in await search(ctx, tenant_id, query, mode="fulltext", **kw)]


async def test_four_eyes_workflow_and_drafts_hidden_from_search(ctx: AppContext) -> None:
    tid = await make_tenant(ctx)
    ann, ben, root = person(tid, "ann"), person(tid, "ben"), person(tid, "root", "admin")
    faq = await articles.create(ctx, ann, FAQ, kind="faq")
    assert (faq["status"], faq["version"], faq["slug"]) == ("draft", 1, "how-do-i-reset-my-router")
    assert await slugs_found(ctx, tid, "reset router") == []  # drafts are not published
    assert await slugs_found(ctx, tid, "reset router", statuses=None) == [faq["slug"]]

    with pytest.raises(Conflict, match="submit"):
        await articles.publish(ctx, ben, faq["_id"])  # not in review yet
    await articles.submit(ctx, ann, faq["_id"])
    with pytest.raises(Conflict, match="already"):
        await articles.submit(ctx, ann, faq["_id"])
    with pytest.raises(Forbidden, match="another editor"):
        await articles.publish(ctx, ann, faq["_id"])  # the author cannot publish her own
    with pytest.raises(Forbidden):
        await articles.publish(ctx, person(tid, "sue", "supervisor"), faq["_id"])
    live = await articles.publish(ctx, ben, faq["_id"])
    assert (live["status"], live["published_version"]) == ("published", 1)
    assert await slugs_found(ctx, tid, "reset router") == [faq["slug"]]

    # an edit of a published FAQ is a draft: search keeps the live content
    edited = await articles.update(
        ctx, ben, faq["_id"], {"body": "Unplug the power cable for thirty seconds.", "title": "Power cycle"}
    )
    assert edited["status"] == "published" and edited["draft"]["version"] == 2
    assert edited["title"] == FAQ["title"] and edited["version"] == 1
    assert await slugs_found(ctx, tid, "unplug cable") == []
    assert await slugs_found(ctx, tid, "reset router") == [faq["slug"]]
    # stale saves are refused; saving the same content again changes nothing
    with pytest.raises(Conflict, match="reload"):
        await articles.update(ctx, ann, faq["_id"], {"body": "x"}, base_version=1)
    same = await articles.update(ctx, ben, faq["_id"], {"title": "Power cycle"}, base_version=2)
    assert same["rev_seq"] == edited["rev_seq"]

    await articles.submit(ctx, ben, faq["_id"])
    with pytest.raises(Forbidden):
        await articles.publish(ctx, ben, faq["_id"])
    published = await articles.publish(ctx, ann, faq["_id"])  # ann did not write version 2
    assert (published["title"], published["version"], published["draft"]) == ("Power cycle", 2, None)
    assert await slugs_found(ctx, tid, "unplug cable") == [faq["slug"]]

    # admins always publish, even their own unreviewed draft
    own = await articles.create(ctx, root, {"title": "Admin note", "body": "Text"})
    assert (await articles.publish(ctx, root, own["_id"]))["status"] == "published"
    # without review, an editor publishes her own draft
    await articles.set_require_review(ctx, tid, False)
    mine = await articles.create(ctx, ann, {"title": "Quick note", "body": "Text"})
    assert (await articles.publish(ctx, ann, mine["_id"]))["status"] == "published"

    # archive takes it out of search; restore brings it back as a draft
    archived = await articles.archive(ctx, ann, faq["_id"])
    assert archived["status"] == "archived"
    assert await slugs_found(ctx, tid, "unplug cable") == []
    with pytest.raises(Conflict, match="restore"):
        await articles.update(ctx, ann, faq["_id"], {"title": "Nope"})
    restored = await articles.restore(ctx, ann, faq["_id"])
    assert restored["status"] == "draft"

    actions = [
        (r["action"], r["version"], r["status"]) for r in await articles.revisions(ctx, tid, faq["_id"])
    ]
    assert actions == [
        ("created", 1, "draft"),
        ("submitted", 1, "in_review"),
        ("published", 1, "published"),
        ("edited", 2, "draft"),
        ("submitted", 2, "in_review"),
        ("published", 2, "published"),
        ("archived", 2, "archived"),
        ("restored", 2, "draft"),
    ]
    by = [r["by_name"] for r in await articles.revisions(ctx, tid, faq["_id"])]
    assert by[:3] == ["Ann", "Ann", "Ben"]


async def test_validation_slugs_and_tenancy(ctx: AppContext) -> None:
    tid, other = await make_tenant(ctx), await make_tenant(ctx)
    ann = person(tid, "ann")
    with pytest.raises(ArticleError, match="question"):
        await articles.create(ctx, ann, {**FAQ, "questions": []}, kind="faq")
    with pytest.raises(ArticleError, match="locale"):
        await articles.create(ctx, ann, {**FAQ, "locale": "xx"}, kind="faq")
    with pytest.raises(ArticleError, match="title"):
        await articles.create(ctx, ann, {"title": "  ", "body": "b"})
    first = await articles.create(ctx, ann, {"title": "Billing", "body": "a"})
    second = await articles.create(ctx, ann, {"title": "Billing", "body": "b"})
    assert (first["slug"], second["slug"]) == ("billing", "billing-2")
    with pytest.raises(Conflict, match="taken"):
        await articles.create(ctx, ann, {"title": "Other", "body": "c"}, slug="billing")
    zh = await articles.create(ctx, ann, {"title": "如何缴费", "body": "在营业厅缴费。", "locale": "zh"})
    assert zh["slug"].startswith("a-") and zh["locale"] == "zh"
    # the same slug in another tenant is fine; ids of another tenant are not found
    theirs = await articles.create(ctx, person(other, "eve"), {"title": "Billing", "body": "x"})
    assert theirs["slug"] == "billing"
    with pytest.raises(NotFound):
        await articles.get(ctx, tid, theirs["_id"])
    with pytest.raises(NotFound):
        await articles.update(ctx, ann, theirs["_id"], {"title": "Mine"})
    assert [c["name"] for c in await articles.categories(ctx, tid)] == []


async def test_diff_and_rollback(ctx: AppContext) -> None:
    tid = await make_tenant(ctx)
    ann, ben = person(tid, "ann"), person(tid, "ben")
    faq = await articles.create(ctx, ann, FAQ, kind="faq")
    await articles.submit(ctx, ann, faq["_id"])
    await articles.publish(ctx, ben, faq["_id"])
    await articles.update(
        ctx,
        ann,
        faq["_id"],
        {
            "body": "Hold the **reset** button for twenty seconds.\n\nWait for the lights.\nCall us.",
            "questions": ["How do I reset my router?", "Router reboot"],
            "tags": ["router", "modem"],
            "category": "devices",
        },
    )
    d = await articles.diff(ctx, tid, faq["_id"], 1, 2)
    fields = d["fields"]
    assert not fields["title"]["changed"]
    assert fields["category"] == {"old": "internet", "new": "devices", "changed": True}
    assert [(x["op"], x["text"]) for x in fields["body"]["lines"] if x["op"] != " "] == [
        ("-", "Hold the **reset** button for ten seconds."),
        ("+", "Hold the **reset** button for twenty seconds."),
        ("+", "Call us."),
    ]
    assert fields["questions"]["added"] == ["Router reboot"]
    assert fields["questions"]["removed"] == ["My modem needs a restart"]
    assert fields["tags"]["added"] == ["modem"] and fields["tags"]["removed"] == []
    assert "-Hold the **reset** button for ten seconds." in fields["body"]["unified"]
    with pytest.raises(NotFound):
        await articles.diff(ctx, tid, faq["_id"], 1, 9)

    # rollback to 1 is a new version 3 (a draft, the live content stays) that goes through review
    rolled = await articles.rollback(ctx, ben, faq["_id"], 1)
    assert rolled["draft"]["version"] == 3 and rolled["draft"]["body"] == FAQ["body"]
    assert rolled["version"] == 1
    with pytest.raises(Conflict):
        await articles.rollback(ctx, ben, faq["_id"], 1)  # already that content
    revs = await articles.revisions(ctx, tid, faq["_id"])
    assert (revs[-1]["action"], revs[-1]["note"]) == ("rolled_back", "rolled back to version 1")
    assert not (await articles.diff(ctx, tid, faq["_id"], 1, 3))["fields"]["body"]["changed"]
    # discarding the draft keeps the live content
    kept = await articles.discard_draft(ctx, ann, faq["_id"])
    assert kept["draft"] is None and kept["body"] == FAQ["body"]


async def test_attachments_limits_and_tenancy(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    tid, other = await make_tenant(ctx), await make_tenant(ctx)
    ann = person(tid, "ann")
    art = await articles.create(ctx, ann, {"title": "Manual", "body": "See the PDF."})
    theirs = await articles.create(ctx, person(other, "eve"), {"title": "Manual", "body": "x"})
    with_file = await articles.add_attachment(
        ctx, ann, art["_id"], "../../etc/guide.pdf", "application/pdf", b"%PDF-1"
    )
    item = with_file["attachments"][0]
    assert (item["filename"], item["size"], item["content_type"]) == ("guide.pdf", 6, "application/pdf")
    entry, data = await articles.load_attachment(ctx, tid, art["_id"], item["file_id"])
    assert data == b"%PDF-1" and entry["filename"] == "guide.pdf"
    # not through another tenant, nor through another article
    with pytest.raises(NotFound):
        await articles.load_attachment(ctx, other, art["_id"], item["file_id"])
    with pytest.raises(NotFound):
        await articles.load_attachment(ctx, other, theirs["_id"], item["file_id"])
    with pytest.raises(NotFound):
        await articles.load_attachment(ctx, tid, art["_id"], "not-an-id")
    monkeypatch.setattr(articles, "MAX_ATTACHMENT_BYTES", 10)
    with pytest.raises(ArticleError, match="at most"):
        await articles.add_attachment(ctx, ann, art["_id"], "big.bin", "x", b"x" * 11)
    with pytest.raises(ArticleError, match="empty"):
        await articles.add_attachment(ctx, ann, art["_id"], "e.bin", "x", b"")
    monkeypatch.setattr(articles, "MAX_ATTACHMENTS", 1)
    with pytest.raises(ArticleError, match="attachments per article"):
        await articles.add_attachment(ctx, ann, art["_id"], "two.txt", "text/plain", b"2")
    removed = await articles.remove_attachment(ctx, ann, art["_id"], item["file_id"])
    assert removed["attachments"] == []
    with pytest.raises(NotFound):
        await articles.load_attachment(ctx, tid, art["_id"], item["file_id"])
    actions = [r["action"] for r in await articles.revisions(ctx, tid, art["_id"])]
    assert actions == ["created", "attached", "detached"]


CORPUS: list[tuple[dict[str, Any], str]] = [
    ({**FAQ, "slug": "reset-router"}, "faq"),
    (
        {
            "slug": "pay-bill",
            "title": "如何缴纳话费",
            "body": "- 营业厅\n- 网上营业厅\n\n=注意, 月底前缴费",
            "questions": ["怎么交话费", "话费在哪里交"],
            "category": "billing",
            "tags": ["话费", "缴费"],
            "locale": "zh",
        },
        "faq",
    ),
    (
        {
            "slug": "coverage",
            "title": "Coverage map",
            "body": "-1 dBm is weak.\n+ and @ are fine: =SUM(A1)",
            "questions": [],
            "category": None,
            "tags": [],
            "locale": "en",
        },
        "article",
    ),
]


async def _seed(ctx: AppContext, who: Principal) -> None:
    for data, kind in CORPUS:
        await articles.create(ctx, who, data, kind=kind, slug=data["slug"])


async def _export_map(ctx: AppContext, tenant_id: str) -> dict[str, Any]:
    out = {}
    async for a in ctx.db.kb_articles.find({"tenant_id": tenant_id}):
        out[a["slug"]] = (articles.kind_of(a), articles.pending(a)[0])
    return out


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "md"])
async def test_import_export_round_trip(ctx: AppContext, fmt: str) -> None:
    source, target = await make_tenant(ctx), await make_tenant(ctx)
    await _seed(ctx, person(source, "ann"))
    data = await kb_transfer.export_articles(ctx, source, fmt)
    name = {"csv": "kb.csv", "xlsx": "kb.xlsx", "md": "kb.zip"}[fmt]
    ben = person(target, "ben")
    report = await kb_transfer.import_articles(ctx, ben, data, name)
    assert report.to_dict()["counts"] == {
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "invalid": 0,
        "published": 0,
    }
    assert await _export_map(ctx, target) == await _export_map(ctx, source)
    imported = await ctx.db.kb_articles.find_one({"tenant_id": target, "slug": "pay-bill"})
    assert imported is not None and imported["status"] == "draft"
    revs = await articles.revisions(ctx, target, imported["_id"])
    assert [(r["action"], r["by_name"]) for r in revs] == [("imported", "Ben")]
    # a second import of the same file changes nothing
    again = await kb_transfer.import_articles(ctx, ben, data, name)
    assert again.to_dict()["counts"]["unchanged"] == 3
    # exporting never writes formulas a spreadsheet would run
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
        assert next(r for r in rows if r["slug"] == "coverage")["body"].startswith("'-1 dBm")
    if fmt == "xlsx":
        sheet = load_workbook(io.BytesIO(data)).worksheets[0]
        assert all(c.data_type == "s" for row in sheet.iter_rows(min_row=2) for c in row if c.value)


def _xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


async def test_import_reports_bad_rows_and_updates(ctx: AppContext) -> None:
    tid = await make_tenant(ctx)
    ann, ben = person(tid, "ann"), person(tid, "ben")
    await _seed(ctx, ann)
    published = await ctx.db.kb_articles.find_one({"tenant_id": tid, "slug": "reset-router"})
    assert published is not None
    await articles.submit(ctx, ann, published["_id"])
    await articles.publish(ctx, ben, published["_id"])

    header = ["slug", "kind", "title", "body", "questions", "category", "tags", "locale"]
    sheet = _xlsx(
        [
            header,
            [
                "reset-router",
                "faq",
                "How do I reset my router?",
                "New answer",
                "Reset? | Reboot?",
                "",
                "",
                "en",
            ],
            ["", "faq", "No phrasings", "Answer", "", "", "", "en"],
            ["bad slug!", "article", "T", "B", "", "", "", "en"],
            ["fresh", "article", "Fresh", "Body", "", "", "a, b", "fr"],
            ["coverage", "faq", "Coverage map", "x", "Q?", "", "", "en"],
            ["new-one", "", "New one", "Body", "Where?\nWhen?", "misc", "a|b", "zh"],
            ["new-one", "", "New one again", "Body", "", "", "", "en"],
        ]
    )
    report = (await kb_transfer.import_articles(ctx, ben, sheet, "kb.xlsx")).to_dict()
    assert [e["slug"] for e in report["updated"]] == ["reset-router"]
    assert [e["slug"] for e in report["created"]] == ["new-one"]
    reasons = {e["row"]: e["reason"] for e in report["invalid"]}
    assert set(reasons) == {"row 3", "row 4", "row 5", "row 6", "row 8"}
    assert "question" in reasons["row 3"] and "slug" in reasons["row 4"] and "locale" in reasons["row 5"]
    assert "is an article" in reasons["row 6"] and "row 7" in reasons["row 8"]
    # the published FAQ keeps its live answer; the import is its draft
    after = await ctx.db.kb_articles.find_one({"_id": published["_id"]})
    assert after is not None and after["body"] == FAQ["body"]
    assert after["draft"]["body"] == "New answer" and after["draft"]["questions"] == ["Reset?", "Reboot?"]
    new_one = await ctx.db.kb_articles.find_one({"tenant_id": tid, "slug": "new-one"})
    assert new_one is not None and (new_one["kind"], new_one["tags"]) == ("faq", ["a", "b"])

    # publishing on import: refused for editors while review is required, allowed for admins
    md = _zip(
        {
            "docs/wifi.md": "---\ntitle: Wi-Fi password\ntags: [wifi]\n---\n\nOn the sticker.\n",
            "docs/heading.md": "# From the heading\n\nBody text.\n",
            "docs/broken.md": "---\ntitle: [unclosed\n---\nx",
            "__MACOSX/._wifi.md": "junk",
            "notes.txt": "ignored",
        }
    )
    with pytest.raises(Forbidden):
        await kb_transfer.import_articles(ctx, ben, md, "docs.zip", publish=True)
    root = person(tid, "root", "admin")
    report = (await kb_transfer.import_articles(ctx, root, md, "docs.zip", publish=True)).to_dict()
    assert sorted(e["slug"] for e in report["created"]) == ["heading", "wifi"]
    assert sorted(report["published"]) == ["heading", "wifi"]
    assert [e["row"] for e in report["invalid"]] == ["docs/broken.md"]
    heading = await ctx.db.kb_articles.find_one({"tenant_id": tid, "slug": "heading"})
    assert heading is not None and (heading["title"], heading["body"]) == ("From the heading", "Body text.")
    assert await slugs_found(ctx, tid, "wifi password") == ["wifi"]

    with pytest.raises(kb_transfer.TransferError):
        await kb_transfer.import_articles(ctx, ben, b"nope", "kb.xlsx")
    with pytest.raises(kb_transfer.TransferError):
        await kb_transfer.import_articles(ctx, ben, b"a,b\n1,2\n", "kb.csv")
    with pytest.raises(kb_transfer.TransferError):
        await kb_transfer.import_articles(ctx, ben, b"x", "kb.pdf")
    gb = "slug,title,body\nzh-gb,中文标题,正文\n".encode("gb18030")
    assert (await kb_transfer.import_articles(ctx, ben, gb, "kb.csv")).to_dict()["counts"]["created"] == 1


async def test_editor_api_roles_and_tenancy(hub_nobot: HubProcess, tenant_in: TenantFactory) -> None:
    hub = hub_nobot
    roles = {"ann": ["editor"], "ben": ["editor"], "sam": ["supervisor"], "amy": ["agent"]}
    t = await tenant_in(hub, agents={n: ["general"] for n in roles}, roles=roles)
    o = await tenant_in(hub, agents={"eve": ["general"]}, roles={"eve": ["editor", "admin"]})
    people = {n: Agent(hub.url, t["slug"], f"{n}@t.test") for n in roles}
    eve = Agent(hub.url, o["slug"], "eve@t.test")
    for client in [*people.values(), eve]:
        await client.login()
    ann, ben, sam, amy = (people[n].http for n in ("ann", "ben", "sam", "amy"))
    try:
        created = await ann.post("/api/kb/articles", json={"kind": "faq", **FAQ})
        assert created.status_code == 201, created.text
        art = created.json()
        aid = art["id"]
        assert art["actions"] == ["edit", "submit", "archive"] and art["pending"]["status"] == "draft"
        assert (await sam.post("/api/kb/articles", json=FAQ)).status_code == 403
        assert (await amy.get("/api/kb/articles")).json() == []
        assert (await amy.get(f"/api/kb/articles/{aid}")).status_code == 404
        assert (await eve.http.get(f"/api/kb/articles/{aid}")).status_code == 404
        assert (await eve.http.post(f"/api/kb/articles/{aid}/submit")).status_code == 404
        bad = await ann.post("/api/kb/articles", json={"kind": "faq", "title": "x", "body": "y"})
        assert bad.status_code == 422 and "question" in bad.json()["detail"]

        assert (await ann.post(f"/api/kb/articles/{aid}/submit")).status_code == 200
        mine = await ann.get(f"/api/kb/articles/{aid}")
        assert "publish" not in mine.json()["actions"]
        refused = await ann.post(f"/api/kb/articles/{aid}/publish")
        assert refused.status_code == 403 and "another editor" in refused.json()["detail"]
        assert "publish" in (await ben.get(f"/api/kb/articles/{aid}")).json()["actions"]
        published = await ben.post(f"/api/kb/articles/{aid}/publish")
        assert published.status_code == 200 and published.json()["status"] == "published"

        # readers see the published content rendered, not the draft an editor starts
        edit = await ann.put(f"/api/kb/articles/{aid}", json={"body": "New **answer**", "base_version": 1})
        assert edit.status_code == 200 and edit.json()["pending"]["version"] == 2
        stale = await ben.put(f"/api/kb/articles/{aid}", json={"body": "Other", "base_version": 1})
        assert stale.status_code == 409
        seen = (await amy.get(f"/api/kb/articles/{aid}")).json()
        assert seen["body"] == FAQ["body"] and "<strong>reset</strong>" in seen["html"]
        assert "draft" not in seen and "authors" not in seen
        listed = (await amy.get("/api/kb/articles", params={"q": "reset router"})).json()
        assert [x["id"] for x in listed] == [aid]
        drafts = (await ann.get("/api/kb/articles", params={"status": "draft"})).json()
        assert [x["id"] for x in drafts] == [aid] and drafts[0]["has_draft"]
        assert (await amy.get(f"/api/kb/articles/{aid}/revisions")).status_code == 403
        revs = (await ann.get(f"/api/kb/articles/{aid}/revisions")).json()
        assert [r["action"] for r in revs] == ["created", "submitted", "published", "edited"]
        diff = (await ann.get(f"/api/kb/articles/{aid}/diff", params={"a": 1, "b": 2})).json()
        assert diff["fields"]["body"]["changed"] and not diff["fields"]["title"]["changed"]
        rolled = await ben.post(f"/api/kb/articles/{aid}/rollback", json={"version": 1})
        assert rolled.status_code == 200 and rolled.json()["pending"]["content"]["body"] == FAQ["body"]
        assert rolled.json()["pending"]["version"] == 3

        # attachments: editors upload; readers download published ones; other tenants get 404
        up = await ann.post(
            f"/api/kb/articles/{aid}/attachments", files={"file": ("steps.txt", b"1. unplug", "text/plain")}
        )
        assert up.status_code == 201, up.text
        fid = up.json()["attachments"][0]["file_id"]
        got = await amy.get(f"/api/kb/articles/{aid}/attachments/{fid}")
        assert got.status_code == 200 and got.content == b"1. unplug"
        assert "attachment" in got.headers["content-disposition"]
        assert (await eve.http.get(f"/api/kb/articles/{aid}/attachments/{fid}")).status_code == 404
        assert (await amy.delete(f"/api/kb/articles/{aid}/attachments/{fid}")).status_code == 403

        # preview never passes raw HTML through
        html = (await ann.post("/api/kb/preview", json={"markdown": "<script>x</script> *hi*"})).json()[
            "html"
        ]
        assert "<script>" not in html and "<em>hi</em>" in html

        # import and export through the API
        sheet = (
            "slug,kind,title,body,questions,category,tags,locale\n"
            "bill,faq,Bill,Pay it,When?|How?,billing,,en\n"
        )
        report = await ann.post("/api/kb/import", files={"file": ("kb.csv", sheet.encode(), "text/csv")})
        assert report.status_code == 200 and report.json()["counts"]["created"] == 1
        forced = await ann.post(
            "/api/kb/import", files={"file": ("kb.csv", sheet.encode(), "text/csv")}, data={"publish": "true"}
        )
        assert forced.status_code == 403
        exported = await ann.get("/api/kb/export", params={"format": "csv", "kind": "faq"})
        assert exported.status_code == 200 and "bill" in exported.text and "reset" in exported.text
        assert (await amy.get("/api/kb/export")).status_code == 403
        cats = (await ann.get("/api/kb/categories")).json()
        assert {c["name"] for c in cats} == {"internet", "billing"}
        assert [c["name"] for c in (await amy.get("/api/kb/categories")).json()] == ["internet"]

        # archive: gone for readers; admins change the review rule
        assert (await ann.post(f"/api/kb/articles/{aid}/archive")).status_code == 200
        assert (await amy.get(f"/api/kb/articles/{aid}")).status_code == 404
        assert (await ann.put("/api/kb/settings", json={"require_review": False})).status_code == 403
        assert (await eve.http.put("/api/kb/settings", json={"require_review": False})).json()[
            "require_review"
        ] is False
        assert (await ann.get("/api/kb/settings")).json()["require_review"] is True
        assert (await ann.get("/kb", follow_redirects=False)).status_code == 200
    finally:
        for client in [*people.values(), eve]:
            await client.close()


async def test_one_call_publish_writes_revisions_and_stays_editable(ctx: AppContext) -> None:
    from knowledge.kb import upsert_article

    tid = await make_tenant(ctx)
    first = await upsert_article(ctx, tid, "Opening hours", "9 to 5", ["hours"])
    again = await upsert_article(
        ctx, tid, "Opening hours", "8 to 6", ["hours"], kind="faq", questions=["When are you open?"]
    )
    assert again["_id"] == first["_id"] and (again["version"], again["status"]) == (2, "published")
    assert await slugs_found(ctx, tid, "opening hours") == ["opening-hours"]
    edited = await articles.update(ctx, person(tid, "ann"), first["_id"], {"body": "7 to 7"})
    assert edited["draft"]["version"] == 3 and edited["body"] == "8 to 6"
    revs = await articles.revisions(ctx, tid, first["_id"])
    assert [(r["action"], r["version"], r["by_name"]) for r in revs] == [
        ("published", 1, "system"),
        ("published", 2, "system"),
        ("edited", 3, "Ann"),
    ]


async def test_articles_from_before_revisions_get_a_baseline(ctx: AppContext) -> None:
    tid = await make_tenant(ctx)
    legacy_id = new_id()
    await ctx.db.kb_articles.insert_one(
        {"_id": legacy_id, "tenant_id": tid, "slug": "old", "title": "Old", "body": "Old text", "tags": []}
    )
    edited = await articles.update(ctx, person(tid, "ann"), legacy_id, {"body": "New text"})
    assert edited["draft"]["version"] == 2 and edited["body"] == "Old text"  # it was published
    revs = await articles.revisions(ctx, tid, legacy_id)
    assert [(r["seq"], r["version"], r["action"], r["by_name"]) for r in revs] == [
        (0, 1, "imported", "system"),
        (1, 2, "edited", "Ann"),
    ]
    assert (await articles.diff(ctx, tid, legacy_id, 1, 2))["fields"]["body"]["changed"]


async def test_simultaneous_saves_one_wins(ctx: AppContext) -> None:
    tid = await make_tenant(ctx)
    ann, ben = person(tid, "ann"), person(tid, "ben")
    art = await articles.create(ctx, ann, {"title": "Roaming", "body": "v1"})
    results = await asyncio.gather(
        articles.update(ctx, ann, art["_id"], {"body": "by ann"}),
        articles.update(ctx, ben, art["_id"], {"body": "by ben"}),
        return_exceptions=True,
    )
    conflicts = [r for r in results if isinstance(r, Conflict)]
    saved = [r for r in results if isinstance(r, dict)]
    assert len(saved) >= 1 and len(saved) + len(conflicts) == 2
    revs = await articles.revisions(ctx, tid, art["_id"])
    assert [r["seq"] for r in revs] == list(range(1, len(revs) + 1))  # no lost or doubled change
    final = await articles.get(ctx, tid, art["_id"])
    assert final["body"] == revs[-1]["body"] and final["version"] == revs[-1]["version"]
