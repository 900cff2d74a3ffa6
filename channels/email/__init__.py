"""Email: outbound SMTP through the outbox, inbound by an SMTP receiver or IMAP, GridFS attachments."""
