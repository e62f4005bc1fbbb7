"""Canvas's Enrollments and Courses APIs, read-only: who is enrolled where, for observers above all.

``GET /api/v1/users/:user_id/enrollments``, ``GET /api/v1/courses/:course_id/enrollments``,
``GET /api/v1/courses`` and ``GET /api/v1/users/:user_id/courses``, as ViewSets
the router mounts. Who may read what is ``services.rosters``; the
parameters are FilterSets (``filters.py``); the JSON is Canvas's
(canvas-oauth-scopes-enrollments.md §4.5, §5.4, §5.5).
"""

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from linking.models import Course, Enrollment, EnrollmentState, EnrollmentType, User
from linking.services import rosters
from linking.services.observees import logins_in_root_account, sis_visibility

from . import serializers as s
from .errors import error_body
from .filters import TYPE_NAMES, CourseEnrollmentFilterSet, EnrollmentFilterSet, ParameterError
from .pagination import open_ended_link_header, page_request
from .params import includes, path_reference
from .views import USER_ID, CanvasViewSet

# Canvas's ids of its built-in course roles (a fresh install's RoleOverride base roles).
ROLE_IDS = {
    EnrollmentType.STUDENT: 3,
    EnrollmentType.TEACHER: 4,
    EnrollmentType.TA: 5,
    EnrollmentType.DESIGNER: 6,
    EnrollmentType.OBSERVER: 7,
}
_ENDED = [EnrollmentState.COMPLETED, EnrollmentState.DELETED, EnrollmentState.REJECTED]
# The query parameters the enrollment FilterSet reads.
FILTER_PARAMS = frozenset(EnrollmentFilterSet.base_filters)
# Offsets past this read nothing; keeps OFFSET inside a 64-bit integer for any ``page``.
_MAX_OFFSET = 10**15


def _parameter_error(error: ParameterError) -> Response:
    return Response(error.body, status=status.HTTP_400_BAD_REQUEST)


def _filter_errors(filterset) -> Response:
    return Response(
        error_body("; ".join(f"{name}: invalid value" for name in filterset.errors)),
        status=status.HTTP_400_BAD_REQUEST,
    )


