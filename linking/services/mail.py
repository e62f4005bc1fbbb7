"""Account e-mails sent at once (password reset, address confirmation), in the person's language.

Notifications about links go through the queued outbox
(linking.services.notifications); these e-mails carry a one-time link, so
they are sent straight away through Django's e-mail backend and their
bodies are never stored. A failure to send is logged, never shown: the
pages that send them answer the same either way.
"""

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone, translation

from ..models import Account, User
from ..timezones import school_time_zone

logger = logging.getLogger(__name__)


def site_language(code: str | None) -> str | None:
    """The site language closest to a locale ("es-MX" -> "es"), or None when the site has none."""
    available = {language for language, _name in settings.LANGUAGES}
    language = (code or "").split("-")[0].lower()
    return language if language in available else None


def saved_language(user: User | None) -> str | None:
    """The site language of the person's own choice (``User.locale``), or None without one."""
    return site_language(user.locale) if user is not None else None


def language_for(user: User | None) -> str:
    """The site language closest to the person's locale ("es-MX" -> "es"), else the default."""
    return saved_language(user) or settings.LANGUAGE_CODE


def send_to_person(
    *,
    template: str,
    person: User | None,
    to: str,
    root_account: Account,
    context: dict,
    language: str | None = None,
) -> bool:
    """Render ``template``{_subject.txt,.txt,.html} in the person's language and time zone; send.

    ``language``, when given, is the message's language (an invitation's,
    whose recipient may have no account yet). Returns whether the backend
    accepted the message.
    """
    with (
        translation.override(language or language_for(person)),
        timezone.override(school_time_zone(root_account)),
    ):
        full = {
            "recipient": person,
            "school": root_account.name,
            "valid_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
            **context,
        }
        subject = " ".join(render_to_string(f"{template}_subject.txt", full).split())
        text = render_to_string(f"{template}.txt", full)
        html = render_to_string(f"{template}.html", full)
    message = EmailMultiAlternatives(subject[:255], text, settings.DEFAULT_FROM_EMAIL, [to])
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except Exception:  # any backend error: logged, the page's answer stays the same
        logger.exception("could not send %s to user %s", template, getattr(person, "pk", None))
        return False
    return True
