"""Local stand-ins for the Stripe, Braintree and Plaid HTTP APIs (demo, development, tests).

Never imported by the domain apps: they reach it over HTTP through the official SDKs.
"""
