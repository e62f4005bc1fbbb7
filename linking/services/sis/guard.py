"""The mass-delete guard: an import may delete at most a share of a school's records of a kind."""

from django.conf import settings

from ..errors import LinkingError

DEFAULT_MASS_DELETE_SHARE = 0.10

# What each kind of record is called in the guard's message.
KIND_LABELS = {
    "links": "observer links",
    "users": "users",
    "enrollments": "enrollments",
    "courses": "courses",
    "accounts": "sub-accounts",
    "terms": "terms",
}


class MassDeleteRefused(LinkingError):
    """The import would remove more than the allowed share of a root account's records of a kind."""

    code = "sis_mass_delete"

    def __init__(
        self,
        *,
        would_delete: int,
        active: int,
        share: float,
        batch_id: int | None,
        kind: str = "links",
    ):
        self.would_delete, self.active, self.share = would_delete, active, share
        self.batch_id, self.kind = batch_id, kind
        super().__init__(
            f"Mass-delete guard: this import would delete {would_delete} of {active} active "
            f"{KIND_LABELS.get(kind, kind)}, more than the allowed {share:.0%}. Check the "
            "files, then run it again with --allow-mass-delete (admin: tick “allow mass "
            "delete”) if that is intended."
        )


def mass_delete_share() -> float:
    """The largest share of a kind's active records one import may delete unless allowed."""
    return float(getattr(settings, "SIS_MASS_DELETE_SHARE", DEFAULT_MASS_DELETE_SHARE))


def check(
    report,
    *,
    kind: str,
    would_delete: int,
    active: int,
    share: float,
    allowed: bool,
    batch_id: int | None,
) -> None:
    """Record the guard's verdict for one kind on the report; raise MassDeleteRefused when over.

    Over means more than ``share`` of the root account's ``active`` records
    of the kind. A dry run and an allowed import record it without raising.
    ``report.mass_delete`` holds every kind checked (``kinds``), whether any
    was over, and the links' figures at the top (the form batches kept
    before per-kind guards, which their report pages still read).
    """
    over = would_delete > 0 and would_delete > share * active
    guard = report.mass_delete
    guard.setdefault("kinds", {})[kind] = {
        "would_delete": would_delete,
        "active": active,
        "share": share,
        "over_limit": over,
    }
    guard["share"] = share
    guard["over_limit"] = guard.get("over_limit", False) or over
    if kind == "links":
        guard.update(would_delete=would_delete, active_links=active)
    if over and not allowed and not report.dry_run:
        raise MassDeleteRefused(
            would_delete=would_delete, active=active, share=share, batch_id=batch_id, kind=kind
        )
