"""A school's time zone (Account.time_zone): what pages, letters, e-mails and CSV files show."""

import datetime as dt
import zoneinfo

from django.conf import settings


def school_time_zone(root_account) -> zoneinfo.ZoneInfo:
    """The root account's zone; UTC (TIME_ZONE) when there is none or it is unknown here."""
    name = getattr(root_account, "time_zone", "") or settings.TIME_ZONE
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def local_iso(moment: dt.datetime | None, root_account) -> str:
    """ISO 8601 with the school's UTC offset, to the second: 2026-03-01T08:30:00-06:00."""
    if moment is None:
        return ""
    return moment.astimezone(school_time_zone(root_account)).isoformat(timespec="seconds")