class RosterJson:
    """Canvas's enrollment and course JSON for one request (absolute URLs, includes, SIS fields)."""

    def __init__(self, request, *, wanted: set[str], sis: bool):
        self.request = request
        self.wanted = wanted
        self.sis = sis
        self.avatar_url = s.AvatarUrls(request)
        self.logins: dict = {}
        self._users: dict[tuple, dict] = {}
        # Every row has two links; the scheme and host are worked out once.
        self.origin = request.build_absolute_uri("/")[:-1]

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    def user(self, user, enrollment) -> dict:
        """The user JSON; ``enrollment``'s root account (read only for avatars) decides avatars.

        One user's enrollments repeat the same user: built once per user and school.
        """
        key = (user.pk, enrollment.root_account_id)
        data = self._users.get(key)
        if data is None:
            data = s.user_json(user)
            if "avatar_url" in self.wanted and enrollment.root_account.avatars_enabled:
                data["avatar_url"] = self.avatar_url(user)
            if "uuid" in self.wanted:
                data["uuid"] = user.uuid.hex
            self._users[key] = data
        return dict(data)

    def grades(self, enrollment) -> dict:
        # No gradebook lives here: Canvas's grades object with its link only.
        return {
            "html_url": self.url(f"/courses/{enrollment.course_id}/grades/{enrollment.user_id}")
        }

    def enrollment(self, enrollment, *, with_user: bool = True) -> dict:
        course = enrollment.course
        kind = enrollment.type
        data = {
            "id": enrollment.pk,
            "user_id": enrollment.user_id,
            "course_id": enrollment.course_id,
            "type": TYPE_NAMES[kind],
            "created_at": s.iso8601(enrollment.created_at),
            "updated_at": s.iso8601(enrollment.updated_at),
            "associated_user_id": enrollment.associated_user_id,
            "start_at": s.iso8601(enrollment.start_at),
            "end_at": s.iso8601(enrollment.end_at),
            "course_section_id": None,
            "root_account_id": enrollment.root_account_id,
            "limit_privileges_to_course_section": False,
            "enrollment_state": (
                EnrollmentState.DELETED
                if course.workflow_state == Course.State.DELETED
                else enrollment.workflow_state
            ),
            "role": TYPE_NAMES[kind],
            "role_id": ROLE_IDS[kind],
            "html_url": self.url(f"/courses/{enrollment.course_id}/users/{enrollment.user_id}"),
        }
        if kind == EnrollmentType.STUDENT:
            data["grades"] = self.grades(enrollment)
        if self.sis:
            login = self.logins.get(enrollment.user_id)
            data.update(
                {
                    "sis_account_id": course.account.sis_account_id,
                    "sis_course_id": course.sis_course_id,
                    "course_integration_id": None,
                    "sis_section_id": None,
                    "section_integration_id": None,
                    "sis_user_id": login.sis_user_id if login else None,
                }
            )
        if with_user:
            data["user"] = self.user(enrollment.user, enrollment)
        return data

    def course_enrollment(self, enrollment) -> dict:
        data = {
            "type": enrollment.type,
            "role": TYPE_NAMES[enrollment.type],
            "role_id": ROLE_IDS[enrollment.type],
            "user_id": enrollment.user_id,
            "enrollment_state": enrollment.workflow_state,
            "limit_privileges_to_course_section": False,
        }
        if enrollment.type == EnrollmentType.OBSERVER and enrollment.associated_user_id:
            data["associated_user_id"] = enrollment.associated_user_id
        return data

    def course(self, course, enrollments) -> dict:
        term = course.term
        data = {
            "id": course.pk,
            "name": course.name,
            "account_id": course.account_id,
            "start_at": s.iso8601(term.start_at) if term else None,
            "grading_standard_id": None,
            "is_public": False,
            "created_at": s.iso8601(course.created_at),
            "course_code": course.course_code,
            "default_view": "modules",
            "root_account_id": course.root_account_id,
            "enrollment_term_id": course.term_id,
            "end_at": s.iso8601(term.end_at) if term else None,
            "public_syllabus": False,
            "public_syllabus_to_auth": False,
            "is_public_to_auth_users": False,
            "apply_assignment_group_weights": False,
            "time_zone": settings.TIME_ZONE,
            "blueprint": False,
            "enrollments": [self.course_enrollment(e) for e in enrollments],
            "hide_final_grades": False,
            "workflow_state": course.workflow_state,
            "restrict_enrollments_to_course_dates": False,
        }
        if self.sis:
            data["sis_course_id"] = course.sis_course_id
            data["integration_id"] = None
        if "term" in self.wanted:
            data["term"] = (
                {
                    "id": term.pk,
                    "name": term.name,
                    "start_at": s.iso8601(term.start_at),
                    "end_at": s.iso8601(term.end_at),
                    "created_at": s.iso8601(term.created_at),
                    "workflow_state": term.workflow_state,
                    "grading_period_group_id": None,
                }
                if term
                else None
            )
        return data


def _observed_students(enrollments, json: RosterJson) -> dict:
    """For observer enrollments: student id -> (user, {course id: [their enrollments]}).

    The students' live student enrollments in the courses where they are
    observed (an observer enrollment mirrors one), with the students, in one
    query; each takes its course from the observer's row (the same course),
    so courses are read again only for SIS fields.
    """
    courses = {}
    pairs = set()
    for e in enrollments:
        if e.type == EnrollmentType.OBSERVER and e.associated_user_id:
            pairs.add((e.associated_user_id, e.course_id))
            courses[e.course_id] = e.course
    if not pairs:
        return {}
    related = ["user"]
    if json.sis:
        related += ["course", "course__account"]
    rows = (
        Enrollment.objects.filter(
            user_id__in={student for student, _course in pairs},
            course_id__in=courses.keys(),
            type=EnrollmentType.STUDENT,
        )
        .exclude(workflow_state__in=_ENDED)
        .select_related(*related)
        .order_by("id")
    )
    found: dict[int, tuple] = {}
    for row in rows:
        if not row.user.is_active or (row.user_id, row.course_id) not in pairs:
            continue
        if not json.sis:
            row.course = courses[row.course_id]
        entry = found.setdefault(row.user_id, (row.user, {}))
        entry[1].setdefault(row.course_id, []).append(row)
    return found


