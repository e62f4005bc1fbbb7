"""The Canvas User Observees API: parse the request, call one service, render Canvas's JSON.

ViewSets the router in ``urls.py`` mounts on Canvas's paths: observees and
observers map onto list, create, retrieve, update and destroy. Every domain
error raised here is translated by ``errors.canvas_exception_handler``.
Success is always 200, as in Canvas.
"""

from django.urls import Resolver404, resolve
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from linking.models import AuditSource
from linking.request_context import actor_from_request
from linking.services import observees as observee_queries
from linking.services.errors import NotFound
from linking.services.pairing import issue_pairing_code
from linking.services.permissions import associated_root_account_ids, authorize_target_user
from linking.services.resolution import resolve_root_account_param, resolve_user

from . import serializers as s
from .pagination import link_header, page_request
from .params import includes, param, path_reference

ERRORS = {401: s.ErrorSerializer, 404: s.ErrorSerializer}
USER_ID = OpenApiParameter(
    "user_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description=(
        "A user id, `self`, or `sis_user_id:`/`sis_login_id:`/`sis_integration_id:` + value."
    ),
)
OBSERVEE_ID = OpenApiParameter(
    "observee_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The student (same forms)."
)
OBSERVER_ID = OpenApiParameter(
    "observer_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The observer (same forms)."
)
LIST_PARAMETERS = [
    USER_ID,
    OpenApiParameter(
        "include[]",
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        many=True,
        enum=["avatar_url"],
        description="`avatar_url` adds each user's avatar when their institution has avatars on.",
    ),
    OpenApiParameter("page", OpenApiTypes.INT, OpenApiParameter.QUERY, description="From 1."),
    OpenApiParameter(
        "per_page", OpenApiTypes.INT, OpenApiParameter.QUERY, description="1..100, default 10."
    ),
]
ROOT_ACCOUNT_QUERY = OpenApiParameter(
    "root_account_id",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    description='A root account id, or "all" (may also be sent in the body).',
)


class CanvasViewSet(viewsets.ViewSet):
    """A ViewSet answering Canvas's way: users from ``:user_id`` forms, Canvas's errors.

    ``view_names`` keeps the names the browsable API and OPTIONS showed for
    each route before the API moved onto ViewSets.
    """

    view_names: dict[str, str] = {}

    def get_view_name(self):
        return self.view_names.get(getattr(self, "action", None)) or super().get_view_name()

    def get_view_description(self, html=False):
        return ""

    def resolve(self, reference: str, *, include_deleted: bool = False):
        return resolve_user(
            path_reference(reference),
            caller=self.request.user,
            root_account=self.request.root_account,
            include_deleted=include_deleted,
        )

    def actor(self):
        return actor_from_request(self.request, AuditSource.API)

    def authorize_target(self, target, root_account_ids=None) -> set[int] | None:
        """§2.0's self-or-admin check; returns the admin's root accounts (None for self)."""
        caller = self.request.user
        if caller.pk == target.pk:
            return None
        if root_account_ids is None:
            root_account_ids = associated_root_account_ids(target)
        return authorize_target_user(
            caller=caller, target=target, root_account_ids=root_account_ids
        )

    @staticmethod
    def visible_ids(root_account_ids, admin_root_account_ids):
        if admin_root_account_ids is None:
            return list(root_account_ids)
        return [pk for pk in root_account_ids if pk in admin_root_account_ids]

    def pair_json(self, *, observer, student, shown, admin_root_account_ids, require_link=False):
        """``shown``'s JSON with the pair's link root accounts; 404 if ``require_link`` and none."""
        ids = observee_queries.pair_link_root_account_ids(observer=observer, student=student)
        if require_link and not ids:
            raise NotFound()
        return s.user_json(
            shown, link_root_account_ids=self.visible_ids(ids, admin_root_account_ids)
        )


