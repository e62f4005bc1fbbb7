"""API permission classes. Per-object rules live in linking.services.permissions."""

from rest_framework.permissions import BasePermission


class IsAuthenticatedCanvas(BasePermission):
    """A signed-in caller; anyone else gets Canvas's 401 "user authorization required"."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user is not None and getattr(user, "is_authenticated", False))