class RosterViewSet(CanvasViewSet):
    """The enrollment and course lists' shared paging and rendering."""

    def roster_json(self, request) -> RosterJson:
        visibility = sis_visibility(caller=request.user, root_account=request.root_account)
        return RosterJson(request, wanted=includes(request), sis=visibility.sis_ids)

    def filtered_rows(self, request, scope, json, *, offset: int, limit: int):
        """The page's enrollments through the FilterSet (or the 400 a bad parameter gets)."""
        filterset = EnrollmentFilterSet(
            data=request.query_params,
            queryset=scope.enrollments,
            scope=scope,
            read_sis=json.sis,
        )
        if not filterset.is_valid():
            return _filter_errors(filterset)
        try:
            enrollments = filterset.qs
        except ParameterError as error:
            return _parameter_error(error)
        related = ["course", "user", "root_account"]
        if json.sis:
            related.append("course__account")
        ordered = enrollments.select_related(*related).order_by("type", "user__sortable_name", "id")
        return list(ordered[offset : offset + limit])

    def enrollment_page(self, request, scope) -> Response:
        json = self.roster_json(request)
        page = page_request(request.query_params)
        offset = min(page.offset, _MAX_OFFSET)
        if scope.path == "self" and not json.sis and not FILTER_PARAMS & set(request.query_params):
            # A parent app's every start: Canvas's default for one's own
            # enrollments, through the written-out statement.
            rows = rosters.own_current_enrollments(
                user=request.user, now=timezone.now(), offset=offset, limit=page.per_page + 1
            )
            if "avatar_url" in json.wanted:
                accounts = rosters.avatar_settings(row.root_account_id for row in rows)
                for row in rows:
                    row.root_account = accounts[row.root_account_id]
        else:
            rows = self.filtered_rows(request, scope, json, offset=offset, limit=page.per_page + 1)
            if isinstance(rows, Response):
                return rows
        has_next = len(rows) > page.per_page
        rows = rows[: page.per_page]
        if json.sis:
            json.logins = logins_in_root_account(
                user_ids={row.user_id for row in rows}, root_account=request.root_account
            )
        observed = _observed_students(rows, json) if "observed_users" in json.wanted else {}
        body = []
        for row in rows:
            data = json.enrollment(row)
            student = observed.get(row.associated_user_id) if row.type == "observer" else None
            if student is not None:
                user, by_course = student
                # The same course, so the same school decides the avatar.
                shown = json.user(user, row)
                shown["enrollments"] = [
                    json.enrollment(e, with_user=False) for e in by_course.get(row.course_id, [])
                ]
                data["observed_user"] = shown
            body.append(data)
        return Response(
            body, headers={"Link": open_ended_link_header(request, page=page, has_next=has_next)}
        )

    def course_page(self, request, enrollments) -> Response:
        json = self.roster_json(request)
        filterset = CourseEnrollmentFilterSet(data=request.query_params, queryset=enrollments)
        if not filterset.is_valid():
            return _filter_errors(filterset)
        page = page_request(request.query_params)
        offset = min(page.offset, _MAX_OFFSET)
        # One user's enrollments are few: read them all with their courses in
        # one query and page over the courses they make (as Canvas does).
        by_course: dict[int, list] = {}
        courses = {}
        for row in filterset.qs.select_related("course", "course__term").order_by(
            "course__name", "course_id", "id"
        ):
            courses[row.course_id] = row.course
            by_course.setdefault(row.course_id, []).append(row)
        course_ids = list(by_course)[offset : offset + page.per_page + 1]
        has_next = len(course_ids) > page.per_page
        course_ids = course_ids[: page.per_page]
        by_course = {course_id: by_course[course_id] for course_id in course_ids}
        if "observed_users" in json.wanted:
            self.add_observed_enrollments(by_course)
        body = [json.course(courses[course_id], by_course[course_id]) for course_id in course_ids]
        return Response(
            body, headers={"Link": open_ended_link_header(request, page=page, has_next=has_next)}
        )

    @staticmethod
    def add_observed_enrollments(by_course: dict) -> None:
        """Canvas's ``include[]=observed_users``: the observed students' active enrollments."""
        wanted = {
            (e.associated_user_id, course_id)
            for course_id, rows in by_course.items()
            for e in rows
            if e.type == EnrollmentType.OBSERVER
            and e.associated_user_id
            and e.workflow_state == EnrollmentState.ACTIVE
        }
        if not wanted:
            return
        students = (
            Enrollment.objects.filter(
                user_id__in={student for student, _course in wanted},
                course_id__in={course for _student, course in wanted},
                type=EnrollmentType.STUDENT,
                workflow_state=EnrollmentState.ACTIVE,
                user__workflow_state__in=[
                    User.State.REGISTERED,
                    User.State.PRE_REGISTERED,
                ],
            )
            .only("id", "type", "user_id", "course_id", "workflow_state", "associated_user_id")
            .order_by("id")
        )
        for row in students:
            if (row.user_id, row.course_id) in wanted:
                by_course[row.course_id].append(row)


def _list_param(name, values, description):
    return OpenApiParameter(
        name,
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        many=True,
        enum=values,
        description=description,
    )


