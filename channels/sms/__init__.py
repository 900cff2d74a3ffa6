"""SMS through Twilio Messaging: inbound webhook, keywords, outbound via the outbox."""
