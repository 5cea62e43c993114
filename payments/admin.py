"""Payments in the admin: read-only views of what the gateways and the ledger recorded.

Every row here is written by webhooks, services and the ledger, never by hand. The one action is
"Replay selected webhook events", which needs ``core.operate_payments`` and goes through the same
service as the Replay button of the staff page (audited, a no-op for processed events).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from fintech.core.admin import ReadOnlyAdmin

from . import inbox
from .models import (
    Dispute,
    DunningPlan,
    JournalEntry,
    LedgerAccount,
    Payment,
    Payout,
    Posting,
    Refund,
    WebhookEvent,
)

# Replaying is a row-by-row service call: a selection larger than this is refused.
MAX_REPLAY_SELECTION = 500


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "provider", "event_type", "status", "attempts", "next_retry_at", "event_id")
    list_filter = ("status", "provider")
    search_fields = ("=event_id", "=object_id", "=event_type")
    ordering = ("-received_at",)
    list_select_related = ("payment",)
    show_full_result_count = False
    actions = ["replay_selected"]

    def has_operate_payments_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("core.operate_payments")

    @admin.action(description="Replay selected webhook events", permissions=["operate_payments"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        events = list(queryset.order_by("pk")[: MAX_REPLAY_SELECTION + 1])
        if len(events) > MAX_REPLAY_SELECTION:
            self.message_user(
                request, f"Select at most {MAX_REPLAY_SELECTION} events to replay at once.", messages.ERROR
            )
            return
        requeued = unchanged = 0
        for event in events:
            result = inbox.webhook_replay(event=event, actor=request.user, request=request)
            if result.requeued:
                requeued += 1
            else:
                unchanged += 1
        self.message_user(
            request,
            f"{requeued} event(s) queued for processing again; "
            f"{unchanged} already processed or ignored, left unchanged.",
            messages.SUCCESS if requeued else messages.INFO,
        )


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "created_at", "gateway", "status", "amount_minor", "currency", "card_last4")
    list_filter = ("gateway", "status")
    search_fields = ("=public_id", "=gateway_payment_id", "=gateway_charge_id", "=email")
    ordering = ("-created_at", "-id")
    raw_id_fields = ("customer", "merchant")
    show_full_result_count = False


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "created_at", "payment", "status", "amount_minor", "currency")
    list_filter = ("status",)
    search_fields = ("=public_id", "=gateway_refund_id")
    ordering = ("-created_at",)
    list_select_related = ("payment",)


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    list_display = ("gateway_dispute_id", "gateway", "status", "amount_minor", "currency", "evidence_due_by")
    list_filter = ("gateway", "status")
    search_fields = ("=gateway_dispute_id",)
    ordering = ("-opened_at",)


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = ("gateway_payout_id", "gateway", "status", "amount_minor", "currency", "arrival_date")
    list_filter = ("gateway", "status")
    search_fields = ("=gateway_payout_id",)
    ordering = ("-created_at",)


@admin.register(DunningPlan)
class DunningPlanAdmin(ReadOnlyAdmin):
    list_display = ("payment", "status", "attempts", "next_attempt_at", "last_failure_code")
    list_filter = ("status",)
    ordering = ("next_attempt_at",)
    list_select_related = ("payment",)


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("kind", "gateway", "currency")
    list_filter = ("gateway", "currency", "kind")


class PostingInline(admin.TabularInline):
    model = Posting
    fields = ("account", "currency", "amount_minor")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdmin):
    """The journal is append-only in the database too; corrections are reversing entries."""

    list_display = ("idempotency_key", "occurred_at", "description", "payment", "payout")
    search_fields = ("=idempotency_key",)
    ordering = ("-id",)
    list_select_related = ("payment", "payout")
    raw_id_fields = ("payment", "payout", "webhook_event", "reverses")
    inlines = [PostingInline]
    show_full_result_count = False
