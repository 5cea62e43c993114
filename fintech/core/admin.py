from django.contrib import admin

from .customers import mask
from .models import AuditEvent, AuditVerification, Customer, WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    """Heartbeats are written by workers, never by hand (old hosts may be deleted)."""

    list_display = ("hostname", "last_seen_at")
    ordering = ("-last_seen_at",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by the application: staff may read them, never add, change or delete."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("seq", "occurred_at", "actor_label", "action", "target_type", "target_id", "ip_address")
    list_filter = ("actor_type", "action")
    search_fields = ("action", "actor_label", "target_id")
    ordering = ("-seq",)


@admin.register(AuditVerification)
class AuditVerificationAdmin(ReadOnlyAdmin):
    list_display = ("finished_at", "ok", "events_checked", "first_broken_seq", "triggered_by", "message")
    ordering = ("-finished_at",)


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    """Customers in the admin: sensitive values masked; revealing one happens on the staff page,
    where it is permission-checked and audited; changes go through the staff services."""

    list_display = ("legal_name", "kind", "country_of_residence", "kyc_status", "risk_rating", "created_at")
    list_filter = ("kind", "kyc_status", "risk_rating")
    search_fields = ("legal_name", "email")
    readonly_fields = (
        "kind",
        "legal_name",
        "nationality",
        "country_of_residence",
        "email",
        "phone",
        "masked_tax_id",
        "masked_date_of_birth",
        "masked_address",
        "kyc_status",
        "risk_rating",
        "user",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields

    @admin.display(description="Tax id")
    def masked_tax_id(self, customer: Customer) -> str:
        return mask("tax_id", customer.tax_id)

    @admin.display(description="Date of birth")
    def masked_date_of_birth(self, customer: Customer) -> str:
        return mask("date_of_birth", customer.date_of_birth)

    @admin.display(description="Address")
    def masked_address(self, customer: Customer) -> str:
        return mask("address", customer.address)
