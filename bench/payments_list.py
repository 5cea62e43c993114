"""The payments list page at 1,000,000 payments: p50/p95 per filter, through the Django test client.

Fills a separate database (``bench_payments`` on the server of DATABASE_URL, default
postgres://postgres@127.0.0.1:5432) with payments spread over the last 365 days, inserted in
creation order with COPY, plus 20,000 customers; a database already holding that many payments is
reused. Then a signed-in ops user (with the session records of a passed second factor) requests
/payments/ with typical filters and searches, several requests each, with persistent database
connections as in production (CONN_MAX_AGE=60). ``--explain`` prints the plan of each filter's
page query.

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/payments_list.py [--requests 50] [--explain]

Run ``--fresh`` to drop and refill the database. The indexes are those of the migrations.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

# The index proposed for Payment.Meta.indexes, created here under a bench-only name.
CUSTOMERS = 20_000
PAYER_EMAILS = 300_000
CURRENCIES = [("USD", 70), ("EUR", 15), ("GBP", 8), ("JPY", 4), ("CHF", 2), ("KWD", 1)]
EXPONENT = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "CHF": 2, "KWD": 3}
STATUSES = [
    ("succeeded", 850),
    ("failed", 70),
    ("canceled", 30),
    ("processing", 20),
    ("requires_action", 15),
    ("pending", 10),
    ("requires_capture", 5),
]
FAILURE_CODES = ["card_declined", "insufficient_funds", "expired_card", "do_not_honor", "2001", "2044"]
BRANDS = ["visa", "mastercard", "amex"]


def server_url(database: str) -> str:
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def ensure_database(name: str, *, fresh: bool) -> None:
    import psycopg

    with psycopg.connect(server_url("postgres"), autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')


def weighted(choices: list[tuple[str, int]], count: int, rng: random.Random) -> list[str]:
    values, weights = zip(*choices, strict=True)
    return rng.choices(values, weights=weights, k=count)


def fill(rows: int, rng: random.Random) -> None:
    """COPY ``rows`` payments (creation order, one year up to now) and the customers they name."""
    from django.db import connection
    from tqdm import tqdm

    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        # The ledger refuses TRUNCATE (reached by CASCADE) unless this is set, as in the test suite.
        cursor.execute("SET fintech.allow_audit_truncate = 'on'")
        cursor.execute("SELECT count(*) FROM core_customer")
        if cursor.fetchone()[0] < CUSTOMERS:
            cursor.execute("TRUNCATE core_customer CASCADE")
            copy = "COPY core_customer (kind, legal_name, nationality, country_of_residence, email, phone,"
            copy += " risk_rating, kyc_status, status, tax_id_index, created_at, updated_at) FROM STDIN"
            with cursor.cursor.copy(copy) as writer:
                for number in range(CUSTOMERS):
                    created = now - timedelta(days=400 - number * 400 / CUSTOMERS)
                    writer.write_row(
                        ("person", f"Customer {number}", "GB", "GB", f"customer{number}@example.test", "",
                         "low", "verified", "active", "", created, created)
                    )  # fmt: skip
        cursor.execute("SELECT min(id), max(id) FROM core_customer")
        first_customer, last_customer = cursor.fetchone()
        cursor.execute("TRUNCATE payments_payment CASCADE")
        columns = (
            "public_id, gateway, gateway_payment_id, gateway_charge_id, customer_id, amount_minor, currency,"
            " amount_captured_minor, amount_refunded_minor, fee_minor, status, status_event_at, failure_code,"
            " failure_message, card_brand, card_last4, email, payer_name, payer_country, description,"
            " subscription_id, metadata,"
            " created_at, updated_at, succeeded_at"
        )
        start = now - timedelta(days=365)
        step = timedelta(days=365) / rows
        chunk = 50_000
        with (
            cursor.cursor.copy(f"COPY payments_payment ({columns}) FROM STDIN") as writer,
            tqdm(total=rows, unit="payment", desc="COPY payments") as progress,
        ):
            for offset in range(0, rows, chunk):
                count = min(chunk, rows - offset)
                gateways = weighted([("stripe", 65), ("braintree", 35)], count, rng)
                currencies = weighted(CURRENCIES, count, rng)
                statuses = weighted(STATUSES, count, rng)
                for index in range(count):
                    number = offset + index
                    created = start + step * number
                    gateway, currency, status = gateways[index], currencies[index], statuses[index]
                    units = math.exp(rng.uniform(0, math.log(5000)))  # 1 to 5,000 units, log-uniform
                    amount = max(1, int(units * 10 ** EXPONENT[currency]))
                    stripe = gateway == "stripe"
                    succeeded = status == "succeeded"
                    failed = status == "failed"
                    has_card = rng.random() < 0.95
                    writer.write_row(
                        (
                            f"pay_{rng.getrandbits(72):018x}",
                            gateway,
                            f"pi_{number:012d}" if stripe else f"bt{number:010d}",
                            f"ch_{number:012d}" if stripe and status != "pending" else "",
                            rng.randint(first_customer, last_customer) if rng.random() < 0.6 else None,
                            amount,
                            currency,
                            amount if succeeded else 0,
                            amount if succeeded and rng.random() < 0.02 else 0,
                            amount * 29 // 1000 if succeeded else 0,
                            status,
                            created,
                            rng.choice(FAILURE_CODES) if failed else "",
                            "Your card was declined." if failed else "",
                            rng.choice(BRANDS) if has_card else "",
                            f"{rng.randrange(10_000):04d}" if has_card else "",
                            f"payer{rng.randrange(PAYER_EMAILS)}@example.test",
                            "",
                            "",
                            "Order",
                            "",
                            "{}",
                            created,
                            created,
                            created if succeeded else None,
                        )
                    )
                progress.update(count)
        cursor.execute("ANALYZE payments_payment")
        cursor.execute("ANALYZE core_customer")


def sample(sql: str, count: int) -> list:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, [count])
        return [row[0] if len(row) == 1 else row for row in cursor.fetchall()]


def scenarios(count: int, rng: random.Random) -> list[tuple[str, list[dict[str, str]]]]:
    """(name, one query-parameter dict per request); values vary between requests where they can."""
    from payments.selectors import _encode_cursor

    # Random rows, read once with TABLESAMPLE (cheap) to search for values that exist.
    rows = sample(
        "SELECT id, created_at, public_id, gateway_payment_id, gateway_charge_id, email, customer_id"
        " FROM payments_payment TABLESAMPLE SYSTEM (1) WHERE customer_id IS NOT NULL"
        " AND gateway_charge_id <> '' ORDER BY random() LIMIT %s",
        count,
    )
    customer_emails = sample("SELECT email FROM core_customer ORDER BY random() LIMIT %s", count)
    today = datetime.now(UTC).date()

    def each(make) -> list[dict[str, str]]:
        return [make(index) for index in range(count)]

    def week(index: int) -> dict[str, str]:
        start = today - timedelta(days=rng.randrange(7, 360))
        return {"created_from": start.isoformat(), "created_to": (start + timedelta(days=6)).isoformat()}

    return [
        ("no filter, first page", each(lambda i: {})),
        ("no filter, deep cursor", each(lambda i: {"cursor": _encode_cursor("next", 0, rows[i][1:2] + rows[i][0:1])})),
        ("gateway=braintree", each(lambda i: {"gateway": "braintree"})),
        ("status=failed", each(lambda i: {"status": "failed"})),
        ("status=requires_capture (0.5%)", each(lambda i: {"status": "requires_capture"})),
        ("currency=EUR", each(lambda i: {"currency": "EUR"})),
        ("currency=KWD (1%)", each(lambda i: {"currency": "KWD"})),
        ("created in a 7-day window", each(week)),
        ("USD, amount 100.00-200.00", each(lambda i: {"currency": "USD", "amount_min": "100", "amount_max": "200"})),
        ("KWD, amount >= 4000.000 (0.01%)", each(lambda i: {"currency": "KWD", "amount_min": "4000"})),
        (
            "CHF, amount 4000.00-4100.00 (0.01%)",
            each(lambda i: {"currency": "CHF", "amount_min": "4000", "amount_max": "4100"}),
        ),
        (
            "stripe+succeeded+USD, last 30 days",
            each(
                lambda i: {
                    "gateway": "stripe",
                    "status": "succeeded",
                    "currency": "USD",
                    "created_from": (today - timedelta(days=30)).isoformat(),
                }
            ),
        ),
        ("failed+JPY, 7-day window", each(lambda i: {"status": "failed", "currency": "JPY", **week(i)})),
        ("search: gateway payment id", each(lambda i: {"q": rows[i][3]})),
        ("search: charge id", each(lambda i: {"q": rows[i][4]})),
        ("search: public id", each(lambda i: {"q": rows[i][2]})),
        ("search: payer email", each(lambda i: {"q": rows[i][5]})),
        ("search: customer id", each(lambda i: {"q": str(rows[i][6])})),
        ("search: customer email", each(lambda i: {"q": customer_emails[i]})),
        ("search: card last4", each(lambda i: {"q": f"{rng.randrange(10_000):04d}"})),
        ("search: last4 + braintree", each(lambda i: {"q": f"{rng.randrange(10_000):04d}", "gateway": "braintree"})),
    ]


def explain(params: dict[str, str]) -> str:
    """The plan of the page query the list runs for ``params`` (EXPLAIN ANALYZE, BUFFERS)."""
    from payments import selectors
    from payments.views import PaymentFilterForm

    form = PaymentFilterForm(params)
    if not form.is_valid():
        raise SystemExit(f"{params}: {form.errors.as_text()}")
    rows = selectors.payments_filtered(form.filters())
    position = selectors._decode_cursor(params.get("cursor", ""), rows.model, selectors.PAYMENT_KEYS, 1)
    if position is not None:
        rows = rows.filter(selectors._beyond(selectors.PAYMENT_KEYS, position.key, older=True))
    rows = rows.order_by("-created_at", "-id")[: selectors.PAGE_SIZE + 1]
    return rows.explain(analyze=True, buffers=True)


def signed_in_client():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from tests.utils import login_with_mfa

    user, _ = get_user_model().objects.get_or_create(username="bench-ops", defaults={"is_staff": True})
    user.groups.add(Group.objects.get(name="ops"))
    client = Client(HTTP_HOST="localhost")
    login_with_mfa(client, user)
    return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50, help="timed requests per filter (default 50)")
    parser.add_argument("--database", default="bench_payments")
    parser.add_argument("--fresh", action="store_true", help="drop and refill the database")
    parser.add_argument("--explain", action="store_true", help="print each filter's query plan")
    arguments = parser.parse_args()

    ensure_database(arguments.database, fresh=arguments.fresh)
    os.environ["DATABASE_URL"] = server_url(arguments.database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fintech.settings.test")
    import django
    from django.conf import settings

    django.setup()
    # Persistent connections, as production runs (the test settings close them after each request).
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 60
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    rng = random.Random(20261121)  # noqa: S311 - benchmark data, not secrets
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM payments_payment")
        present = cursor.fetchone()[0]
    if present != arguments.rows:
        started = time.monotonic()
        fill(arguments.rows, rng)
        print(f"filled {arguments.rows:,} payments in {time.monotonic() - started:.0f} s")
    else:
        print(f"reusing {present:,} payments in database {arguments.database}")
    client = signed_in_client()
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {version}")
    print(f"{arguments.requests} requests per filter after 3 warm-up requests; times include rendering")
    print(f"load average before: {os.getloadavg()[0]:.1f} (other processes on the machine skew the times)")
    print(f"{'filter':<40}{'rows':>6}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    worst = 0.0
    for name, requests in scenarios(arguments.requests, rng):
        for params in requests[:3]:
            client.get("/payments/", params)
        timings, shown = [], 0
        for params in requests:
            started = time.perf_counter()
            response = client.get("/payments/", params)
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or b'class="field-error"' in response.content:
                raise SystemExit(f"{name}: {params} answered {response.status_code} or with a form error")
            shown += response.content.count(b'<a href="/payments/pay_')
        p50 = statistics.median(timings)
        p95 = statistics.quantiles(timings, n=20, method="inclusive")[-1]
        worst = max(worst, p95)
        print(f"{name:<40}{shown / len(requests):>6.0f}{p50:>9.1f}{p95:>9.1f}{max(timings):>9.1f}")
        if arguments.explain:
            print("\n".join(f"    {line}" for line in explain(requests[0]).splitlines()))
    print(f"worst p95: {worst:.1f} ms (target < 150 ms); load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
