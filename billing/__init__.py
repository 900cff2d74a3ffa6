"""Billing: rate tables, rating of calls and SMS, prepaid balances, top-ups and statements."""
