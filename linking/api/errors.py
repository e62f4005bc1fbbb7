"""Canvas error bodies for every API failure: the one place domain errors become HTTP.

Canvas's shapes (canvas-behaviour.md §2.0): ``{"errors": [{"message": ...}]}``,
plus ``"status"`` for the two 401 flavours. DRF's own errors (malformed
JSON, unsupported media type, wrong method, ...) are answered in the same
shape so a Canvas client can always read ``errors[0].message``.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.utils import translation
from django.utils.functional import Promise
from rest_framework import exceptions, status
from rest_framework.response import Response

from linking.services import errors

from .authentication import REALM

logger = logging.getLogger(__name__)

UNAUTHENTICATED = {
    "status": "unauthenticated",
    "errors": [{"message": "user authorization required"}],
}
UNAUTHORIZED = {
    "status": "unauthorized",
    "errors": [{"message": "user not authorized to perform that action"}],
}
NOT_FOUND_MESSAGE = errors.NotFound.default_message
UNKNOWN_OBSERVEE_MESSAGE = errors.UnknownObservee.default_message


def error_body(message: str) -> dict:
    if isinstance(message, Promise):
        # A domain error's message translated lazily for the pages (services.invitations):
        # the API speaks English whatever the request's language, as Canvas does.
        with translation.override(None):
            message = str(message)
    return {"errors": [{"message": str(message)}]}


def unauthenticated_response() -> Response:
    return Response(
        UNAUTHENTICATED, status=status.HTTP_401_UNAUTHORIZED, headers={"WWW-Authenticate": REALM}
    )


def unauthorized_response() -> Response:
    return Response(UNAUTHORIZED, status=status.HTTP_401_UNAUTHORIZED)


def linking_error_response(exc: errors.LinkingError) -> Response:
    """Translate a domain error into Canvas's status code and body."""
    if isinstance(exc, errors.NotFound):
        return Response(error_body(NOT_FOUND_MESSAGE), status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, errors.NotAuthorized | errors.FeatureDisabled):
        # Canvas answers a switched-off feature (self-registration off for
        # pairing codes) with the plain "not authorized" 401.
        return unauthorized_response()
    if isinstance(exc, errors.InvalidCredentials):
        return Response(error_body(exc.message), status=status.HTTP_401_UNAUTHORIZED)
    if isinstance(
        exc, errors.UnknownObservee | errors.NoCommonRootAccount | errors.CannotObserveSelf
    ):
        # No common institution reads as "Unknown observee." for every way
        # of linking, so the reply does not reveal the student exists
        # elsewhere; linking yourself is Canvas's "Unknown observee." too (its
        # common-root-account query needs two distinct users).
        return Response(
            error_body(UNKNOWN_OBSERVEE_MESSAGE), status=status.HTTP_422_UNPROCESSABLE_ENTITY
        )
    if isinstance(exc, errors.InvalidPairingCode):
        return Response(error_body(exc.message), status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    if isinstance(exc, errors.RateLimited):
        return Response(
            error_body(exc.message),
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(exc.retry_after)},
        )
    # NothingToLink, RequiredFieldsMissing and any future rule: the request
    # itself is wrong.
    return Response(error_body(exc.message), status=status.HTTP_400_BAD_REQUEST)


def _detail_message(detail) -> str:
    if isinstance(detail, list | tuple):
        return "; ".join(_detail_message(item) for item in detail) or "Invalid request."
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_detail_message(value)}" for key, value in detail.items())
    return str(detail)


def canvas_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every error an API view raises leaves here in Canvas's shape."""
    if isinstance(exc, errors.LinkingError):
        return linking_error_response(exc)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return unauthenticated_response()
    if isinstance(exc, exceptions.PermissionDenied | DjangoPermissionDenied):
        return unauthorized_response()
    if isinstance(exc, exceptions.NotFound | Http404):
        return Response(error_body(NOT_FOUND_MESSAGE), status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, exceptions.APIException):
        headers = {}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait) + 1)
        if isinstance(exc, exceptions.MethodNotAllowed):
            view = context.get("view")
            if view is not None:
                headers["Allow"] = ", ".join(view.allowed_methods)
        return Response(
            error_body(_detail_message(exc.detail)), status=exc.status_code, headers=headers
        )
    if isinstance(exc, SuspiciousOperation):
        status_code, message = malformed_body(exc)
        return Response(error_body(message), status=status_code)
    if isinstance(exc, OperationalError | InterfaceError | errors.RateLimitStoreUnavailable):
        # A lost database or rate-limit store is not a bug: re-raised,
        # RootAccountMiddleware answers 503.
        return None
    logger.exception("unhandled error in an API view", exc_info=exc)
    return Response(
        {"errors": [{"message": "An error occurred.", "error_code": "internal_server_error"}]},
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def malformed_body(exc: SuspiciousOperation) -> tuple[int, str]:
    """Status and message for a body Django refuses to read (too large, too many fields, ...)."""
    if isinstance(exc, RequestDataTooBig):
        return 413, "The request body is too large."
    return 400, "The request is malformed."


def bad_request(request, exception=None):
    """handler400 of every page, the admin's included: Canvas's error body, 413 for a large body.

    Django answers here for the SuspiciousOperation errors raised outside
    the API's views: a body over DATA_UPLOAD_MAX_MEMORY_SIZE, more than
    DATA_UPLOAD_MAX_NUMBER_FIELDS fields, a disallowed host.
    """
    if isinstance(exception, SuspiciousOperation):
        status_code, message = malformed_body(exception)
    else:
        status_code, message = 400, "The request is malformed."
    return JsonResponse(error_body(message), status=status_code)
