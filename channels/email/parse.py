"""Inbound MIME parsing with the stdlib `email` package (policy=default).

Why never raise: a mail we cannot parse is still a customer writing to us, so malformed MIME
comes back as its raw text with a note rather than being dropped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

MAX_TEXT_CHARS = 100_000
MALFORMED_NOTE = "This mail could not be read as MIME; it is kept as received."
_TAGS = re.compile(r"<[^>]+>")
_MSGID = re.compile(r"<[^<>\s]+>")


@dataclass
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class ParsedMail:
    sender: str
    sender_name: str | None
    recipients: list[str]
    subject: str
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    text: str
    html: str | None
    attachments: list[Attachment] = field(default_factory=list)
    note: str | None = None
    date: str | None = None  # the Date header as written (the agent sees when it was sent)

    def thread_ids(self) -> list[str]:
        """Ids this mail answers, most specific first."""
        ids = [self.in_reply_to] if self.in_reply_to else []
        return ids + [r for r in reversed(self.references) if r not in ids]


def html_to_text(markup: str) -> str:
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", markup)
    return html.unescape(_TAGS.sub("", text)).strip()


def strip_quoted(text: str) -> str:
    """The new part of a reply: drops '>' lines and everything after 'On ... wrote:'."""
    kept: list[str] = []
    for line in text.splitlines():
        if re.match(r"^On .+wrote:\s*$", line.strip()):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line)
    return "\n".join(kept).strip()


def quote_blocks(text: str) -> list[tuple[bool, str]]:
    """The text in runs of (quoted, text), by the rules of `strip_quoted`, so the agent desk can
    collapse what the customer quoted and show what they wrote."""
    blocks: list[tuple[bool, list[str]]] = []
    rest_quoted = False
    for line in text.splitlines():
        if re.match(r"^On .+wrote:\s*$", line.strip()):
            rest_quoted = True
        quoted = rest_quoted or line.lstrip().startswith(">")
        if blocks and (blocks[-1][0] == quoted or not line.strip()):  # blank lines join the run
            blocks[-1][1].append(line)
        else:
            blocks.append((quoted, [line]))
    joined = [(quoted, "\n".join(lines).strip("\n")) for quoted, lines in blocks]
    return [(quoted, body) for quoted, body in joined if body.strip()]


def _header(message: EmailMessage, name: str) -> str:
    try:
        return str(message.get(name, "") or "")
    except Exception:  # a header the policy cannot decode
        return ""


def _body(message: EmailMessage) -> tuple[str, str | None]:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        raise ValueError("no text body")
    content = part.get_content()
    if part.get_content_subtype() == "html":
        return html_to_text(content), content
    html_part = message.get_body(preferencelist=("html",))
    return str(content), (str(html_part.get_content()) if html_part is not None else None)


def _attachments(message: EmailMessage) -> list[Attachment]:
    found = []
    for part in message.iter_attachments():
        if not isinstance(part, EmailMessage) or part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        found.append(Attachment(part.get_filename() or "attachment", part.get_content_type(), data))
    return found


def parse(raw: bytes) -> ParsedMail:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    name, sender = parseaddr(_header(message, "From"))
    reply_to = parseaddr(_header(message, "Reply-To"))[1]
    recipients = [a.lower() for _, a in getaddresses([_header(message, "To"), _header(message, "Cc")]) if a]
    mail = ParsedMail(
        sender=(reply_to or sender).strip().lower(),
        sender_name=name or None,
        recipients=recipients,
        subject=_header(message, "Subject").strip(),
        message_id=(_MSGID.findall(_header(message, "Message-ID")) or [None])[0],
        in_reply_to=(_MSGID.findall(_header(message, "In-Reply-To")) or [None])[0],
        references=_MSGID.findall(_header(message, "References")),
        text="",
        html=None,
        date=_header(message, "Date").strip() or None,
    )
    try:
        text, markup = _body(message)
        mail.text, mail.html = text.strip()[:MAX_TEXT_CHARS], markup
        mail.attachments = _attachments(message)
        if any(
            type(d).__name__ in ("StartBoundaryNotFoundDefect", "CloseBoundaryNotFoundDefect")
            for d in message.defects
        ):
            raise ValueError("broken multipart boundaries")
    except Exception:  # malformed MIME: keep the raw text, never drop the mail
        mail.text = raw.decode("utf-8", errors="replace")[:MAX_TEXT_CHARS]
        mail.html, mail.attachments, mail.note = None, [], MALFORMED_NOTE
    return mail
