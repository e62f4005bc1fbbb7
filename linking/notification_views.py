"""The "this wasn't me" page linked from new-observer e-mails, and its URL.

GET shows what will be reported and a button; only the POST records the
report, so mail scanners that prefetch links report nothing.
"""

from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_http_methods

from .models import AuditSource
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


app_name = "notifications"
urlpatterns = [
    path("report/<str:token>/", report_unrecognised_link, name="report"),
]
