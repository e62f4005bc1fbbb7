"""Admin: e-mail notification settings and queue, webhook endpoints and their delivery log,
and "this wasn't me" reports.

The queue and the log are read-only here; putting messages back in the
queue and marking reports reviewed go through ``services.notifications``.
"""

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import (
    EmailNotification,
    NotificationSettings,
    UnrecognisedLinkReport,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from ..models.notifications import WEBHOOK_EVENTS
from ..services import notifications as notification_services
from ..services import webhooks as webhook_services
from .tenancy import ReadOnlyTabularInline, TenantScopedAdmin


class ReadOnlyAdmin(TenantScopedAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(TenantScopedAdmin):
    list_display = [
        "root_account",
        "notify_student_of_new_observer",
        "notify_observers_of_new_observer",
        "notify_observer_of_removed_link",
        "notify_observer_of_staff_link",
    ]


@admin.register(EmailNotification)
class EmailNotificationAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "to_email", "status", "attempts", "next_attempt_at"]
    list_filter = ["status", "kind"]
    search_fields = ["to_email", "subject"]
    date_hierarchy = "created_at"
    list_select_related = ["root_account"]
    fields = [
        "root_account",
        "kind",
        "to_email",
        "language",
        "subject",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "last_error",
        "body_text",
        "created_at",
    ]
    actions = ["retry_now"]

    @admin.action(description=_("Send again now"), permissions=["view"])
    def retry_now(self, request, queryset):
        count = notification_services.retry_now(emails=list(queryset))
        self.message_user(
            request,
            ngettext("%d message queued again.", "%d messages queued again.", count) % count,
            messages.SUCCESS,
        )


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(
        max_length=1024,
        assume_scheme="https",
        help_text=_("Receives a POST with a JSON body for each subscribed event."),
    )
    events = forms.MultipleChoiceField(
        choices=[(event.value, event.value) for event in WEBHOOK_EVENTS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("Events posted to this URL."),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["root_account", "url", "description", "events", "is_active", "secret"]

    def clean_secret(self):
        secret = self.cleaned_data["secret"].strip()
        try:
            webhook_services.check_secret(secret)
        except webhook_services.InvalidWebhookSecret as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from exc
        return secret

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            webhook_services.check_webhook_url(url=url)
        except webhook_services.UnsafeWebhookUrl as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from exc
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "root_account", "is_active", "subscribed", "disabled_reason"]
    list_filter = ["is_active"]
    search_fields = ["url", "description"]
    readonly_fields = ["disabled_reason", "previous_secret_expires_at"]
    allow_delete = True
    actions = ["send_ping", "rotate_secret"]

    @admin.display(description=_("events"))
    def subscribed(self, obj):
        return ", ".join(obj.events or [])

    @admin.action(description=_("Send a test ping"), permissions=["change"])
    def send_ping(self, request, queryset):
        for endpoint in queryset:
            webhook_services.queue_ping(endpoint=endpoint)
        count = len(queryset)
        self.message_user(
            request,
            ngettext(
                "A ping is queued for %d endpoint; its delivery log shows the answer.",
                "A ping is queued for %d endpoints; their delivery log shows the answers.",
                count,
            )
            % count,
            messages.SUCCESS,
        )

    @admin.action(description=_("Rotate the signing secret"), permissions=["change"])
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            webhook_services.rotate_secret(endpoint=endpoint)
        count = len(queryset)
        self.message_user(
            request,
            ngettext(
                "%d secret rotated; the old one keeps signing beside it until the overlap ends.",
                "%d secrets rotated; the old ones keep signing beside them until the overlap ends.",
                count,
            )
            % count,
            messages.SUCCESS,
        )


class WebhookAttemptInline(ReadOnlyTabularInline):
    model = WebhookAttempt
    tenant_lookup = "delivery__endpoint__root_account"
    fields = ["attempted_at", "status_code", "duration_ms", "error", "response_excerpt"]
    readonly_fields = fields
    show_change_link = False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    tenant_lookup = "endpoint__root_account"
    list_display = [
        "created_at",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
    ]
    list_filter = ["status", "event_type", "endpoint"]
    list_select_related = ["endpoint"]
    inlines = [WebhookAttemptInline]
    fields = [
        "endpoint",
        "event_type",
        "status",
        "attempts",
        "next_attempt_at",
        "last_attempt_at",
        "last_status_code",
        "last_response_excerpt",
        "last_error",
        "sent_at",
        "body",
        "created_at",
    ]
    actions = ["retry_now"]

    @admin.action(description=_("Send again now (delivered ones too)"), permissions=["view"])
    def retry_now(self, request, queryset):
        count = notification_services.retry_now(deliveries=list(queryset))
        self.message_user(
            request,
            ngettext("%d delivery queued again.", "%d deliveries queued again.", count) % count,
            messages.SUCCESS,
        )


@admin.register(UnrecognisedLinkReport)
class UnrecognisedLinkReportAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "student", "observer", "reported_by", "link", "reviewed"]
    list_filter = ["reviewed"]
    list_select_related = ["student", "observer", "reported_by", "link"]
    fields = [
        "root_account",
        "student",
        "observer",
        "link",
        "reported_by",
        "ip_address",
        "user_agent",
        "reviewed",
        "created_at",
    ]
    actions = ["mark_reviewed"]

    @admin.action(description=_("Mark as reviewed"), permissions=["view"])
    def mark_reviewed(self, request, queryset):
        count = notification_services.mark_reports_reviewed(reports=list(queryset))
        self.message_user(
            request,
            ngettext("%d report marked reviewed.", "%d reports marked reviewed.", count) % count,
            messages.SUCCESS,
        )
