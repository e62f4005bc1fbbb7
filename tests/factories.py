"""factory-boy factories for the linking domain."""

import factory
from django.utils import timezone

from linking.models import (
    AccessToken,
    Account,
    AccountAdmin,
    Course,
    CourseRoleOverride,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    Login,
    ObservationLink,
    Role,
    User,
)
from linking.services.accounts import builtin_admin_role

TEST_PASSWORD = "correct horse battery staple"


class RootAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"School {n}")
    domain = factory.Sequence(lambda n: f"school{n}.test")


class SubAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Department {n}")
    parent = factory.SubFactory(RootAccountFactory)
    root_account = factory.LazyAttribute(lambda o: o.parent.root_account or o.parent)
    domain = None


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Person {n:04d} Smith")
    email = factory.Sequence(lambda n: f"person{n}@example.test")


class LoginFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Login
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    root_account = factory.SubFactory(RootAccountFactory)
    unique_id = factory.Sequence(lambda n: f"login{n}@example.test")
    password = factory.django.Password(TEST_PASSWORD)


class CourseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Course

    name = factory.Sequence(lambda n: f"Course {n}")
    course_code = factory.Sequence(lambda n: f"C{n}")
    account = factory.SubFactory(RootAccountFactory)
    root_account = factory.LazyAttribute(lambda o: o.account.root_account or o.account)


class EnrollmentFactory(factory.django.DjangoModelFactory):
    """Rows written directly, bypassing mirroring: use services.enrollments in behaviour tests."""

    class Meta:
        model = Enrollment

    user = factory.SubFactory(UserFactory)
    course = factory.SubFactory(CourseFactory)
    root_account = factory.LazyAttribute(lambda o: o.course.root_account)
    type = EnrollmentType.STUDENT
    workflow_state = EnrollmentState.ACTIVE


class RoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Role

    name = factory.Sequence(lambda n: f"Custom role {n}")
    root_account = factory.SubFactory(RootAccountFactory)


class AccountAdminFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AccountAdmin

    user = factory.SubFactory(UserFactory, is_staff=True)
    account = factory.SubFactory(RootAccountFactory)
    root_account = factory.LazyAttribute(lambda o: o.account.root_account or o.account)
    role = factory.LazyFunction(builtin_admin_role)


class CourseRoleOverrideFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CourseRoleOverride

    account = factory.SubFactory(RootAccountFactory)
    enrollment_type = "teacher"
    enabled = True


class ObservationLinkFactory(factory.django.DjangoModelFactory):
    """A link row written directly (no enrollments): use services.links to test behaviour."""

    class Meta:
        model = ObservationLink

    observer = factory.SubFactory(UserFactory)
    student = factory.SubFactory(UserFactory)
    root_account = factory.SubFactory(RootAccountFactory)


class AccessTokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AccessToken

    user = factory.SubFactory(UserFactory)
    token_hash = factory.Sequence(lambda n: f"{n:064x}")
    token_hint = "xxxx"
    created_at = factory.LazyFunction(timezone.now)
