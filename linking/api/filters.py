"""django-filter FilterSets for the list endpoints' Canvas parameters (``type[]``, ``state[]``).

Canvas sends list parameters as repeated ``name[]=value`` pairs; ``ListFilter``
reads them all, and ``bracketed`` gives each such filter its ``[]`` name.
What a value means is Canvas's (canvas-oauth-scopes-enrollments.md §4.2,
§4.4 and §5.2); the defaults depend on who is reading (the scope from
``services.rosters``), so each FilterSet is given it.
"""

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from linking.models import Course, EnrollmentState, EnrollmentType, Login
from linking.services.rosters import STAFF_LIKE, STUDENT_LIKE

from .params import MAX_PARAM_LENGTH

# Canvas's class names of the built-in enrollment types, which are also its role names.
TYPE_NAMES = {
    EnrollmentType.STUDENT: "StudentEnrollment",
    EnrollmentType.TEACHER: "TeacherEnrollment",
    EnrollmentType.TA: "TaEnrollment",
    EnrollmentType.DESIGNER: "DesignerEnrollment",
    EnrollmentType.OBSERVER: "ObserverEnrollment",
}
TYPES_BY_NAME = {name: kind for kind, name in TYPE_NAMES.items()}
# ``state[]`` values a user may ask of their own enrollments (no "deleted").
SELF_STATES = (
    "active",
    "inactive",
    "rejected",
    "invited",
    "creation_pending",
    "pending_active",
    "pending_invited",
    "completed",
    "current_and_invited",
    "current_and_future",
    "current_future_and_restricted",
    "current_and_concluded",
)


class ParameterError(Exception):
    """A parameter Canvas refuses; ``body`` is Canvas's exact JSON for it (status 400)."""

    def __init__(self, body: dict) -> None:
        self.body = body
        super().__init__(str(body))


