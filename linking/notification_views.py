"""Pages linked from e-mails: "this wasn't me", and a person's e-mail preferences.

GET shows what will be reported and a button; only the POST records the
report, so mail scanners that prefetch links report nothing. The same holds
for the preferences page, which also takes RFC 8058's one-click unsubscribe
POST (``List-Unsubscribe=One-Click``) that mail clients send without a form.
"""

from django.shortcuts import render
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .models import AuditSource, EmailNotification
from .request_context import actor_from_request
from .services import notifications
from .services.errors import LinkingError


@require_http_methods(["GET", "POST"])
def report_unrecognised_link(request, token: str):
    try:
        notification = notifications.notification_for_report_token(token)
        root_account = getattr(request, "root_account", None)
        if root_account is not None and root_account.pk != notification.root_account_id:
            raise notifications.InvalidReportLink()
        if request.method == "POST":
            notifications.report_unrecognised_link(
                token=token, actor=actor_from_request(request, AuditSource.PORTAL)
            )
            return render(
                request, "notifications/report_thanks.html", {"notification": notification}
            )
    except LinkingError as error:
        return render(request, "notifications/report_invalid.html", {"error": error}, status=404)
    return render(request, "notifications/report.html", {"notification": notification})


# The signed token in the URL is what authorises a change here, and a mail
# client's one-click POST carries no CSRF token.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def email_preferences(request, token: str):
    try:
        user, root_account = notifications.preferences_from_token(token)
        current = getattr(request, "root_account", None)
        if current is not None and current.pk != root_account.pk:
            raise notifications.InvalidPreferencesLink()
        saved = False
        if request.method == "POST":
            if request.POST.get("List-Unsubscribe") == "One-Click":
                notifications.unsubscribe_all(user=user, root_account=root_account)
            else:
                wanted = set(request.POST.getlist("kinds"))
                notifications.set_email_preferences(
                    user=user,
                    root_account=root_account,
                    muted_kinds=[k for k in notifications.PREFERENCE_KINDS if k not in wanted],
                )
            saved = True
    except LinkingError as error:
        return render(request, "notifications/report_invalid.html", {"error": error}, status=404)
    muted = notifications.muted_kinds_for(user=user, root_account=root_account)
    kinds = [
        {"value": value, "label": label, "on": value not in muted}
        for value, label in EmailNotification.Kind.choices
        if value in notifications.PREFERENCE_KINDS
    ]
    context = {"person": user, "school": root_account, "kinds": kinds, "saved": saved}
    return render(request, "notifications/preferences.html", context)


app_name = "notifications"
urlpatterns = [
    path("report/<str:token>/", report_unrecognised_link, name="report"),
    path("preferences/<str:token>/", email_preferences, name="preferences"),
]
