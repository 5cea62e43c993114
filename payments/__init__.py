"""Payments: gateway webhooks, payments, refunds, disputes, the ledger and reconciliation."""
