"""Tenant isolation of every page and every staff admin view (issue 7).

The URLs are enumerated, not listed by hand: the parent/student pages from
``linking.urls`` and, for the admin, every view of every registered
ModelAdmin (``get_urls``: changelist, add, change, history, delete and the
custom ones) plus the site's own. School A's people and staff try each of
them against school B's rows — the rows B's own staff see in their admin —
through A's host and through B's host, and must get a refusal (302 to a
sign-in or list page, 403 or 404) and leave the database as it was.
"""

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory
from django.urls import URLPattern, reverse

from linking import urls as portal_urls
from linking.models import (
    AccessToken,
    Account,
    AccountAdmin,
    Course,
    Enrollment,
    GuardianInvitation,
    IdentityProvider,
    Login,
    NotificationSettings,
    ObservationLink,
    ObservationRestriction,
    PairingCode,
    ProtectedStudent,
    Role,
    SisBatch,
    UnrecognisedLinkReport,
    User,
    WebhookEndpoint,
)
from linking.services.context import Actor
from linking.services.links import unlink_observer
from linking.services.pairing import issue_pairing_code
from linking.services.sis import import_sis
from linking.services.tokens import issue_access_token
from tests import factories
from tests.security.conftest import HOST_A, HOST_B

REFUSED = {302, 403, 404, 405}
MARKERS = ("b.test", "School B", "Student B", "Parent B", "Admin B", "Secret B")


def snapshot(world):
    """School B's rows: what a refused request of school A must leave as it was."""
    from django.db.models import Q

    school = world["b"]["school"]
    people = [world["b"][k].pk for k in ("parent", "student", "admin")]
    watched = {
        ObservationLink: Q(root_account=school),
        PairingCode: Q(root_account=school),
        Enrollment: Q(root_account=school),
        Login: Q(root_account=school),
        User: Q(pk__in=people),
        AccessToken: Q(user_id__in=people),
        Account: Q(pk=school.pk) | Q(root_account=school),
        AccountAdmin: Q(root_account=school),
        Role: Q(root_account=school),
        Course: Q(root_account=school),
        SisBatch: Q(root_account=school),
        WebhookEndpoint: Q(root_account=school),
        NotificationSettings: Q(root_account=school),
        UnrecognisedLinkReport: Q(root_account=school),
        GuardianInvitation: Q(root_account=school),
        ObservationRestriction: Q(root_account=school),
        ProtectedStudent: Q(root_account=school),
        IdentityProvider: Q(root_account=school),
    }
    return {
        model.__name__: list(model.objects.filter(q).order_by("pk").values())
        for model, q in watched.items()
    }


@pytest.fixture
def world(schools, tmp_path, settings):
    """Schools A and B, with a row of every admin model in B (as B's own staff would see it)."""
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    b = schools["b"]
    school = b["school"]
    from linking.services import notifications, sso, webhooks

    WebhookEndpoint.objects.create(
        root_account=school,
        url="https://hooks.b.test/in",
        secret="Secret B hook secret",
        events=sorted(webhooks.WEBHOOK_EVENTS),
    )
    User.objects.filter(pk__in=[b["parent"].pk, b["student"].pk]).update(email="person@b.test")
    # Removing the link queues a webhook delivery and an e-mail to B's parent.
    unlink_observer(
        link=ObservationLink.objects.get(observer=b["parent"], student=b["student"]),
        actor=Actor.system(),
    )
    factories.RoleFactory(root_account=school, name="Secret B role")
    factories.CourseRoleOverrideFactory(account=school)
    b["code"] = issue_pairing_code(
        student=b["student"], root_account=school, actor=Actor.system()
    ).pairing_code
    issue_access_token(user=b["parent"], actor=Actor.system())
    from linking.services.invitations import invite_guardian

    invite_guardian(
        student=b["student"],
        email="secret.guardian@b.test",
        root_account=school,
        actor=Actor(user=b["admin"]),
        base_url="http://b.test/",
    )
    from linking.services.developer_keys import create_developer_key

    create_developer_key(
        root_account=school,
        name="Secret B app",
        redirect_uris="https://app.b.test/cb",
        scopes=["url:GET|/api/v1/users/:user_id/enrollments"],
        actor=Actor.system(),
    )
    for user, sis_id in ((b["parent"], "PB"), (b["student"], "SB")):
        user.logins.filter(root_account=school).update(sis_user_id=sis_id)
    csv = tmp_path / "user_observers.csv"
    csv.write_text("observer_id,student_id,status\nPB,SB,active\n")  # restores the link
    import_sis(paths=[csv], root_account=school, actor=Actor.system())
    link = ObservationLink.objects.get(observer=b["parent"], student=b["student"])
    UnrecognisedLinkReport.objects.create(
        root_account=school, link=link, observer=b["parent"], student=b["student"]
    )
    NotificationSettings.objects.get_or_create(root_account=school)
    # Who may observe (issue 16): a restriction and a protected student of B's.
    from linking.services import safeguarding

    safeguarding.record_restriction(
        root_account=school,
        student=b["student"],
        observer_email="someone@b.test",
        reason="Secret B reason",
        actor=Actor.system(),
    )
    protected = factories.UserFactory(name="Student B protected")
    factories.LoginFactory(user=protected, root_account=school)
    safeguarding.protect_student(student=protected, root_account=school, actor=Actor.system())
    sso.save_identity_provider(
        root_account=school,
        name="Secret B provider",
        issuer="https://127.0.0.1:9/school-b",  # nothing listens: no traffic leaves
        client_id="school-b-client",
        client_secret="Secret B client secret",
    )
    notifications.plan_all_pending()  # the queued e-mails and deliveries, as the sender makes them
    b["link"] = link
    return schools


