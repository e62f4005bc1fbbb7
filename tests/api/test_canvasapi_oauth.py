"""Acceptance: ``canvasapi`` reads an observer's enrollments and courses with an OAuth2 token.

The token comes from the real flow over HTTP against a live server: sign in
on the school's page, consent, code, token exchange.
"""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from canvasapi import Canvas
from canvasapi.exceptions import Unauthorized

from linking.models import AccessToken, Enrollment, EnrollmentType
from linking.services import accounts as account_services
from linking.services.context import Actor
from linking.services.developer_keys import create_developer_key
from linking.services.enrollments import enroll_user
from linking.services.links import link_observer
from tests.factories import TEST_PASSWORD

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:Canvas may respond unexpectedly:UserWarning"),
]
REDIRECT_URI = "https://parent-app.example.org/oauth/callback"
SCOPES = [
    "url:GET|/api/v1/users/:user_id/enrollments",
    "url:GET|/api/v1/courses",
    "url:GET|/api/v1/users/:user_id/courses",
    "url:GET|/api/v1/courses/:course_id/enrollments",
    "url:GET|/api/v1/users/:id",
]


def csrf_token(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def oauth_token(base: str, *, key, secret, login_id: str) -> str:
    browser = requests.Session()
    response = browser.get(
        f"{base}/login/oauth2/auth",
        params={
            "client_id": key.pk,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "state": "abc",
            "scope": " ".join(SCOPES),
        },
    )
    # Redirected to the school's sign-in page.
    assert "/login/" in response.url
    response = browser.post(
        response.url,
        data={
            "csrfmiddlewaretoken": csrf_token(response.text),
            "username": login_id,
            "password": TEST_PASSWORD,
            "next": "/login/oauth2/confirm",
        },
        headers={"Referer": response.url},
    )
    assert response.url.endswith("/login/oauth2/confirm")
    assert "is requesting access to your account" in response.text
    response = browser.post(
        f"{base}/login/oauth2/accept",
        data={"csrfmiddlewaretoken": csrf_token(response.text)},
        headers={"Referer": response.url},
        allow_redirects=False,
    )
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["abc"]
    response = requests.post(
        f"{base}/login/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "client_id": key.pk,
            "client_secret": secret,
            "redirect_uri": REDIRECT_URI,
            "code": query["code"][0],
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def test_canvasapi_reads_an_observers_enrollments_and_courses(live_server):
    school = account_services.create_root_account(name="Live School", domain="localhost")
    parent = account_services.create_user_with_login(
        name="Pat Parent", root_account=school, unique_id="pat@example.test", password=TEST_PASSWORD
    )
    kids = [
        account_services.create_user_with_login(
            name=name, root_account=school, unique_id=f"{i}@example.test", password=TEST_PASSWORD
        )
        for i, name in enumerate(["Sam Kid", "Alex Kid"])
    ]
    maths = account_services.create_course(account=school, name="Maths")
    art = account_services.create_course(account=school, name="Art")
    enroll_user(user=kids[0], course=maths, type=EnrollmentType.STUDENT)
    enroll_user(user=kids[1], course=maths, type=EnrollmentType.STUDENT)
    enroll_user(user=kids[1], course=art, type=EnrollmentType.STUDENT)
    for kid in kids:
        link_observer(observer=parent, student=kid, root_account=school, actor=Actor.system())
    key, secret = create_developer_key(
        root_account=school,
        name="Parent App",
        redirect_uris=REDIRECT_URI,
        scopes=SCOPES,
        allow_includes=True,
        actor=Actor.system(),
    )
    token = oauth_token(live_server.url, key=key, secret=secret, login_id="pat@example.test")
    assert AccessToken.objects.get(developer_key=key).user == parent

    canvas = Canvas(live_server.url, token)
    me = canvas.get_current_user()
    assert me.id == parent.pk

    enrollments = list(me.get_enrollments(include=["observed_users"]))
    expected = Enrollment.objects.filter(user=parent, type=EnrollmentType.OBSERVER)
    assert sorted(e.id for e in enrollments) == sorted(expected.values_list("pk", flat=True))
    assert {e.type for e in enrollments} == {"ObserverEnrollment"}
    assert {e.associated_user_id for e in enrollments} == {kids[0].pk, kids[1].pk}
    assert {e.observed_user["id"] for e in enrollments} == {kids[0].pk, kids[1].pk}

    courses = list(canvas.get_courses(include=["observed_users"]))
    assert [c.name for c in courses] == ["Art", "Maths"]
    maths_json = next(c for c in courses if c.id == maths.pk)
    assert {(e["type"], e["user_id"]) for e in maths_json.enrollments} == {
        ("observer", parent.pk),
        ("student", kids[0].pk),
        ("student", kids[1].pk),
    }

    assert {c.id for c in me.get_courses()} == {maths.pk, art.pk}
    # The parent reads a child's courses: User.get_courses on another user.
    alex = canvas.get_user(kids[1].pk)
    assert {c.id for c in alex.get_courses()} == {maths.pk, art.pk}
    assert {c.id for c in canvas.get_user(kids[0].pk).get_courses()} == {maths.pk}

    # Course.get_enrollments: the observer's own enrollments there and the students'.
    roster = list(maths_json.get_enrollments())
    assert sorted(e.id for e in roster) == sorted(
        Enrollment.objects.filter(course=maths).values_list("pk", flat=True)
    )

    # Outside the granted scopes: Canvas's 401 without WWW-Authenticate.
    with pytest.raises(Unauthorized):
        list(me.get_observees())
