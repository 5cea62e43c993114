"""Money: integer minor units plus an ISO 4217 currency code, converted in this module only.

The number of decimals of each currency comes from the ISO 4217 table below (JPY has 0, KWD 3),
never from a hard-coded 100. Conversions from decimal strings are exact: an amount with more
decimals than its currency allows is refused rather than rounded, because a gateway or a client
sending "10.005 USD" is a bug to surface, not a cent to invent. Display rounding is never needed,
since minor units are already exact.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

# Active ISO 4217 codes with their minor-unit exponent (ISO 4217 list one, 2024 edition).
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "AED",
            "AFN",
            "ALL",
            "AMD",
            "ANG",
            "AOA",
            "ARS",
            "AUD",
            "AWG",
            "AZN",
            "BAM",
            "BBD",
            "BDT",
            "BGN",
            "BMD",
            "BND",
            "BOB",
            "BRL",
            "BSD",
            "BTN",
            "BWP",
            "BYN",
            "BZD",
            "CAD",
            "CDF",
            "CHF",
            "CNY",
            "COP",
            "CRC",
            "CUP",
            "CVE",
            "CZK",
            "DKK",
            "DOP",
            "DZD",
            "EGP",
            "ERN",
            "ETB",
            "EUR",
            "FJD",
            "FKP",
            "GBP",
            "GEL",
            "GHS",
            "GIP",
            "GMD",
            "GTQ",
            "GYD",
            "HKD",
            "HNL",
            "HTG",
            "HUF",
            "IDR",
            "ILS",
            "INR",
            "IRR",
            "JMD",
            "KES",
            "KGS",
            "KHR",
            "KPW",
            "KYD",
            "KZT",
            "LAK",
            "LBP",
            "LKR",
            "LRD",
            "LSL",
            "MAD",
            "MDL",
            "MGA",
            "MKD",
            "MMK",
            "MNT",
            "MOP",
            "MRU",
            "MUR",
            "MVR",
            "MWK",
            "MXN",
            "MYR",
            "MZN",
            "NAD",
            "NGN",
            "NIO",
            "NOK",
            "NPR",
            "NZD",
            "PAB",
            "PEN",
            "PGK",
            "PHP",
            "PKR",
            "PLN",
            "QAR",
            "RON",
            "RSD",
            "RUB",
            "SAR",
            "SBD",
            "SCR",
            "SDG",
            "SEK",
            "SGD",
            "SHP",
            "SLE",
            "SOS",
            "SRD",
            "SSP",
            "STN",
            "SVC",
            "SYP",
            "SZL",
            "THB",
            "TJS",
            "TMT",
            "TOP",
            "TRY",
            "TTD",
            "TWD",
            "TZS",
            "UAH",
            "USD",
            "UYU",
            "UZS",
            "VES",
            "WST",
            "XCD",
            "YER",
            "ZAR",
            "ZMW",
            "ZWG",
        ],
        2,
    ),
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}

CURRENCY_CHOICES = sorted(_EXPONENTS)


class MoneyError(ValueError):
    """An unknown currency or an amount that does not fit the currency's minor units."""


def currency_code(value: str) -> str:
    """The upper-case ISO 4217 code of ``value`` (gateways send "usd"); unknown codes are refused."""
    code = (value or "").strip().upper()
    if code not in _EXPONENTS:
        raise MoneyError(f"unknown currency {value!r}: expected an ISO 4217 code such as USD or EUR")
    return code


def minor_unit_exponent(currency: str) -> int:
    return _EXPONENTS[currency_code(currency)]


def to_minor(amount: str | Decimal | int, currency: str) -> int:
    """``"10.50", "USD"`` → ``1050``; exact, or MoneyError."""
    exponent = minor_unit_exponent(currency)
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation as exc:
        raise MoneyError(f"{amount!r} is not a decimal amount") from exc
    if not value.is_finite():
        raise MoneyError(f"{amount!r} is not a finite amount")
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{amount} has more than {exponent} decimals, the minor unit of {currency_code(currency)}")
    return int(scaled)


def from_minor(amount_minor: int, currency: str) -> Decimal:
    """``1050, "USD"`` → ``Decimal("10.50")``."""
    exponent = minor_unit_exponent(currency)
    return Decimal(amount_minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_EVEN)


def format_money(amount_minor: int, currency: str) -> str:
    """``123456, "USD"`` → ``"1,234.56 USD"``, for pages."""
    return f"{from_minor(amount_minor, currency):,} {currency_code(currency)}"
