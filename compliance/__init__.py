"""Compliance: sanctions screening, transaction monitoring, alerts, cases and reports."""
