"""Order-independent status rules for gateway objects.

Webhooks arrive late, twice and out of order, so a status is replaced only when the new one
"wins": a final status is left only for a final status of higher rank (a paid payout can still
fail; a succeeded Braintree sale can still be voided, i.e. canceled; a succeeded payment never
goes back to processing); otherwise the event with the later gateway timestamp wins, and at
equal timestamps (Stripe's are whole seconds) the higher rank. Because the winner depends only
on the set of events, never on their order, any delivery order ends in the same state.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from .models import DisputeStatus, PaymentStatus, PayoutStatus, RefundStatus

_EARLIEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class StatusRules:
    rank: Mapping[str, int]
    final: Collection[str]

    def wins(self, current: str, current_at: datetime | None, new: str, new_at: datetime) -> bool:
        if new == current:
            return False
        if current in self.final:
            return new in self.final and self.rank[new] > self.rank[current]
        if new in self.final:
            return True
        return (new_at, self.rank[new]) > (current_at or _EARLIEST, self.rank[current])


PAYMENT_RULES = StatusRules(
    rank={
        PaymentStatus.PENDING: 0,
        PaymentStatus.REQUIRES_ACTION: 1,
        PaymentStatus.PROCESSING: 2,
        PaymentStatus.REQUIRES_CAPTURE: 3,
        PaymentStatus.FAILED: 4,
        PaymentStatus.SUCCEEDED: 5,
        # Above succeeded: a Braintree sale submitted for settlement (succeeded here) can still be
        # voided, and nothing follows a void. Stripe never cancels a succeeded intent.
        PaymentStatus.CANCELED: 6,
    },
    final={PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED},
)

REFUND_RULES = StatusRules(
    rank={RefundStatus.PENDING: 0, RefundStatus.SUCCEEDED: 1, RefundStatus.CANCELED: 2, RefundStatus.FAILED: 3},
    # A succeeded refund can still fail (the bank returns it), so succeeded is not final.
    final={RefundStatus.FAILED, RefundStatus.CANCELED},
)

DISPUTE_RULES = StatusRules(
    rank={
        DisputeStatus.WARNING_NEEDS_RESPONSE: 0,
        DisputeStatus.WARNING_UNDER_REVIEW: 1,
        DisputeStatus.NEEDS_RESPONSE: 2,
        DisputeStatus.UNDER_REVIEW: 3,
        DisputeStatus.WARNING_CLOSED: 4,
        DisputeStatus.EXPIRED: 5,
        DisputeStatus.ACCEPTED: 6,
        DisputeStatus.LOST: 7,
        DisputeStatus.WON: 8,
    },
    final={
        DisputeStatus.WARNING_CLOSED,
        DisputeStatus.EXPIRED,
        DisputeStatus.ACCEPTED,
        DisputeStatus.LOST,
        DisputeStatus.WON,
    },
)

PAYOUT_RULES = StatusRules(
    rank={
        PayoutStatus.PENDING: 0,
        PayoutStatus.IN_TRANSIT: 1,
        PayoutStatus.PAID: 2,
        PayoutStatus.CANCELED: 3,
        PayoutStatus.FAILED: 4,
    },
    # A paid payout can still fail when the bank returns it: failed outranks paid.
    final={PayoutStatus.PAID, PayoutStatus.CANCELED, PayoutStatus.FAILED},
)
