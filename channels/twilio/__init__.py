"""Twilio channels: programmable voice (webhooks and Media Streams)."""