class TextListField(forms.Field):
    """Every value of a repeated parameter, as text."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        if not value:
            return []
        values = [value] if isinstance(value, str) else list(value)
        for item in values:
            if "\x00" in item or len(item) > MAX_PARAM_LENGTH:
                raise forms.ValidationError("Invalid value.")
        return [item.strip() for item in values if item.strip()]


class ListFilter(django_filters.Filter):
    field_class = TextListField


def bracketed(filterset_class):
    """Rename each ListFilter ``name`` to ``name[]``, the parameter Canvas clients send."""
    filterset_class.base_filters = {
        (f"{name}[]" if isinstance(item, ListFilter) else name): item
        for name, item in filterset_class.base_filters.items()
    }
    return filterset_class


def _course_ok() -> Q:
    """Canvas's QueryBuilder: students and observers in available courses.

    Teachers, TAs and designers in courses not yet published too.
    """
    return Q(type__in=STUDENT_LIKE, course__workflow_state=Course.State.AVAILABLE) | Q(
        type__in=STAFF_LIKE,
        course__workflow_state__in=[Course.State.AVAILABLE, Course.State.UNPUBLISHED],
    )


def _ended(now) -> Q:
    """Concluded by date or by the course: the date-aware "completed"."""
    return Q(course__workflow_state=Course.State.COMPLETED) | Q(course__term__end_at__lte=now)


def _future(now) -> Q:
    return Q(course__term__start_at__gt=now)


def self_state_condition(value: str, now) -> Q:
    """One ``state[]`` value on a user's own enrollments, as Canvas's QueryBuilder reads it."""
    live = Q(workflow_state=EnrollmentState.ACTIVE) & _course_ok()
    invited = Q(workflow_state=EnrollmentState.INVITED) & _course_ok()
    conditions = {
        "active": live & ~_future(now) & ~_ended(now),
        "invited": invited & ~_future(now) & ~_ended(now),
        # Enrollments here are never left half-created.
        "creation_pending": Q(pk__in=[]),
        "pending_active": live & _future(now),
        "pending_invited": invited & _future(now),
        "inactive": Q(workflow_state=EnrollmentState.INACTIVE),
        "rejected": Q(workflow_state=EnrollmentState.REJECTED),
        "completed": Q(workflow_state=EnrollmentState.COMPLETED) | ((live | invited) & _ended(now)),
    }
    if value in conditions:
        return conditions[value]
    current = (live | invited) & ~_ended(now)
    if value == "current_and_invited":
        return current & ~_future(now)
    if value == "current_and_future":
        return current
    if value == "current_future_and_restricted":
        return current | Q(workflow_state=EnrollmentState.INACTIVE)
    # current_and_concluded
    return (current & ~_future(now)) | conditions["completed"]


@bracketed
class EnrollmentFilterSet(django_filters.FilterSet):
    """``type[]``, ``role[]``, ``state[]``, ``user_id`` and the ``sis_*[]`` filters of enrollments.

    ``scope`` (services.rosters.EnrollmentScope) decides ``state[]``'s
    default and meaning; ``read_sis`` whether the SIS filters are allowed.
    """

    type = ListFilter(method="filter_type")
    role = ListFilter(method="filter_role")
    state = ListFilter(method="filter_state")
    sis_course_id = ListFilter(method="filter_sis_course")
    sis_account_id = ListFilter(method="filter_sis_account")
    sis_user_id = ListFilter(method="filter_sis_user")

    def __init__(self, *args, scope, read_sis: bool = False, **kwargs):
        self.scope = scope
        self.read_sis = read_sis
        super().__init__(*args, **kwargs)

    def filter_queryset(self, queryset):
        data = self.form.cleaned_data
        sis_filters = ("sis_course_id[]", "sis_account_id[]", "sis_user_id[]")
        if not self.read_sis and any(data.get(name) for name in sis_filters):
            raise ParameterError({"message": "Insufficient permissions to filter by SIS fields"})
        if data.get("role[]"):
            # Canvas: type[] is ignored when a role is given.
            data = {**data, "type[]": []}
        if not data.get("state[]"):
            queryset = queryset.filter(self.default_state())
        for name, value in data.items():
            queryset = self.filters[name].filter(queryset, value)
        return queryset

    def default_state(self) -> Q:
        now = timezone.now()
        path = self.scope.path
        if path == "self":
            return self_state_condition("current_and_invited", now)
        if path == "other":
            return Q(workflow_state__in=[EnrollmentState.ACTIVE, EnrollmentState.INVITED])
        if path == "course_observer":
            return Q()
        excluded = [EnrollmentState.REJECTED, EnrollmentState.COMPLETED, EnrollmentState.DELETED]
        if not self.scope.read_as_admin:
            excluded.append(EnrollmentState.INACTIVE)
        return ~Q(workflow_state__in=excluded)

    def filter_state(self, queryset, name, values):
        if self.scope.path != "self":
            return queryset.filter(workflow_state__in=values)
        for value in values:
            if value not in SELF_STATES:
                raise ParameterError({"error": f"Invalid state {value}"})
        now = timezone.now()
        condition = Q(pk__in=[])
        for value in values:
            condition |= self_state_condition(value, now)
        return queryset.filter(condition)

    def filter_type(self, queryset, name, values):
        return queryset.filter(type__in=[TYPES_BY_NAME[v] for v in values if v in TYPES_BY_NAME])

    def filter_role(self, queryset, name, values):
        unknown = [value for value in values if value not in TYPES_BY_NAME]
        if unknown:
            raise ParameterError({"errors": [{"message": "role not found"}]})
        return queryset.filter(type__in=[TYPES_BY_NAME[value] for value in values])

    def filter_sis_course(self, queryset, name, values):
        return queryset.filter(course__sis_course_id__in=values)

    def filter_sis_account(self, queryset, name, values):
        return queryset.filter(course__account__sis_account_id__in=values)

    def filter_sis_user(self, queryset, name, values):
        logins = Login.objects.filter(
            user_id=OuterRef("user_id"),
            root_account_id=OuterRef("root_account_id"),
            sis_user_id__in=values,
        ).exclude(workflow_state=Login.State.DELETED)
        return queryset.filter(Exists(logins))


ENROLLMENT_TYPE_PARAM = {
    "teacher": EnrollmentType.TEACHER,
    "student": EnrollmentType.STUDENT,
    "ta": EnrollmentType.TA,
    "observer": EnrollmentType.OBSERVER,
    "designer": EnrollmentType.DESIGNER,
}
COURSE_STATES = {
    "unpublished": [Course.State.UNPUBLISHED],
    "available": [Course.State.AVAILABLE],
    "completed": [Course.State.COMPLETED],
    "deleted": [Course.State.DELETED],
}


@bracketed
class CourseEnrollmentFilterSet(django_filters.FilterSet):
    """The enrollments that make a course list (``GET /courses``, ``/users/:id/courses``).

    ``enrollment_type``, ``enrollment_role``, ``enrollment_state`` pick the
    user's enrollments; ``state[]`` picks the courses' states. Without either
    state Canvas lists "current and invited" enrollments.
    """

    enrollment_type = django_filters.CharFilter(method="filter_enrollment_type")
    enrollment_role = django_filters.CharFilter(method="filter_enrollment_role")
    enrollment_state = django_filters.CharFilter(method="filter_enrollment_state")
    state = ListFilter(method="filter_course_state")

    def filter_queryset(self, queryset):
        data = self.form.cleaned_data
        if not data.get("enrollment_state") and not data.get("state[]"):
            queryset = queryset.filter(self_state_condition("current_and_invited", timezone.now()))
        if data.get("enrollment_role"):
            data = {**data, "enrollment_type": ""}
        for name, value in data.items():
            queryset = self.filters[name].filter(queryset, value)
        if not data.get("state[]"):
            queryset = queryset.exclude(course__workflow_state=Course.State.DELETED)
        return queryset

    def filter_enrollment_type(self, queryset, name, value):
        return queryset.filter(type=ENROLLMENT_TYPE_PARAM.get(value.strip(), "-"))

    def filter_enrollment_role(self, queryset, name, value):
        return queryset.filter(type=TYPES_BY_NAME.get(value.strip(), "-"))

    def filter_enrollment_state(self, queryset, name, value):
        now = timezone.now()
        value = value.strip()
        if value == "active":
            return queryset.filter(self_state_condition("active", now))
        if value == "invited_or_pending":
            return queryset.filter(
                self_state_condition("invited", now)
                | self_state_condition("pending_active", now)
                | self_state_condition("pending_invited", now)
            )
        if value == "completed":
            return queryset.filter(self_state_condition("completed", now))
        return queryset.none()

    def filter_course_state(self, queryset, name, values):
        states = [state for value in values for state in COURSE_STATES.get(value, [])]
        return queryset.filter(course__workflow_state__in=states).exclude(
            workflow_state=EnrollmentState.DELETED
        )
