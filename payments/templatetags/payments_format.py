"""Template filters of the payments pages: money in minor units, shown in the currency's units."""

from django import template

from fintech.core.money import MoneyError, format_money

register = template.Library()


@register.filter
def money(amount_minor: int | None, currency: str) -> str:
    """``{{ payment.amount_minor|money:payment.currency }}`` → ``"1,234.56 USD"``."""
    if amount_minor is None:
        return "—"
    try:
        return format_money(amount_minor, currency)
    except MoneyError:
        # A code outside ISO 4217 stored by an older release: show the raw minor units, never a 500.
        return f"{amount_minor} {currency} (minor units)"


@register.filter
def debit(amount_minor: int, currency: str) -> str:
    """The amount of a posting in the debit column (debits are positive), else empty."""
    return money(amount_minor, currency) if amount_minor > 0 else ""


@register.filter
def credit(amount_minor: int, currency: str) -> str:
    """The amount of a posting in the credit column (credits are negative), shown positive, else empty."""
    return money(-amount_minor, currency) if amount_minor < 0 else ""
