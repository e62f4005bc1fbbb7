"""Demo data for `make run`: two schools, staff, two families, courses and one link.

Idempotent: rows are created only when absent, so running it again changes
nothing except the demo API tokens, which are revoked and issued afresh
(their plaintext cannot be shown twice).
"""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from linking.models import (
    Account,
    AuditSource,
    Course,
    EnrollmentType,
    LinkSource,
    ObservationLink,
    SelfRegistration,
    User,
)
from linking.services.accounts import (
    create_course,
    create_root_account,
    create_sub_account,
    create_user_with_login,
    find_login,
    make_account_admin,
)
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.links import link_observer
from linking.services.tokens import issue_access_token, revoke_access_tokens

TOKEN_PURPOSE = "demo"
OTHER_DOMAIN = "other.localhost"

ADMIN = ("admin", "admin-password", "Avery Admin")
TEACHER = ("teacher", "teacher-password", "Morgan Teacher")
# (login, password, name, SIS id) per person; students follow their parent.
FAMILIES = [
    (
        ("pat.rivera", "parent-password", "Pat Rivera", "P-1001"),
        [
            ("sam.rivera", "student-password", "Sam Rivera", "S-2001"),
            ("alex.rivera", "student-password", "Alex Rivera", "S-2002"),
        ],
    ),
    (
        ("jordan.chen", "parent-password", "Jordan Chen", "P-1002"),
        [("casey.chen", "student-password", "Casey Chen", "S-2003")],
    ),
]
COURSES = [("Mathematics 5", "MATH-5"), ("Science 5", "SCI-5"), ("Art", "ART")]
OTHER_ADMIN = ("admin", "admin-password", "Riley Other-Admin")
OTHER_STUDENT = ("kim.other", "student-password", "Kim Other", "X-3001")


class Command(BaseCommand):
    help = "Load demo schools, people, courses and a link (only what is missing); print logins."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the server will listen, for the printed links.",
        )

    def handle(self, *args, **options):
        actor = Actor.system(AuditSource.COMMAND)
        with transaction.atomic():
            school = self._root_account(
                "Riverside School", settings.OBSERVERS_DEFAULT_DOMAIN or "localhost"
            )
            other = self._root_account("Hillview Academy", OTHER_DOMAIN)
            upper = self._sub_account(school, "Upper School")

            admin = self._person(school, *ADMIN, is_staff=True)
            make_account_admin(user=admin, account=school)
            teacher = self._person(school, *TEACHER)
            courses = [self._course(upper, name, code) for name, code in COURSES]
            for course in courses:
                enroll_user(user=teacher, course=course, type=EnrollmentType.TEACHER)

            parents, students = [], []
            for parent_row, student_rows in FAMILIES:
                parents.append(self._person(school, *parent_row))
                for index, row in enumerate(student_rows):
                    student = self._person(school, *row)
                    students.append(student)
                    for course in courses[: 2 + index % 2]:
                        if not student.enrollments.filter(course=course).exists():
                            enroll_user(user=student, course=course, type=EnrollmentType.STUDENT)

            # One existing link: the first parent already observes their first child.
            if not ObservationLink.objects.filter(
                observer=parents[0], student=students[0], root_account=school
            ).exists():
                link_observer(
                    observer=parents[0],
                    student=students[0],
                    root_account=school,
                    actor=actor,
                    source=LinkSource.ADMIN,
                )

            other_admin = self._person(other, *OTHER_ADMIN, is_staff=True)
            make_account_admin(user=other_admin, account=other)
            other_student = self._person(other, *OTHER_STUDENT)
            other_course = self._course(other, "Hillview Algebra", "ALG-1")
            if not other_student.enrollments.filter(course=other_course).exists():
                enroll_user(user=other_student, course=other_course, type=EnrollmentType.STUDENT)

            tokens = {}
            for user in (admin, parents[0], students[0]):
                revoke_access_tokens(user=user, actor=actor, purpose=TOKEN_PURPOSE)
                tokens[user.pk] = issue_access_token(user=user, actor=actor, purpose=TOKEN_PURPOSE)[
                    1
                ]

        self._print(
            options["base_url"].rstrip("/"), school, other, admin, parents, students, tokens
        )

    def _root_account(self, name: str, domain: str) -> Account:
        existing = Account.objects.roots().filter(domain=domain).first()
        if existing is not None:
            return existing
        return create_root_account(
            name=name, domain=domain, self_registration=SelfRegistration.OBSERVER
        )

    def _sub_account(self, parent: Account, name: str) -> Account:
        existing = parent.children.filter(name=name).first()
        return existing or create_sub_account(parent=parent, name=name)

    def _course(self, account: Account, name: str, code: str) -> Course:
        root_id = account.root_account_id or account.pk
        existing = Course.objects.filter(root_account_id=root_id, sis_course_id=code).first()
        return existing or create_course(
            account=account, name=name, course_code=code, sis_course_id=code
        )

    def _person(
        self,
        root_account: Account,
        login_id: str,
        password: str,
        name: str,
        sis_user_id: str | None = None,
        *,
        is_staff: bool = False,
    ) -> User:
        login = find_login(root_account=root_account, unique_id=login_id)
        if login is not None:
            return login.user
        return create_user_with_login(
            name=name,
            root_account=root_account,
            unique_id=login_id,
            password=password,
            email=f"{login_id}@example.test",
            sis_user_id=sis_user_id,
            is_staff=is_staff,
        )

    def _print(self, base_url, school, other, admin, parents, students, tokens):
        out = self.stdout.write
        out("")
        out(self.style.SUCCESS("Demo data is ready."))
        out(f"{school.name}: {base_url}/ (host {school.domain}; 127.0.0.1 falls back to it)")
        out(f"  staff admin   {ADMIN[0]} / {ADMIN[1]}  -> {base_url}/admin/")
        out(f"  teacher       {TEACHER[0]} / {TEACHER[1]}")
        for (parent_row, student_rows), parent in zip(FAMILIES, parents, strict=True):
            out(f"  parent        {parent_row[0]} / {parent_row[1]}  ({parent.name})")
            for row in student_rows:
                out(f"    student     {row[0]} / {row[1]}  ({row[2]}, SIS id {row[3]})")
        out(f"  linked        {parents[0].name} observes {students[0].name}")
        out(f"{other.name}: host {other.domain} (a second tenant)")
        out(f"  staff admin   {OTHER_ADMIN[0]} / {OTHER_ADMIN[1]}")
        out(f"  student       {OTHER_STUDENT[0]} / {OTHER_STUDENT[1]}")
        out("API tokens (new on every run; earlier demo tokens are revoked):")
        for user in (admin, parents[0], students[0]):
            out(f"  {user.name:<14} user {user.pk:<4} {tokens[user.pk]}")
        out(
            f"  e.g. curl -H 'Authorization: Bearer <token>' {base_url}/api/v1/users/self/observees"
        )
