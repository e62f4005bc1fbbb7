"""Canvas-compatible API routes (ViewSets on a router), OAuth2, the OpenAPI schema and its docs."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from . import oauth, rosters, views

router = SimpleRouter(trailing_slash=False)
router.register(r"api/v1/users", views.UserViewSet, basename="api-user")
router.register(
    r"api/v1/users/(?P<user_id>[^/]+)/observees", views.ObserveeViewSet, basename="api-observees"
)
router.register(
    r"api/v1/users/(?P<user_id>[^/]+)/observers", views.ObserverViewSet, basename="api-observers"
)
router.register(
    r"api/v1/users/(?P<user_id>[^/]+)/observer_pairing_codes",
    views.PairingCodeViewSet,
    basename="api-pairing-codes",
)
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
    *router.urls,
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file, so the
    # page runs under a Content-Security-Policy without inline scripts.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Canvas answers a path with a trailing slash as the same resource.
    re_path(r"^(?P<api_path>api/v1/.+)/$", views.without_trailing_slash),
    re_path(r"^api/", views.UnknownEndpointView.as_view()),
]
