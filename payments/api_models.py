"""Models of the merchant REST API (API keys, idempotency records)."""
