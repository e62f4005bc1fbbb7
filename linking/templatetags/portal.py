"""Template helpers of the parent and student pages."""

import segno
from django import template
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

register = template.Library()


@register.simple_tag
def qr_svg(url: str, scale: int = 6):
    """An inline SVG QR code for ``url``, drawn on the server (works without JavaScript)."""
    qr = segno.make(url, error="m")
    # segno escapes the title; the SVG is generated, never user-written markup.
    return mark_safe(qr.svg_inline(scale=scale, title=_("QR code for %(url)s") % {"url": url}))  # noqa: S308
