from django.contrib import admin
from django.urls import include, path

from linking.health import health

urlpatterns = [
    path("health", health, name="health"),
    path("admin/", admin.site.urls),
    path("notifications/", include("linking.notification_views")),
    path("", include("linking.api.urls")),
    path("", include("linking.urls")),
]