def _staff_request(user, host, root_account):
    request = RequestFactory().get("/admin/", HTTP_HOST=host)
    request.user = user
    request.root_account = root_account
    return request


def _client(user, host):
    client = Client(HTTP_HOST=host)
    client.force_login(user)
    return client


def b_rows(world):
    """(model, model_admin, row) for every row B's staff see that A's staff do not."""
    a, b = world["a"], world["b"]
    rows = []
    for model, model_admin in admin.site._registry.items():
        seen_by_b = model_admin.get_queryset(_staff_request(b["admin"], HOST_B, b["school"]))
        seen_by_a = model_admin.get_queryset(_staff_request(a["admin"], HOST_A, a["school"]))
        only_b = seen_by_b.exclude(pk__in=seen_by_a.values("pk"))
        for row in only_b.order_by("pk")[:3]:
            rows.append((model, model_admin, row))
    return rows


def test_every_tenant_model_of_the_admin_has_a_row_of_school_b(world):
    """The enumeration below is not vacuous: B owns a row of every tenant-scoped model."""
    covered = {model for model, _admin, _row in b_rows(world)}
    tenant_models = {
        model
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label == "linking"
    }
    assert sorted(m.__name__ for m in tenant_models - covered) == []


def _object_urls(model, model_admin, row):
    """Every admin URL of ``model_admin`` that takes an object id, filled with ``row``'s."""
    info = (model._meta.app_label, model._meta.model_name)
    urls = []
    for pattern in model_admin.get_urls():
        if not isinstance(pattern, URLPattern) or not pattern.name:
            continue
        if "object_id" in pattern.pattern.converters:
            urls.append(reverse(f"admin:{pattern.name}", kwargs={"object_id": row.pk}))
    assert urls, f"no object views for {info}"
    return urls


def _plain_urls(model_admin):
    """Every admin URL of ``model_admin`` without an object id (list, add, custom views)."""
    urls = []
    for pattern in model_admin.get_urls():
        if not isinstance(pattern, URLPattern) or not pattern.name:
            continue
        if not pattern.pattern.converters:
            urls.append(reverse(f"admin:{pattern.name}"))
    return urls


def test_school_a_staff_cannot_open_or_change_any_admin_row_of_school_b(world):
    a = world["a"]
    client = _client(a["admin"], HOST_A)
    before = snapshot(world)
    checked = 0
    for model, model_admin, row in b_rows(world):
        for url in _object_urls(model, model_admin, row):
            for method in ("get", "post"):
                response = getattr(client, method)(url, {"post": "yes", "name": "Changed"})
                assert response.status_code in REFUSED, (method, url, response.status_code)
                if response.status_code == 302:
                    assert str(row.pk) not in response["Location"].split("?")[0], url
                body = response.content.decode(errors="replace")
                assert not any(marker in body for marker in MARKERS), (method, url)
                checked += 1
    assert checked > 40
    assert snapshot(world) == before


def test_school_a_staff_lists_and_custom_views_never_show_school_b(world):
    a = world["a"]
    client = _client(a["admin"], HOST_A)
    before = snapshot(world)
    urls = [reverse("admin:index")]
    for model_admin in admin.site._registry.values():
        urls += _plain_urls(model_admin)
    for url in urls:
        response = client.get(url)
        assert response.status_code in {200, *REFUSED}, (url, response.status_code)
        body = response.content.decode(errors="replace")
        assert not any(marker in body for marker in MARKERS), url
        if response.status_code == 200 and response.context and "cl" in response.context:
            listed = {obj.pk for obj in response.context["cl"].result_list}
            b_pks = {row.pk for m, _a, row in b_rows(world) if m is response.context["cl"].model}
            assert not listed & b_pks, url
    assert snapshot(world) == before


def test_school_a_staff_autocomplete_never_offers_school_b(world):
    a = world["a"]
    client = _client(a["admin"], HOST_A)
    asked = 0
    for model, model_admin in admin.site._registry.items():
        for field in model_admin.get_autocomplete_fields(
            _staff_request(a["admin"], HOST_A, a["school"])
        ):
            for term in ("B", "b.test", "Student"):
                response = client.get(
                    reverse("admin:autocomplete"),
                    {
                        "app_label": model._meta.app_label,
                        "model_name": model._meta.model_name,
                        "field_name": field,
                        "term": term,
                    },
                )
                assert response.status_code in {200, 403}, (model, field)
                if response.status_code == 200:
                    ids = {int(result["id"]) for result in response.json()["results"]}
                    assert not ids & {world["b"][k].pk for k in ("parent", "student", "admin")}
                asked += 1
    assert asked >= 3


