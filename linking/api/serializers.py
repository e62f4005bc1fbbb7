"""Canvas's JSON for users and pairing codes.

Rendering is plain functions building dicts: the list endpoints are the hot
path and need no per-field machinery. The Serializer classes below exist to
describe the same shapes (and the request bodies) in the OpenAPI schema.
"""

import datetime as dt

from rest_framework import serializers

FALLBACK_AVATAR_PATH = "/images/messages/avatar-50.png"


def iso8601(value: dt.datetime | None) -> str | None:
    """Canvas's timestamp form: UTC, whole seconds, ``Z`` (2026-11-26T17:45:25Z)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_json(user, *, link_root_account_ids=None) -> dict:
    """The always-present fields of Canvas's User object, plus the link ids when given."""
    data = {
        "id": user.pk,
        "name": user.name,
        "created_at": iso8601(user.created_at),
        "sortable_name": user.sortable_name,
        "short_name": user.short_name,
    }
    if user.pronouns:
        data["pronouns"] = user.pronouns
    if link_root_account_ids is not None:
        data["observation_link_root_account_ids"] = list(link_root_account_ids)
    return data


class AvatarUrls:
    """Avatar URLs for one request: relative paths get its scheme and host (Canvas).

    A page of a hundred users mostly shares a few paths (the fallback above
    all), so each distinct path is made absolute once per request.
    """

    def __init__(self, request):
        self.request = request
        self._absolute: dict[str, str] = {}

    def __call__(self, user) -> str:
        url = user.avatar_url or FALLBACK_AVATAR_PATH
        if url.startswith(("http://", "https://")):
            return url
        absolute = self._absolute.get(url)
        if absolute is None:
            path = url if url.startswith("/") else f"/{url}"
            absolute = self._absolute[url] = self.request.build_absolute_uri(path)
        return absolute


def pairing_code_json(issued) -> dict:
    return {
        "user_id": issued.pairing_code.student_id,
        "code": issued.plaintext,
        "expires_at": iso8601(issued.expires_at),
        "workflow_state": "active",
    }


# --- OpenAPI descriptions -------------------------------------------------------------------


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    sortable_name = serializers.CharField()
    short_name = serializers.CharField()
    pronouns = serializers.CharField(required=False, help_text="Only when the user set pronouns.")


class ObserveeSerializer(UserSerializer):
    avatar_url = serializers.URLField(
        required=False,
        help_text="With include[]=avatar_url when the user's institution has avatars on.",
    )
    sis_user_id = serializers.CharField(
        required=False, allow_null=True, help_text="List endpoints, callers with read_sis only."
    )
    integration_id = serializers.CharField(
        required=False, allow_null=True, help_text="List endpoints, callers with read_sis only."
    )
    login_id = serializers.CharField(
        required=False, help_text="List endpoints, callers with view_user_logins only."
    )
    observation_link_root_account_ids = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Root accounts with an active link for the pair (filtered for admins).",
    )


class PairingCodeSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    code = serializers.CharField(help_text="Shown once; format ABCD-EFGH.")
    expires_at = serializers.DateTimeField()
    workflow_state = serializers.CharField()


class GradesSerializer(serializers.Serializer):
    html_url = serializers.URLField()


class EnrollmentBaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    user_id = serializers.IntegerField()
    course_id = serializers.IntegerField()
    type = serializers.CharField(help_text="StudentEnrollment, TeacherEnrollment, ...")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    associated_user_id = serializers.IntegerField(
        allow_null=True, help_text="Observer enrollments: the observed student."
    )
    start_at = serializers.DateTimeField(allow_null=True)
    end_at = serializers.DateTimeField(allow_null=True)
    course_section_id = serializers.IntegerField(allow_null=True)
    root_account_id = serializers.IntegerField()
    limit_privileges_to_course_section = serializers.BooleanField()
    enrollment_state = serializers.CharField()
    role = serializers.CharField()
    role_id = serializers.IntegerField()
    html_url = serializers.URLField()
    grades = GradesSerializer(required=False, help_text="Student enrollments only.")
    sis_course_id = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="Callers with read_sis only (also sis_user_id,"
        " sis_account_id, course_integration_id, sis_section_id, section_integration_id).",
    )


class RosterUserSerializer(UserSerializer):
    avatar_url = serializers.URLField(
        required=False, help_text="With include[]=avatar_url when the school has avatars on."
    )
    uuid = serializers.CharField(required=False, help_text="With include[]=uuid.")


class ObservedUserSerializer(RosterUserSerializer):
    enrollments = EnrollmentBaseSerializer(many=True)


class EnrollmentSerializer(EnrollmentBaseSerializer):
    user = RosterUserSerializer()
    observed_user = ObservedUserSerializer(
        required=False, help_text="With include[]=observed_users, on observer enrollments."
    )


class CourseEnrollmentSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="student, teacher, ta, designer or observer.")
    role = serializers.CharField()
    role_id = serializers.IntegerField()
    user_id = serializers.IntegerField()
    enrollment_state = serializers.CharField()
    limit_privileges_to_course_section = serializers.BooleanField()
    associated_user_id = serializers.IntegerField(required=False)


class CourseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    account_id = serializers.IntegerField()
    start_at = serializers.DateTimeField(allow_null=True)
    grading_standard_id = serializers.IntegerField(allow_null=True)
    is_public = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    course_code = serializers.CharField()
    default_view = serializers.CharField()
    root_account_id = serializers.IntegerField()
    enrollment_term_id = serializers.IntegerField(allow_null=True)
    end_at = serializers.DateTimeField(allow_null=True)
    public_syllabus = serializers.BooleanField()
    public_syllabus_to_auth = serializers.BooleanField()
    is_public_to_auth_users = serializers.BooleanField()
    apply_assignment_group_weights = serializers.BooleanField()
    time_zone = serializers.CharField()
    blueprint = serializers.BooleanField()
    enrollments = CourseEnrollmentSerializer(many=True)
    hide_final_grades = serializers.BooleanField()
    workflow_state = serializers.CharField()
    restrict_enrollments_to_course_dates = serializers.BooleanField()


class ErrorMessageSerializer(serializers.Serializer):
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    status = serializers.CharField(required=False)
    errors = ErrorMessageSerializer(many=True)


class ObserveeCredentialsSerializer(serializers.Serializer):
    unique_id = serializers.CharField(required=False, help_text="The student's login id.")
    password = serializers.CharField(required=False, help_text="The student's password.")


class ObserveeCreateSerializer(serializers.Serializer):
    observee = ObserveeCredentialsSerializer(
        required=False, help_text="Form keys observee[unique_id] and observee[password]."
    )
    access_token = serializers.CharField(
        required=False, help_text="An access token of the student (used first when present)."
    )
    pairing_code = serializers.CharField(
        required=False, help_text="A pairing code issued for the student."
    )
    root_account_id = serializers.CharField(
        required=False, help_text='A root account id, or "all"; default the current one.'
    )


class RootAccountParamSerializer(serializers.Serializer):
    root_account_id = serializers.CharField(
        required=False, help_text='A root account id, or "all".'
    )
