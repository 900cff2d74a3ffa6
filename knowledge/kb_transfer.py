"""Bulk import and export of articles and FAQ entries: CSV, Excel, and a zip of Markdown files.

One row (or file) per article: slug, kind, title, body, questions (several phrasings separated
by new lines or '|'), category, tags (',' or '|'), locale, status. Markdown files carry the
same fields in a YAML front matter between `---` lines, the body after it.

Import goes through the editor workflow (knowledge/articles.py) with the revision action
`imported`: a new slug creates a draft, a known slug saves a new version (a draft beside the
live content when published), unchanged content is left alone; with `publish` (admins, or
editors when the tenant does not require review) the rows are published too. The status
column is only informative on import. Export writes what the editor sees: the pending
content (the draft if there is one) with its status.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml
from openpyxl import Workbook, load_workbook

from hub.auth import Principal
from hub.context import AppContext
from hub.db import Doc
from knowledge import articles
from knowledge.articles import ArticleError, Forbidden

COLUMNS = ("slug", "kind", "title", "body", "questions", "category", "tags", "locale", "status")
FORMATS = ("csv", "xlsx", "md")
MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_UNZIPPED_BYTES = 60 * 1024 * 1024  # a zip bomb stops here
MAX_ROWS = 5000
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "md": "application/zip",
}
# Spreadsheets run cells starting with these as formulas: exported text gets a leading quote
# (a Markdown list item "- x" is left alone), which import takes off again.
_FORMULA = re.compile(r"^(?:[=+@\t\r]|-(?! ))")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")


class TransferError(ValueError):
    """The file as a whole cannot be read; the message says why."""


@dataclass
class ImportReport:
    created: list[Doc] = field(default_factory=list)
    updated: list[Doc] = field(default_factory=list)
    unchanged: list[Doc] = field(default_factory=list)
    invalid: list[Doc] = field(default_factory=list)
    published: list[str] = field(default_factory=list)

    def to_dict(self) -> Doc:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "invalid": self.invalid,
            "published": self.published,
            "counts": {
                "created": len(self.created),
                "updated": len(self.updated),
                "unchanged": len(self.unchanged),
                "invalid": len(self.invalid),
                "published": len(self.published),
            },
        }


def detect_format(filename: str) -> str:
    name = filename.lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".xlsx", ".xlsm")):
        return "xlsx"
    if name.endswith(".zip"):
        return "md"
    raise TransferError("send a .csv, .xlsx or .zip (of Markdown files)")


def _unquote(value: str) -> str:
    return value[1:] if value.startswith("'") and _FORMULA.match(value[1:]) else value


def _quote(value: str) -> str:
    return "'" + value if _FORMULA.match(value) else value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _unquote(str(value))


def split_questions(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [q.strip() for q in re.split(r"[\n|]", _text(value)) if q.strip()]


def split_tags(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [t.strip() for t in re.split(r"[,|\n]", _text(value)) if t.strip()]


def _row(values: dict[str, Any]) -> Doc:
    """A row's fields, normalised (header names are case-insensitive)."""
    low = {str(k).strip().lower(): v for k, v in values.items() if k is not None}
    return {
        "slug": _text(low.get("slug")).strip().lower(),
        "kind": _text(low.get("kind")).strip().lower(),
        "title": _text(low.get("title")).strip(),
        "body": _text(low.get("body")),
        "questions": split_questions(low.get("questions")),
        "category": _text(low.get("category")).strip() or None,
        "tags": split_tags(low.get("tags")),
        "locale": _text(low.get("locale")).strip() or "en",
    }


def _read_csv(data: bytes) -> list[tuple[str, Doc]]:
    for encoding in ("utf-8-sig", "gb18030"):  # Chinese Excel saves CSV as GB18030
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise TransferError("the CSV is neither UTF-8 nor GB18030 text")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or "title" not in [f.strip().lower() for f in reader.fieldnames]:
        raise TransferError(f"the first row must name the columns ({', '.join(COLUMNS)})")
    return [(f"row {i}", _row(values)) for i, values in enumerate(reader, start=2)]