class LinkedUsersListMixin:
    direction = observee_queries.OBSERVEES

    def linked_users(self, request, user_id):
        target = self.resolve(user_id)
        admin_ids = self.authorize_target(target)
        page = page_request(request.query_params)
        result = observee_queries.linked_users_page(
            user=target,
            direction=self.direction,
            offset=page.offset,
            limit=page.per_page,
            with_avatars="avatar_url" in includes(request),
        )
        ids = [user.pk for user in result.users]
        visibility = observee_queries.sis_visibility(
            caller=request.user, root_account=request.root_account
        )
        logins = (
            observee_queries.logins_in_root_account(user_ids=ids, root_account=request.root_account)
            if visibility.any
            else {}
        )
        avatar_url = s.AvatarUrls(request)
        rows = []
        for user in result.users:
            row = s.user_json(
                user,
                link_root_account_ids=self.visible_ids(
                    result.link_root_account_ids.get(user.pk, []), admin_ids
                ),
            )
            if user.pk in result.avatars_enabled:
                row["avatar_url"] = avatar_url(user)
            login = logins.get(user.pk)
            if visibility.sis_ids:
                row["sis_user_id"] = login.sis_user_id if login else None
                row["integration_id"] = login.integration_id if login else None
            if visibility.login_ids and login is not None:
                row["login_id"] = login.unique_id
            rows.append(row)
        return Response(rows, headers={"Link": link_header(request, page=page, total=result.total)})


class ObserveeViewSet(LinkedUsersListMixin, CanvasViewSet):
    """``/users/:user_id/observees`` and ``/users/:user_id/observees/:observee_id``."""

    direction = observee_queries.OBSERVEES
    lookup_field = "observee_id"
    lookup_value_regex = "[^/]+"
    view_names = {
        "list": "Observee List",
        "create": "Observee List",
        "retrieve": "Observee Detail",
        "update": "Observee Detail",
        "destroy": "Observee Detail",
    }

    @extend_schema(
        operation_id="list_observees",
        summary="List the students a user observes",
        parameters=LIST_PARAMETERS,
        responses={200: s.ObserveeSerializer(many=True), **ERRORS},
    )
    def list(self, request, user_id):
        return self.linked_users(request, user_id)

    @extend_schema(
        operation_id="add_observee",
        summary="Link a student by access token, pairing code or login and password",
        description=(
            "Precedence: `access_token`, then `pairing_code`, then "
            "`observee[unique_id]` + `observee[password]`. Nothing to link answers 400."
        ),
        parameters=[USER_ID, ROOT_ACCOUNT_QUERY],
        request=s.ObserveeCreateSerializer,
        responses={
            200: s.ObserveeSerializer,
            400: s.ErrorSerializer,
            415: s.ErrorSerializer,
            422: s.ErrorSerializer,
            429: s.ErrorSerializer,
            **ERRORS,
        },
    )
    def create(self, request, user_id):
        access_token = param(request, "access_token")
        pairing_code = param(request, "pairing_code")
        unique_id = param(request, "observee", "unique_id")
        password = param(request, "observee", "password")
        narrowing = resolve_root_account_param(
            param(request, "root_account_id"), domain_root_account=request.root_account
        )
        observer = self.resolve(user_id)
        student, admin_ids = observee_queries.add_observee(
            observer=observer,
            root_account=request.root_account,
            narrowing=narrowing,
            actor=self.actor(),
            access_token=access_token,
            pairing_code=pairing_code,
            unique_id=unique_id,
            password=password,
        )
        return Response(
            self.pair_json(
                observer=observer, student=student, shown=student, admin_root_account_ids=admin_ids
            )
        )

    @extend_schema(
        operation_id="show_observee",
        summary="Show a student the user observes",
        parameters=[USER_ID, OBSERVEE_ID],
        responses={200: s.ObserveeSerializer, **ERRORS},
    )
    def retrieve(self, request, user_id, observee_id):
        observer = self.resolve(user_id)
        admin_ids = self.authorize_target(observer)
        student = self.resolve(observee_id)
        return Response(
            self.pair_json(
                observer=observer,
                student=student,
                shown=student,
                admin_root_account_ids=admin_ids,
                require_link=True,
            )
        )

    @extend_schema(
        operation_id="add_observee_by_id",
        summary="Link a student by id (admins with manage_user_observers)",
        parameters=[USER_ID, OBSERVEE_ID, ROOT_ACCOUNT_QUERY],
        request=s.RootAccountParamSerializer,
        responses={
            200: s.ObserveeSerializer,
            400: s.ErrorSerializer,
            415: s.ErrorSerializer,
            **ERRORS,
        },
    )
    def update(self, request, user_id, observee_id):
        raw_root_account = param(request, "root_account_id")
        observer = self.resolve(user_id)
        student = self.resolve(observee_id)
        narrowing = resolve_root_account_param(
            raw_root_account, domain_root_account=request.root_account
        )
        admin_ids = observee_queries.link_observee_by_id(
            observer=observer, student=student, narrowing=narrowing, actor=self.actor()
        )
        if request.user.pk == observer.pk:
            admin_ids = None
        return Response(
            self.pair_json(
                observer=observer, student=student, shown=student, admin_root_account_ids=admin_ids
            )
        )

    @extend_schema(
        operation_id="remove_observee",
        summary="Unlink a student (all shared root accounts, or root_account_id's only)",
        parameters=[USER_ID, OBSERVEE_ID, ROOT_ACCOUNT_QUERY],
        request=None,
        responses={
            200: s.ObserveeSerializer,
            400: s.ErrorSerializer,
            415: s.ErrorSerializer,
            **ERRORS,
        },
    )
    def destroy(self, request, user_id, observee_id):
        raw_root_account = param(request, "root_account_id")
        observer = self.resolve(user_id)
        admin_ids = self.authorize_target(observer)
        student = self.resolve(observee_id)
        root_account = None
        if raw_root_account is not None and raw_root_account.strip() not in ("", "all"):
            root_account = resolve_root_account_param(
                raw_root_account, domain_root_account=request.root_account
            )
        observee_queries.remove_observee(
            observer=observer,
            student=student,
            admin_root_account_ids=admin_ids,
            root_account=root_account,
            actor=self.actor(),
        )
        return Response(
            self.pair_json(
                observer=observer, student=student, shown=student, admin_root_account_ids=admin_ids
            )
        )


