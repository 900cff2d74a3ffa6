"""webchat package."""