def _read_xlsx(data: bytes) -> list[tuple[str, Doc]]:
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken file
        raise TransferError("the file is not a readable Excel workbook") from exc
    try:
        rows = workbook.worksheets[0].iter_rows(values_only=True)
        header = next(rows, None)
        names = [str(h).strip().lower() if h is not None else "" for h in header or ()]
        if "title" not in names:
            raise TransferError(f"the first row must name the columns ({', '.join(COLUMNS)})")
        out: list[tuple[str, Doc]] = []
        for i, values in enumerate(rows, start=2):
            if all(v is None or str(v).strip() == "" for v in values):
                continue
            out.append((f"row {i}", _row(dict(zip(names, values, strict=False)))))
            if len(out) > MAX_ROWS:
                break
        return out
    finally:
        workbook.close()


def parse_markdown(text: str) -> Doc:
    """Front matter (YAML between `---` lines) and body of one Markdown file."""
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    meta: Any = {}
    body = text
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end < 0:
            raise ArticleError("the front matter has no closing '---'")
        try:
            meta = yaml.safe_load(text[4:end]) or {}
        except yaml.YAMLError as exc:
            raise ArticleError(f"the front matter is not valid YAML: {exc}") from exc
        if not isinstance(meta, dict):
            raise ArticleError("the front matter must be 'key: value' lines")
        body = text[end + 4 :].split("\n", 1)[1] if "\n" in text[end + 4 :] else ""
    body = body.lstrip("\n")
    if not meta.get("title"):
        heading = re.match(r"#\s+(.+)\n?", body)
        if heading:
            meta["title"], body = heading.group(1).strip(), body[heading.end() :].lstrip("\n")
    return _row({**meta, "body": body})