PAGING = [
    OpenApiParameter("page", OpenApiTypes.INT, OpenApiParameter.QUERY, description="From 1."),
    OpenApiParameter(
        "per_page", OpenApiTypes.INT, OpenApiParameter.QUERY, description="1..100, default 10."
    ),
]
ENROLLMENT_PARAMETERS = [
    _list_param("type[]", list(TYPE_NAMES.values()), "Enrollment types (ignored with role[])."),
    _list_param("role[]", list(TYPE_NAMES.values()), "Role names; an unknown one is a 400."),
    _list_param(
        "state[]",
        [
            "active",
            "invited",
            "creation_pending",
            "deleted",
            "rejected",
            "completed",
            "inactive",
            "current_and_invited",
            "current_and_future",
            "current_future_and_restricted",
            "current_and_concluded",
        ],
        "Default: current and invited (own), active and invited (others).",
    ),
    _list_param(
        "include[]",
        ["avatar_url", "observed_users", "uuid"],
        "`observed_users` adds `observed_user` to observer enrollments.",
    ),
    _list_param("sis_course_id[]", None, "Needs read_sis."),
    _list_param("sis_account_id[]", None, "Needs read_sis."),
    _list_param("sis_user_id[]", None, "Needs read_sis."),
    *PAGING,
]
COURSE_PARAMETERS = [
    OpenApiParameter(
        "enrollment_type",
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        enum=["teacher", "student", "ta", "observer", "designer"],
    ),
    OpenApiParameter("enrollment_role", OpenApiTypes.STR, OpenApiParameter.QUERY),
    OpenApiParameter(
        "enrollment_state",
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        enum=["active", "invited_or_pending", "completed"],
    ),
    _list_param("state[]", ["unpublished", "available", "completed", "deleted"], "Course states."),
    _list_param(
        "include[]",
        ["observed_users", "term"],
        "`observed_users` adds the observed students' enrollments to `enrollments`.",
    ),
    *PAGING,
]
ERRORS = {400: s.ErrorSerializer, 401: s.ErrorSerializer, 404: s.ErrorSerializer}


class UserEnrollmentViewSet(RosterViewSet):
    @extend_schema(
        operation_id="list_user_enrollments",
        summary="List a user's enrollments (self, a linked observer, or a roster-reading admin)",
        parameters=[USER_ID, *ENROLLMENT_PARAMETERS],
        responses={200: s.EnrollmentSerializer(many=True), **ERRORS},
    )
    def list(self, request, user_id):
        target = self.resolve(user_id)
        scope = rosters.user_enrollment_scope(
            caller=request.user, target=target, root_account=request.root_account
        )
        return self.enrollment_page(request, scope)


class CourseEnrollmentViewSet(RosterViewSet):
    @extend_schema(
        operation_id="list_course_enrollments",
        summary="List a course's enrollments (its roster, or an observer's own and students')",
        parameters=[
            OpenApiParameter(
                "course_id",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                description="A course id or `sis_course_id:` + value.",
            ),
            OpenApiParameter(
                "user_id", OpenApiTypes.STR, OpenApiParameter.QUERY, description="Only this user."
            ),
            *ENROLLMENT_PARAMETERS,
        ],
        responses={200: s.EnrollmentSerializer(many=True), **ERRORS},
    )
    def list(self, request, course_id):
        course = rosters.resolve_course(
            path_reference(course_id), root_account=request.root_account
        )
        scope = rosters.course_enrollment_scope(caller=request.user, course=course)
        user_id = request.query_params.get("user_id")
        if user_id:
            scope = rosters.EnrollmentScope(
                enrollments=scope.enrollments.filter(user=self.resolve(user_id)),
                path=scope.path,
                read_as_admin=scope.read_as_admin,
            )
        return self.enrollment_page(request, scope)


class CourseViewSet(RosterViewSet):
    @extend_schema(
        operation_id="list_courses",
        summary="List your courses, with your enrollments in each",
        parameters=COURSE_PARAMETERS,
        responses={200: s.CourseSerializer(many=True), **ERRORS},
    )
    def list(self, request):
        return self.course_page(request, Enrollment.objects.filter(user=request.user))


class UserCourseViewSet(RosterViewSet):
    @extend_schema(
        operation_id="list_user_courses",
        summary="List a user's courses (self, a linked observer, or a roster-reading admin)",
        parameters=[USER_ID, *COURSE_PARAMETERS],
        responses={200: s.CourseSerializer(many=True), **ERRORS},
    )
    def list(self, request, user_id):
        target = self.resolve(user_id)
        scope = rosters.user_enrollment_scope(
            caller=request.user, target=target, root_account=request.root_account
        )
        return self.course_page(request, scope.enrollments)
