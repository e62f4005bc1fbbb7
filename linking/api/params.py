"""Reading Canvas-style parameters from form data, multipart, JSON and the query string.

Canvas clients send nested keys as ``observee[unique_id]`` form fields or as
JSON objects (``{"observee": {"unique_id": ...}}``); Rails merges the body and
the query string into one set of parameters, and so does ``param`` here.
"""

from rest_framework.exceptions import ParseError

MAX_PARAM_LENGTH = 10_000


def _body(request):
    data = request.data  # raises ParseError on a malformed body
    if data is None or data == "":
        return {}
    if not hasattr(data, "get"):
        raise ParseError("The request body must be a JSON object or form data.")
    return data


def _lookup(source, path: tuple[str, ...]):
    """``source["a[b]"]`` (form keys, or flat JSON keys), else ``source["a"]["b"]`` (JSON)."""
    flat = path[0] + "".join(f"[{part}]" for part in path[1:])
    if flat in source:
        return source.get(flat)
    if len(path) == 1 or hasattr(source, "getlist"):
        return None
    node = source
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _text(name: str, value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ParseError(f"Invalid value for {name}.")
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise ParseError(f"Invalid value for {name}.")
    if "\x00" in value or len(value) > MAX_PARAM_LENGTH:
        raise ParseError(f"Invalid value for {name}.")
    return value


def param(request, *path: str, body: bool = True) -> str | None:
    """One text parameter from the body (when ``body``) or the query string, or None."""
    name = path[0] + "".join(f"[{part}]" for part in path[1:])
    if body:
        value = _lookup(_body(request), path)
        if value is not None:
            return _text(name, value)
    return _text(name, _lookup(request.query_params, path))


def includes(request) -> set[str]:
    """``include[]=avatar_url`` (also ``include=avatar_url``), from the query string.

    A token whose developer key does not allow includes keeps only the values
    ``request.allowed_includes`` names (set by ``permissions.TokenScopes``).
    """
    values = request.query_params.getlist("include[]") + request.query_params.getlist("include")
    found = {value.strip() for value in values if value}
    allowed = getattr(request, "allowed_includes", None)
    return found if allowed is None else found & allowed


def path_reference(value: str) -> str:
    """A user reference from the URL; text no lookup can match reads as "not found"."""
    if "\x00" in value or len(value) > MAX_PARAM_LENGTH:
        return ""
    return value
