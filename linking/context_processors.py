def root_account(request):
    return {"root_account": getattr(request, "root_account", None)}


def families(request):
    """The language switch's choices and whether to remind a parent to confirm their address."""
    from django.conf import settings

    from .services.verification import is_unverified

    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    return {
        "site_languages": settings.LANGUAGES,
        "email_unverified": bool(signed_in and is_unverified(user)),
    }
