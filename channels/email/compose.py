"""Building outbound mail: text + HTML parts and our own Message-IDs.

Why our own ids: the Message-ID is derived from the stored message id, so it is known before
the send, threads the customer's reply back to the contact, and survives a crash.
"""

from __future__ import annotations

import html
from email.message import EmailMessage
from email.utils import formatdate

from hub.db import Doc


def message_id_for(key: str, our_address: str) -> str:
    domain = our_address.rsplit("@", 1)[-1] or "localhost"
    return f"<{key}@{domain}>"


def reply_subject(subject: str | None) -> str:
    subject = (subject or "").strip() or "Your message"
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def text_to_html(text: str) -> str:
    paragraphs = [html.escape(p).replace("\n", "<br>") for p in text.split("\n\n")]
    return "<html><body>" + "".join(f"<p>{p}</p>" for p in paragraphs) + "</body></html>"


def build(row: Doc) -> EmailMessage:
    """The MIME message for an outbox row (`meta`: from, subject, message_id, in_reply_to,
    references, html, headers — extra headers such as List-Unsubscribe — and attachments,
    `{filename, content_type, data}` each)."""
    meta = row.get("meta") or {}
    message = EmailMessage()
    message["From"] = meta["from"]
    message["To"] = row["to"]
    message["Subject"] = meta.get("subject") or "Your message"
    message["Message-ID"] = meta["message_id"]
    message["Date"] = formatdate(localtime=False, usegmt=True)
    if meta.get("in_reply_to"):
        message["In-Reply-To"] = meta["in_reply_to"]
    if meta.get("references"):
        message["References"] = " ".join(meta["references"])
    for name, value in (meta.get("headers") or {}).items():
        message[name] = value
    message.set_content(row["body"])
    message.add_alternative(meta.get("html") or text_to_html(row["body"]), subtype="html")
    for attachment in meta.get("attachments") or []:
        maintype, _, subtype = str(attachment.get("content_type") or "application/octet-stream").partition(
            "/"
        )
        message.add_attachment(
            bytes(attachment["data"]),
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=str(attachment.get("filename") or "attachment"),
        )
    return message
