"""Canvas-compatible API routes, the OpenAPI schema and its offline Swagger UI."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from . import oauth, rosters, views

router = SimpleRouter(trailing_slash=False)
router.register(
    r"api/v1/users/(?P<user_id>[^/]+)/enrollments",
    rosters.UserEnrollmentViewSet,
    basename="api-user-enrollments",
)
router.register(
    r"api/v1/courses/(?P<course_id>[^/]+)/enrollments",
    rosters.CourseEnrollmentViewSet,
    basename="api-course-enrollments",
)
router.register(r"api/v1/courses", rosters.CourseViewSet, basename="api-courses")
router.register(
    r"api/v1/users/(?P<user_id>[^/]+)/courses",
    rosters.UserCourseViewSet,
    basename="api-user-courses",
)

urlpatterns = [
    path("login/oauth2/auth", oauth.authorize, name="oauth2-auth"),
    path("login/oauth2/confirm", oauth.confirm, name="oauth2-confirm"),
    path("login/oauth2/accept", oauth.accept, name="oauth2-accept"),
    path("login/oauth2/deny", oauth.deny, name="oauth2-deny"),
    path("login/oauth2/token", oauth.token, name="oauth2-token"),
    path("api/v1/users/<str:user_id>", views.UserDetailView.as_view(), name="api-user"),
    path(
        "api/v1/users/<str:user_id>/observees",
        views.ObserveeListView.as_view(),
        name="api-observees",
    ),
    path(
        "api/v1/users/<str:user_id>/observees/<str:observee_id>",
        views.ObserveeDetailView.as_view(),
        name="api-observee",
    ),
    path(
        "api/v1/users/<str:user_id>/observers",
        views.ObserverListView.as_view(),
        name="api-observers",
    ),
    path(
        "api/v1/users/<str:user_id>/observers/<str:observer_id>",
        views.ObserverDetailView.as_view(),
        name="api-observer",
    ),
    path(
        "api/v1/users/<str:user_id>/observer_pairing_codes",
        views.PairingCodeView.as_view(),
        name="api-pairing-codes",
    ),
    *router.urls,
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file, so the
    # page runs under a Content-Security-Policy without inline scripts.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Canvas answers a path with a trailing slash as the same resource.
    re_path(r"^(?P<api_path>api/v1/.+)/$", views.without_trailing_slash),
    re_path(r"^api/", views.UnknownEndpointView.as_view()),
]
