from django.contrib import admin

from .models import AuditEvent, AuditVerification, WorkerHeartbeat


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