class ObserverViewSet(LinkedUsersListMixin, CanvasViewSet):
    """``/users/:user_id/observers`` and ``/users/:user_id/observers/:observer_id``."""

    direction = observee_queries.OBSERVERS
    lookup_field = "observer_id"
    lookup_value_regex = "[^/]+"
    view_names = {"list": "Observer List", "retrieve": "Observer Detail"}

    @extend_schema(
        operation_id="list_observers",
        summary="List the observers of a student",
        parameters=LIST_PARAMETERS,
        responses={200: s.ObserveeSerializer(many=True), **ERRORS},
    )
    def list(self, request, user_id):
        return self.linked_users(request, user_id)

    @extend_schema(
        operation_id="show_observer",
        summary="Show an observer of the student",
        parameters=[USER_ID, OBSERVER_ID],
        responses={200: s.ObserveeSerializer, **ERRORS},
    )
    def retrieve(self, request, user_id, observer_id):
        student = self.resolve(user_id)
        admin_ids = self.authorize_target(student)
        observer = self.resolve(observer_id)
        return Response(
            self.pair_json(
                observer=observer,
                student=student,
                shown=observer,
                admin_root_account_ids=admin_ids,
                require_link=True,
            )
        )


class PairingCodeViewSet(CanvasViewSet):
    """``POST /users/:user_id/observer_pairing_codes``."""

    view_names = {"create": "Pairing Code"}

    @extend_schema(
        operation_id="create_observer_pairing_code",
        summary="Issue a pairing code for a student",
        parameters=[USER_ID],
        request=None,
        responses={200: s.PairingCodeSerializer, 429: s.ErrorSerializer, **ERRORS},
    )
    def create(self, request, user_id):
        student = self.resolve(user_id, include_deleted=True)
        issued = issue_pairing_code(
            student=student, root_account=request.root_account, actor=self.actor()
        )
        return Response(s.pairing_code_json(issued))


class UserViewSet(CanvasViewSet):
    """``GET /users/:user_id``."""

    lookup_field = "user_id"
    lookup_value_regex = "[^/]+"
    view_names = {"retrieve": "User Detail"}

    @extend_schema(
        operation_id="show_user",
        summary="Show a user (yourself, a linked user, or one you administer)",
        parameters=[USER_ID],
        responses={200: s.UserSerializer, **ERRORS},
    )
    def retrieve(self, request, user_id):
        user = self.resolve(user_id)
        observee_queries.authorize_user_read(caller=request.user, target=user)
        return Response(s.user_json(user))


def without_trailing_slash(request, api_path):
    """``/api/v1/.../`` answers as ``/api/v1/...`` (Canvas's routes take an optional slash)."""
    try:
        match = resolve(f"/{api_path}")
    except Resolver404:
        match = None
    if match is None or match.func is without_trailing_slash:
        return UnknownEndpointView.as_view()(request)
    return match.func(request, *match.args, **match.kwargs)


class UnknownEndpointView(APIView):
    """Any other ``/api/`` path: Canvas's 404 body instead of an HTML page."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    schema = None

    def http_method_not_allowed(self, request, *args, **kwargs):
        raise NotFound()

    def get(self, request, *args, **kwargs):
        raise NotFound()

    post = put = patch = delete = get
