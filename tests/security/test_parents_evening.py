"""A parents' evening on the school's Wi-Fi: nobody is locked out, an attacker there is held.

300 parents sign up on /signup/ from one address (the school's network
behind one NAT), each with the code on their student's letter; 5% of them
mistype it twice first. Meanwhile one signed-in parent at the same address
guesses codes on the Observing page all evening. With the default limits
(10 per account, 100 per address, 15-minute windows) every parent is
linked and none sees the "too many tries" page; the attacker gets exactly
his 10 guesses and then only 429s.
"""

import random

from django.conf import settings
from django.test import Client

from linking.models import EnrollmentType, ObservationLink, RateLimitCounter
from linking.services import accounts as account_services
from linking.services import ratelimit
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.pairing import issue_pairing_code
from tests.security.conftest import HOST_A

PARENTS = 300
MISTYPERS = PARENTS * 5 // 100
SCHOOL_WIFI = "203.0.113.10"
ATTACKER_GUESSES = 40


def _mistyped(code: str) -> str:
    """The code with one symbol changed, as a parent misreading the letter would type it."""
    symbol = "X" if code[0] != "X" else "Y"
    return symbol + code[1:]


def test_parents_evening_links_everyone_and_holds_the_attacker(schools):
    assert settings.OBSERVERS_RATE_LIMIT_FAILURES == 10
    assert settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES == 100
    a = schools["a"]
    school = a["school"]
    school.self_registration = "observer"
    school.save()
    system = Actor.system()
    students, codes = [], []
    for n in range(PARENTS):
        student = account_services.create_user_with_login(
            name=f"Student {n:03d}", root_account=school, unique_id=f"s{n}@a.test"
        )
        enroll_user(user=student, course=school.course, type=EnrollmentType.STUDENT)
        students.append(student)
        codes.append(issue_pairing_code(student=student, root_account=school, actor=system))

    attacker = Client(HTTP_HOST=HOST_A, REMOTE_ADDR=SCHOOL_WIFI)
    attacker.force_login(a["parent"], backend="linking.auth_backends.LoginBackend")
    mistypers = set(random.Random(13).sample(range(PARENTS), MISTYPERS))
    # The attacker's guesses are spread over the evening, between the parents.
    attack_at = {n * PARENTS // ATTACKER_GUESSES for n in range(ATTACKER_GUESSES)}
    attacker_statuses, parent_statuses, tries_left_shown = [], [], []

    for n in range(PARENTS):
        if n in attack_at:
            guess = f"ZZZZ-{len(attacker_statuses):04d}"
            response = attacker.post("/observing/add/", {"code": guess})
            attacker_statuses.append(response.status_code)
        parent = Client(HTTP_HOST=HOST_A, REMOTE_ADDR=SCHOOL_WIFI)
        form = {
            "name": f"Parent {n:03d}",
            "email": f"parent{n}@example.org",
            "password1": "a long test password",
            "password2": "a long test password",
        }
        typed = [_mistyped(codes[n].plaintext)] * 2 if n in mistypers else []
        for code in [*typed, codes[n].plaintext]:
            response = parent.post("/signup/", {**form, "codes": code})
            if response.status_code == 302:
                # "Is this your student?" - yes.
                response = parent.post("/signup/confirm/", {"confirm": "1"})
            parent_statuses.append(response.status_code)
            if response.status_code == 200:
                page = response.content.decode()
                assert "That code is not valid" in page
                tries_left_shown.append("more times before a pause" in page)

    # Every parent linked, none ever refused for the rate limit.
    assert 429 not in parent_statuses
    assert parent_statuses.count(302) == PARENTS
    assert parent_statuses.count(200) == 2 * MISTYPERS and all(tries_left_shown)
    linked = ObservationLink.objects.active().filter(root_account=school, student__in=students)
    assert linked.count() == PARENTS
    assert sorted(linked.values_list("observer__name", flat=True)) == [
        f"Parent {n:03d}" for n in range(PARENTS)
    ]
    # The attacker at the same address: exactly the per-account limit, then 429s.
    assert attacker_statuses == [200] * 10 + [429] * (ATTACKER_GUESSES - 10)
    assert not ObservationLink.objects.filter(observer=a["parent"], student__in=students).exists()
    # The school's address used 2 x 15 + 10 of its 100 tries.
    address = RateLimitCounter.objects.get(key=ratelimit.address_budget(SCHOOL_WIFI).key)
    assert address.count == 2 * MISTYPERS + 10
