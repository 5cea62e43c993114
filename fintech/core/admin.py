from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group

from .customers import mask
from .models import AuditCheckpoint, AuditEvent, AuditVerification, Customer, WorkerHeartbeat

User = get_user_model()


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


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("seq", "created_at", "key_id", "chain_hash", "signature")
    ordering = ("-seq", "-pk")


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


# ---------------------------------------------------------------------------- staff and roles
# The admin role manages staff: creates users, resets them, puts them in roles. It must not be able
# to raise its own powers: only a superuser grants superuser status or single permissions, edits a
# role's permissions, or changes a superuser; nobody but a superuser changes their own roles.


class StaffUserAdmin(UserAdmin):
    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if request.user.is_superuser:
            return readonly
        readonly += ["is_superuser", "user_permissions"]
        if obj is not None and obj.pk == request.user.pk:
            readonly += ["groups", "is_staff", "is_active"]
        return readonly

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)


class RoleAdmin(GroupAdmin):
    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return readonly if request.user.is_superuser else [*readonly, "name", "permissions"]

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, RoleAdmin)