def _read_zip(data: bytes) -> list[tuple[str, Doc]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise TransferError("the file is not a zip archive") from exc
    with archive:
        members = [
            m
            for m in archive.infolist()
            if not m.is_dir()
            and m.filename.lower().endswith(".md")
            and not any(part.startswith((".", "__MACOSX")) for part in PurePosixPath(m.filename).parts)
        ]
        if not members:
            raise TransferError("the zip holds no .md files")
        if len(members) > MAX_ROWS:
            raise TransferError(f"at most {MAX_ROWS} files per import")
        if sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
            raise TransferError("the Markdown files are too large together (60 MB unpacked at most)")
        out: list[tuple[str, Doc]] = []
        for member in sorted(members, key=lambda m: m.filename):
            label = member.filename
            try:
                row = parse_markdown(archive.read(member).decode("utf-8"))
            except UnicodeDecodeError:
                out.append((label, {"error": "not UTF-8 text"}))
                continue
            except ArticleError as exc:
                out.append((label, {"error": str(exc)}))
                continue
            if not row["slug"]:
                stem = PurePosixPath(member.filename).stem.lower()
                row["slug"] = stem if _SLUG.match(stem) else ""
            out.append((label, row))
        return out


def read_rows(data: bytes, fmt: str) -> list[tuple[str, Doc]]:
    """(where, fields) for each row or file; a row that could not be read holds `error`."""
    if len(data) > MAX_IMPORT_BYTES:
        raise TransferError("the file is larger than 20 MB; split it")
    rows = {"csv": _read_csv, "xlsx": _read_xlsx, "md": _read_zip}[fmt](data)
    if len(rows) > MAX_ROWS:
        raise TransferError(f"at most {MAX_ROWS} rows per import")
    return rows


async def may_publish_on_import(ctx: AppContext, who: Principal) -> bool:
    return who.has_any("admin") or (
        who.has_any("editor") and not await articles.require_review(ctx, who.tenant_id)
    )


async def import_articles(
    ctx: AppContext, who: Principal, data: bytes, filename: str, *, publish: bool = False
) -> ImportReport:
    """Create or update an article per row; bad rows are reported and skipped."""
    fmt = detect_format(filename)
    if publish and not await may_publish_on_import(ctx, who):
        raise Forbidden("publishing on import needs an admin (or a tenant without review)")
    report = ImportReport()
    seen: dict[str, str] = {}
    for where, row in read_rows(data, fmt):
        if "error" in row:
            report.invalid.append({"row": where, "reason": row["error"]})
            continue
        try:
            entry = await _import_row(ctx, who, row, seen, where, report)
            if publish and entry is not None:
                article = await articles.get(ctx, who.tenant_id, entry["id"])
                if articles.pending(article)[2] in ("draft", "in_review"):
                    await articles.publish(ctx, who, entry["id"])
                    report.published.append(entry["slug"])
        except ArticleError as exc:
            report.invalid.append({"row": where, "reason": str(exc)})
    return report


async def _import_row(
    ctx: AppContext, who: Principal, row: Doc, seen: dict[str, str], where: str, report: ImportReport
) -> Doc | None:
    slug = row["slug"]
    if slug and not _SLUG.match(slug):
        raise ArticleError("a slug is 1-80 characters of a-z, 0-9 and '-'")
    if slug in seen:
        raise ArticleError(f"the slug {slug!r} is also in {seen[slug]}")
    existing = await ctx.db.kb_articles.find_one({"tenant_id": who.tenant_id, "slug": slug}) if slug else None
    kind = row["kind"] or (
        articles.kind_of(existing) if existing else ("faq" if row["questions"] else "article")
    )
    content = articles.clean_content(row, kind)
    if existing is None:
        article = await articles.create(ctx, who, content, kind=kind, slug=slug or None, action="imported")
        entry = {"row": where, "slug": article["slug"], "id": article["_id"]}
        report.created.append(entry)
    else:
        if articles.kind_of(existing) != kind:
            raise ArticleError(f"{slug!r} is an {articles.kind_of(existing)}, not an {kind}")
        article = await articles.update(ctx, who, existing["_id"], content, action="imported")
        entry = {"row": where, "slug": slug, "id": article["_id"]}
        changed = article.get("rev_seq") != existing.get("rev_seq")
        (report.updated if changed else report.unchanged).append(entry)
    seen[entry["slug"]] = where
    return entry


def export_row(article: Doc) -> Doc:
    content, version, status = articles.pending(article)
    return {
        "slug": article["slug"],
        "kind": articles.kind_of(article),
        **content,
        "status": status,
        "version": version,
    }


def _flat(row: Doc) -> list[str]:
    values = {
        **row,
        "questions": "\n".join(row["questions"]),
        "tags": ", ".join(row["tags"]),
        "category": row["category"] or "",
    }
    return [_quote(str(values[c])) for c in COLUMNS]


def to_csv(rows: Iterable[Doc]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(_flat(row))
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # the BOM makes Excel read UTF-8


def to_xlsx(rows: Iterable[Doc]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Knowledge base"
    sheet.append(list(COLUMNS))
    for row in rows:
        sheet.append(_flat(row))
    for cells in sheet.iter_rows(min_row=2):
        for cell in cells:
            cell.data_type = "s"  # text, never a formula
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def to_markdown(row: Doc) -> str:
    meta = {
        "title": row["title"],
        "kind": row["kind"],
        "category": row["category"],
        "tags": row["tags"],
        "locale": row["locale"],
        "status": row["status"],
        "questions": row["questions"],
    }
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=1000)
    return f"---\n{front}---\n\n{row['body']}\n" if row["body"] else f"---\n{front}---\n"


def to_markdown_zip(rows: Iterable[Doc]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for row in rows:
            archive.writestr(f"{row['slug']}.md", to_markdown(row))
    return buffer.getvalue()


async def export_articles(ctx: AppContext, tenant_id: str, fmt: str, query: Doc | None = None) -> bytes:
    """The tenant's articles matching `query` (extra filters) in one of FORMATS."""
    if fmt not in FORMATS:
        raise TransferError(f"format must be one of {', '.join(FORMATS)}")
    cursor = ctx.db.kb_articles.find(
        {**(query or {}), "tenant_id": tenant_id}, {"terms": 0, "term_freq": 0, "embedding": 0}
    ).sort("slug", 1)
    rows = [export_row(a) async for a in cursor]
    return {"csv": to_csv, "xlsx": to_xlsx, "md": to_markdown_zip}[fmt](rows)
