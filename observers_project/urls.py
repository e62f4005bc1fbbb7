from django.contrib import admin
from django.urls import include, path

from linking.health import health, ready
from linking.metrics import metrics_view

urlpatterns = [
    path("health", health, name="health"),
    path("ready", ready, name="ready"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("notifications/", include("linking.notification_views")),
    path("", include("linking.api.urls")),
    path("", include("linking.urls")),
]

# Bodies Django refuses to read (too large, too many fields) on any page get
# Canvas's error body, as the API's do.
handler400 = "linking.api.errors.bad_request"
