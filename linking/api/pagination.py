"""Canvas pagination (canvas-behaviour.md §4): ``page``/``per_page`` and the ``Link`` header."""

import math
import re
from dataclasses import dataclass
from urllib.parse import quote

from rest_framework.exceptions import NotFound

DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100
_LEADING_INTEGER = re.compile(r"^\s*([+-]?\d+)")
_PAGE = re.compile(r"^\s*(\d{1,18})\s*$")
# Never echoed back into the Link header: they are pagination itself or credentials.
_OWN_PARAMS = {"page", "per_page", "access_token", "api_key"}


@dataclass(frozen=True)
class PageRequest:
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def page_request(query_params) -> PageRequest:
    """``per_page`` as Ruby's ``to_i`` reads it, clamped to 1..100; a bad ``page`` is a 404."""
    raw_per_page = query_params.get("per_page")
    if raw_per_page is None or raw_per_page == "":
        per_page = DEFAULT_PER_PAGE
    else:
        match = _LEADING_INTEGER.match(raw_per_page)
        per_page = int(match.group(1)) if match else 0
        per_page = min(max(per_page, 1), MAX_PER_PAGE)
    raw_page = query_params.get("page")
    if raw_page is None or raw_page == "":
        page = 1
    else:
        match = _PAGE.match(raw_page)
        if not match or int(match.group(1)) < 1:
            raise NotFound()
        page = int(match.group(1))
    return PageRequest(page=page, per_page=per_page)


def _to_query(query_params) -> str:
    """The other query parameters as Rails's ``to_query`` writes them: escaped pairs, sorted."""
    pairs = []
    for key in query_params:
        if key in _OWN_PARAMS:
            continue
        for value in query_params.getlist(key):
            pairs.append(f"{quote(key, safe='')}={quote(value, safe='')}")
    return "&".join(sorted(pairs))


def _url_prefix(request) -> str:
    """The request's absolute URL and other parameters, ready for ``page=...&per_page=...``."""
    base = f"{request.scheme}://{request.get_host()}{quote(request.path, safe='/:@!$&()*+,;=-._~')}"
    query = _to_query(request.query_params)
    return f"{base}?{query}&" if query else f"{base}?"


def link_header(request, *, page: PageRequest, total: int) -> str:
    """``<url>; rel="current",<url>; rel="next",...``: current, next, prev, first, last."""
    prefix = _url_prefix(request)
    last = max(1, math.ceil(total / page.per_page))

    def url(number: int) -> str:
        return f"{prefix}page={number}&per_page={page.per_page}"

    rels = [("current", page.page)]
    if page.page < last:
        rels.append(("next", page.page + 1))
    if page.page > 1:
        rels.append(("prev", page.page - 1))
    rels += [("first", 1), ("last", last)]
    return ",".join(f'<{url(number)}>; rel="{rel}"' for rel, number in rels)


def open_ended_link_header(request, *, page: PageRequest, has_next: bool) -> str:
    """Canvas's bookmark-style rels for lists counted by nobody: current, next, prev, first.

    The enrollment and course lists never count their rows (Canvas has no
    ``last`` there either); one extra row read tells whether a next page exists.
    """
    prefix = _url_prefix(request)

    def url(number: int) -> str:
        return f"{prefix}page={number}&per_page={page.per_page}"

    rels = [("current", page.page)]
    if has_next:
        rels.append(("next", page.page + 1))
    if page.page > 1:
        rels.append(("prev", page.page - 1))
    rels.append(("first", 1))
    return ",".join(f'<{url(number)}>; rel="{rel}"' for rel, number in rels)