def test_school_a_staff_on_school_b_host_get_only_the_sign_in_page(world):
    """A's staff session carried to B's host opens no admin view at all."""
    a = world["a"]
    client = _client(a["admin"], HOST_B)
    before = snapshot(world)
    urls = [reverse("admin:index")]
    for model, model_admin, row in b_rows(world):
        urls += _plain_urls(model_admin) + _object_urls(model, model_admin, row)
    for url in sorted(set(urls)):
        response = client.get(url)
        assert response.status_code in REFUSED, (url, response.status_code)
        if response.status_code == 302:
            assert response["Location"].startswith(reverse("admin:login")), url
    assert snapshot(world) == before


# --- parent and student pages -------------------------------------------------------


def _portal_names():
    return [p.name for p in portal_urls.urlpatterns if isinstance(p, URLPattern)]


def _portal_url(name, world):
    from django.utils.http import urlsafe_base64_encode

    from linking.services import passwords

    b = world["b"]
    login = Login.objects.get(user=b["parent"], root_account=b["school"])
    link = {"link_id": b["link"].pk}
    kwargs = {
        "remove_student": link,
        "revoke_code": {"code_id": b["code"].pk},
        # The student's voice (issue 16): B's link, ended, approved or declined from A.
        "end_observer": link,
        "approve_observer": link,
        "decline_observer": link,
        # B's parent's real reset link: it must not open on A's host.
        "password_reset_confirm": {
            "uidb64": urlsafe_base64_encode(str(login.pk).encode()),
            "token": passwords.token_generator.make_token(login),
        },
        "verify_email": {
            "uidb64": urlsafe_base64_encode(str(b["parent"].pk).encode()),
            "token": "not-a-token",
        },
    }
    if name in {"invitation", "invitation_signup"}:
        # A real invitation of school B for its student.
        from linking.services.invitations import invite_guardian

        sent = invite_guardian(
            student=b["student"],
            email="guardian@b.test",
            root_account=b["school"],
            actor=Actor(user=b["admin"]),
            base_url="http://b.test/",
        )
        kwargs[name] = {"token": sent.link.rstrip("/").split("/")[-1]}
    return reverse(f"linking:{name}", kwargs=kwargs.get(name))


@pytest.mark.parametrize("name", _portal_names())
@pytest.mark.parametrize("who", ["parent", "student"])
def test_school_a_people_cannot_reach_school_b_through_any_page(world, name, who):
    a, b = world["a"], world["b"]
    url = _portal_url(name, world)
    before = snapshot(world)
    own_host = _client(a[who], HOST_A)
    for method in ("get", "post"):
        response = getattr(own_host, method)(url, {"code": "ZZZZ-ZZZZ"})
        assert response.status_code in {200, *REFUSED}, (method, url, response.status_code)
        body = response.content.decode(errors="replace")
        assert not any(marker in body for marker in MARKERS), (method, url)
    # Through B's host, A's session is not trusted: nothing of B opens. B's
    # single sign-on pages try B's provider, which is not reachable from
    # here: they answer 502 "did not complete".
    other_host = _client(a[who], HOST_B)
    allowed = {200, *REFUSED} | ({502} if name.startswith("sso_") else set())
    for method in ("get", "post"):
        response = getattr(other_host, method)(url, {"code": "ZZZZ-ZZZZ"})
        body = response.content.decode(errors="replace")
        assert response.status_code in allowed, (method, url, response.status_code)
        assert "Student B" not in body and "Parent B" not in body, (method, url)
    assert snapshot(world) == before
    assert ObservationLink.objects.get(pk=b["link"].pk).workflow_state == "active"
    assert PairingCode.objects.get(pk=b["code"].pk).workflow_state == "active"


def test_every_page_with_an_object_id_is_covered():
    """A new page that takes an id must be added to _portal_url's kwargs."""
    with_ids = {
        p.name
        for p in portal_urls.urlpatterns
        if isinstance(p, URLPattern) and p.pattern.converters
    }
    assert with_ids == {
        "remove_student",
        "revoke_code",
        "password_reset_confirm",
        "verify_email",
        "invitation",
        "invitation_signup",
        "end_observer",
        "approve_observer",
        "decline_observer",
    }


def test_school_b_own_people_can_remove_their_link_and_revoke_their_code(world):
    """The control: the same URLs work for B's own people on B's host."""
    b = world["b"]
    response = _client(b["parent"], HOST_B).post(_portal_url("remove_student", world))
    assert response.status_code == 302
    assert ObservationLink.objects.get(pk=b["link"].pk).workflow_state == "deleted"
    response = _client(b["student"], HOST_B).post(_portal_url("revoke_code", world))
    assert response.status_code == 302
    assert PairingCode.objects.get(pk=b["code"].pk).workflow_state == "revoked"
    unlink_observer(link=b["link"], actor=Actor.system())  # idempotent: already removed
