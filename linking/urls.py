"""Parent and student pages."""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import sso_views, views

app_name = "linking"
urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("login/sso/", sso_views.start, name="sso_start"),
    path("login/sso/callback/", sso_views.callback, name="sso_callback"),
    path("signup/", views.signup, name="signup"),
    path("pair", views.pair, name="pair"),
    path("observing/", views.observing, name="observing"),
    path("observing/add/", views.add_student, name="add_student"),
    path("observing/add/confirm/", views.confirm_student, name="confirm_student"),
    path("observing/<int:link_id>/remove/", views.remove_student, name="remove_student"),
    path("pairing/", views.pairing, name="pairing"),
    path("pairing/codes/", views.create_code, name="create_code"),
    path("pairing/codes/new/", views.new_code, name="new_code"),
    path("pairing/codes/<int:code_id>/revoke/", views.revoke_code, name="revoke_code"),
    path("pairing/observers/<int:link_id>/end/", views.end_observer, name="end_observer"),
    path(
        "pairing/observers/<int:link_id>/approve/", views.approve_observer, name="approve_observer"
    ),
    path(
        "pairing/observers/<int:link_id>/decline/", views.decline_observer, name="decline_observer"
    ),
]
