"""Admin: the audit trail, read-only, exportable as CSV."""

import csv

from django.contrib import admin
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..models import AuditEvent
from ..spreadsheet import text_row
from ..timezones import local_iso
from .tenancy import TenantScopedAdmin

EXPORT_COLUMNS = [
    "id",
    "created_at",
    "action",
    "source",
    "actor_id",
    "actor",
    "observer_id",
    "observer",
    "student_id",
    "student",
    "root_account_id",
    "link_id",
    "pairing_code_id",
    "ip_address",
    "user_agent",
    "detail",
]


class _Echo:
    """A file-like object whose write() hands the line back, for streaming csv.writer output."""

    def write(self, value):
        return value


def _export_rows(queryset):
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    rows = queryset.select_related("actor", "observer", "student", "root_account").order_by(
        "created_at", "id"
    )
    for event in rows.iterator(chunk_size=500):
        # Names, user agents and details come from outside: never a formula.
        yield writer.writerow(
            text_row(
                [
                    event.pk,
                    local_iso(event.created_at, event.root_account),
                    event.action,
                    event.source,
                    event.actor_id or "",
                    event.actor.name if event.actor else "",
                    event.observer_id or "",
                    event.observer.name if event.observer else "",
                    event.student_id or "",
                    event.student.name if event.student else "",
                    event.root_account_id or "",
                    event.link_id or "",
                    event.pairing_code_id or "",
                    event.ip_address or "",
                    event.user_agent,
                    event.detail,
                ]
            )
        )


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdmin):
    """Append-only: no add, change or delete from any admin page."""

    list_display = ["created_at", "action", "source", "actor", "observer", "student", "ip_address"]
    list_select_related = ["actor", "observer", "student", "root_account"]
    list_filter = ["action", "source", "created_at"]
    tenant_filter = "root_account"
    search_fields = ["actor__name", "observer__name", "student__name", "ip_address", "=request_id"]
    date_hierarchy = "created_at"
    actions = ["export_csv"]
    fields = [
        "created_at",
        "action",
        "source",
        "actor",
        "observer",
        "student",
        "root_account",
        "link",
        "pairing_code",
        "ip_address",
        "user_agent",
        "request_id",
        "detail",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Export the selected events as CSV"))
    def export_csv(self, request, queryset):
        response = StreamingHttpResponse(_export_rows(queryset), content_type="text/csv")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response
