"""user_observers.csv: observer links in bulk (canvas-behaviour.md §6.2, §7 items 107-108).

The rules are services.links' (create-or-restore, soft delete, one audit
event per change, observer enrollments follow the link); this module applies
them a chunk of rows at a time so 100,000 rows cost a few hundred queries
instead of a million. Mirroring of links with no observer enrollments yet is
done in bulk from the same inputs services.enrollments uses; anything else
(a restored link with old observer enrollments to bring back) goes through
services.enrollments.mirror_link_enrollments itself.
"""

import json
from collections.abc import Iterable
from datetime import datetime, time

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from ...models import (
    AuditAction,
    AuditEvent,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    LinkEnd,
    LinkSource,
    Login,
    ObservationLink,
    User,
)
from ...models.lookups import any_of, pg_array
from ...timezones import school_time_zone
from .. import notifications, rules
from ..bulk import update_in_bulk
from ..enrollments import mirror_link_enrollments, observer_state_for, remove_link_enrollments
from ..links import UNCHANGED
from ..locks import share_students
from .bulkdb import insert_returning_ids, insert_rows, new_row, note_inserted
from .reader import SisRow
from .report import FileReport, ImportReport
from .rows import ImportContext, RowError

ACTIVE = ObservationLink.State.ACTIVE
PENDING = ObservationLink.State.PENDING
DELETED = ObservationLink.State.DELETED
LIVE = (ACTIVE, PENDING)

# Canvas's user_observers.csv has no column for a link's end: this optional
# extension column carries it (docs/sis.md).
END_DATE_COLUMN = "end_date"


def parse_link_end(value: str, column: str, zone) -> datetime | None:
    """An SIS end-date value as a moment: "" is no end; RowError naming ``column`` otherwise.

    ISO 8601: a date alone means the start of that day in the school's time
    zone (the link ends on that day); a date and time without an offset is
    read in the school's time zone too.
    """
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RowError(
            f"{column} {value[:60]!r} is not a date (YYYY-MM-DD) or a date and time "
            "(ISO 8601, e.g. 2027-06-15T17:00:00-05:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment


def format_link_end(moment: datetime | None, zone) -> str:
    """What an export writes for an end date: the date alone at local midnight, else ISO 8601."""
    if moment is None:
        return ""
    local = moment.astimezone(zone)
    if local.time() == time.min:
        return local.date().isoformat()
    return local.isoformat(timespec="seconds")


def sis_user_ids(
    ctx: ImportContext, sis_ids: Iterable[str], *, suspended_count: bool = False
) -> dict[str, int]:
    """SIS user id -> user id for the active logins of the root account (one query).

    With ``suspended_count`` a suspended login (OneRoster's
    ``enabledUser=false``) still names its person, whose links the SIS keeps;
    Canvas treats it as a non-existent user.
    """
    logins = Login.objects.filter(
        any_of("sis_user_id", set(sis_ids)), root_account=ctx.root_account
    )
    if suspended_count:
        logins = logins.exclude(workflow_state=Login.State.DELETED)
    else:
        logins = logins.filter(workflow_state=Login.State.ACTIVE)
    return dict(logins.values_list("sis_user_id", "user_id"))


def _validate(row: SisRow) -> tuple[str, str, str] | str:
    """Canvas's per-row checks 1-4, in Canvas's order: the row's fields or an error message."""
    values = row.values or {}
    observer_id, student_id = values.get("observer_id", ""), values.get("student_id", "")
    raw_status = values.get("status", "")
    if not observer_id:
        return "No observer_id given for a user observer"
    if not student_id:
        return "No user_id given for a user observer"
    if observer_id == student_id:
        return f"Can't observe yourself user {student_id}"
    status = raw_status.lower()
    if status not in (ACTIVE, DELETED):
        return f'Improper status "{raw_status}" for a user_observer'
    return observer_id, student_id, status


def check_rows(rows: list[SisRow], file: FileReport, zone) -> tuple[list, list]:
    """Canvas's per-row checks on a chunk: (errors, checked rows ready for apply_links).

    Then the extension column ``end_date`` when the file has it (``zone``:
    the school's time zone); without it a row leaves end dates as they are.
    """
    errors: list[tuple[int, str]] = []
    valid = []
    for row in rows:
        file.rows += 1
        checked = row.error or _validate(row)
        if isinstance(checked, str):
            errors.append((row.line, checked))
            continue
        ends = UNCHANGED
        if END_DATE_COLUMN in row.values:
            try:
                ends = parse_link_end(row.values[END_DATE_COLUMN], END_DATE_COLUMN, zone)
            except RowError as exc:
                errors.append((row.line, exc.message))
                continue
        valid.append((row.line, *checked, None, ends))
    return errors, valid


# Attempts per chunk when another request creates one of its new links meanwhile.
LINK_CHUNK_ATTEMPTS = 3


def apply_links_retrying(
    ctx: ImportContext,
    valid: list[tuple],
    file: FileReport,
    report: ImportReport,
    *,
    errors: list[tuple[int, str]] | None = None,
    suspended_count: bool = False,
) -> None:
    """apply_links in a savepoint, again if a new link collides with one made meanwhile.

    The chunk locks the links it changes, but a link that does not exist yet
    cannot be locked: if the API creates it between the chunk's lookup and
    its insert, the insert violates the unique constraint. The savepoint is
    rolled back and the chunk applied again, now finding (and locking) that
    link, so the file neither fails nor duplicates anything.
    """
    for attempt in range(1, LINK_CHUNK_ATTEMPTS + 1):
        mark = report.mark(file)
        try:
            with transaction.atomic():
                apply_links(
                    ctx,
                    list(valid),
                    list(errors or []),
                    file,
                    report,
                    suspended_count=suspended_count,
                )
            return
        except IntegrityError:
            if attempt == LINK_CHUNK_ATTEMPTS:
                raise
            report.back_to(file, mark)


def apply_links(
    ctx: ImportContext,
    valid: list[tuple[int, str, str, str, str | None, object]],
    errors: list[tuple[int, str]],
    file: FileReport,
    report: ImportReport,
    *,
    suspended_count: bool = False,
) -> None:
    """Apply checked link rows (line, observer SIS id, student SIS id, status, kind, ends).

    ``kind`` None leaves a link's kind as it is (Canvas's files carry none);
    otherwise a new or restored link takes it and an active one is updated
    to it. ``ends`` (the end date: a moment, None for none, or UNCHANGED
    when the file has no such column) is set on the links the SIS owns,
    never on one made by hand; a moment already past ends the link (or does
    not make it), with a warning. Errors found here join ``errors``,
    reported in line order.
    """
    if not valid:
        return _report_errors(errors, file, report)
    users = sis_user_ids(
        ctx, {sis for _, o, s, *_ in valid for sis in (o, s)}, suspended_count=suspended_count
    )
    resolved = []
    for line, observer_sis, student_sis, status, kind, ends in valid:
        observer_id, student_id = users.get(observer_sis), users.get(student_sis)
        if observer_id is None:
            errors.append((line, f"An observer referenced a non-existent user {observer_sis}"))
        elif student_id is None:
            errors.append((line, f"A student referenced a non-existent user {student_sis}"))
        elif observer_id == student_id:
            errors.append((line, f"Can't observe yourself user {student_sis}"))
        else:
            resolved.append(
                (line, observer_sis, student_sis, observer_id, student_id, status, kind, ends)
            )
    if not resolved:
        return _report_errors(errors, file, report)

    pairs = {(r[3], r[4]) for r in resolved}
    # The students first, as every link writer does (services.locks).
    share_students({s for _, s in pairs})
    # Locked so a concurrent API change to the same links waits for this file.
    links = {
        (link.observer_id, link.student_id): link
        for link in ObservationLink.objects.select_for_update().filter(
            any_of("observer_id", {o for o, _ in pairs}),
            any_of("student_id", {s for _, s in pairs}),
            root_account=ctx.root_account,
        )
        if (link.observer_id, link.student_id) in pairs
    }
    now = timezone.now()
    batch = ctx.batch
    creator = ctx.actor.user if ctx.actor.user is not None and ctx.actor.user.pk else None
    new, changed, touched = {}, {}, set()
    was_active = {pair for pair, link in links.items() if link.workflow_state in LIVE}
    events: list[tuple] = []
    logged: list[tuple[str, tuple[int, int], str, str, str]] = []
    zone = school_time_zone(ctx.root_account)
    # The rules of who may observe, judged for the whole chunk at once.
    verdicts = rules.judge(
        root_account=ctx.root_account,
        pairs=[(r[3], r[4]) for r in resolved if r[5] == ACTIVE],
        by_staff=True,
        now=now,
    )
    refused: list[tuple] = []
    for line, observer_sis, student_sis, observer_id, student_id, status, kind, ends in resolved:
        pair = (observer_id, student_id)
        link = new.get(pair) or links.get(pair)
        verdict = verdicts.get(pair, rules.ALLOWED)
        # The SIS sets the end date of the links it owns (a restore makes one its own).
        sets_end = ends is not UNCHANGED and (
            link is None or link.workflow_state == DELETED or link.source == LinkSource.SIS
        )
        if status == ACTIVE and sets_end and ends is not None and ends <= now:
            _end_date_passed(ctx, report, file, link, ends, now, line, observer_sis, student_sis)
            if link is not None and link.workflow_state in LIVE:
                link.workflow_state, link.deleted_at = DELETED, now
                link.end_reason, link.ends_at = LinkEnd.END_DATE, ends
                link.sis_batch, link.updated_at = batch, now
                if link.pk:
                    changed[pair] = link
                touched.discard(pair)
                events.append((AuditAction.LINK_DELETED, pair, LinkEnd.END_DATE))
                file.counts["deleted"] += 1
                note = f", end date {format_link_end(ends, zone)} has passed"
                logged.append(("deleted", pair, observer_sis, student_sis, note))
            continue
        if status == ACTIVE and verdict.refused:
            errors.append((line, refused_row_message(verdict, observer_sis, student_sis)))
            refused.append((verdict, pair))
            continue
        pending = verdict.outcome == rules.PENDING
        if (
            status == ACTIVE
            and verdict.rule == rules.ENDED_BY_STUDENT
            and link is not None
            and link.workflow_state == DELETED
        ):
            # The student ended or declined it: a nightly file sending the row
            # again must not ask them every night. It stays ended until they
            # approve (their own pairing code) or staff link it by hand.
            file.counts["ended by the student"] += 1
            report.add_warning(
                file,
                line,
                f"{observer_sis} -> {student_sis}: the student ended this link; "
                "it comes back only with the student's approval",
                observer_sis,
            )
            continue
        if status == ACTIVE:
            if link is None:
                new[pair] = new_row(
                    ObservationLink,
                    observer_id=observer_id,
                    student_id=student_id,
                    root_account_id=ctx.root_account.pk,
                    source=LinkSource.SIS,
                    workflow_state=PENDING if pending else ACTIVE,
                    kind=kind or "",
                    ends_at=ends if sets_end else None,
                    created_by_id=creator.pk if creator else None,
                    sis_batch_id=batch.pk,
                )
                action = "pending" if pending else "created"
                events.append(
                    (AuditAction.LINK_PENDING, pair, verdict.rule)
                    if pending
                    else (AuditAction.LINK_CREATED, pair)
                )
                file.counts[action] += 1
                logged.append((action, pair, observer_sis, student_sis, ""))
            elif link.workflow_state == DELETED:
                link.workflow_state, link.deleted_at = (PENDING if pending else ACTIVE), None
                link.source, link.sis_batch, link.updated_at = LinkSource.SIS, batch, now
                link.end_reason = ""
                if kind is not None:
                    link.kind = kind
                if sets_end:
                    link.ends_at = ends
                changed[pair] = link
                action = "pending" if pending else "restored"
                events.append(
                    (AuditAction.LINK_PENDING, pair, verdict.rule)
                    if pending
                    else (AuditAction.LINK_RESTORED, pair)
                )
                file.counts[action] += 1
                logged.append((action, pair, observer_sis, student_sis, ""))
            elif (kind is not None and link.kind != kind) or (sets_end and link.ends_at != ends):
                note = ""
                if sets_end and link.ends_at != ends:
                    before = format_link_end(link.ends_at, zone) or "none"
                    note = f", end date {before} -> {format_link_end(ends, zone) or 'none'}"
                    link.ends_at = ends
                if kind is not None:
                    link.kind = kind
                link.sis_batch, link.updated_at = batch, now
                if link.pk:
                    changed[pair] = link
                touched.discard(pair)
                file.counts["updated"] += 1
                logged.append(("updated", pair, observer_sis, student_sis, note))
            else:
                if pair in links:
                    touched.add(pair)
                file.counts["unchanged"] += 1
        elif link is None or link.workflow_state not in LIVE:
            errors.append(
                (
                    line,
                    "Can't delete a non-existent observer for observer: "
                    f"{observer_sis}, student: {student_sis}",
                )
            )
        else:
            link.workflow_state, link.deleted_at = DELETED, now
            link.sis_batch, link.updated_at = batch, now
            if link.pk:
                changed[pair] = link
            touched.discard(pair)
            events.append((AuditAction.LINK_DELETED, pair))
            file.counts["deleted"] += 1
            logged.append(("deleted", pair, observer_sis, student_sis, ""))

    _record_refusals(ctx, refused)
    insert_returning_ids(ObservationLink, list(new.values()))
    update_in_bulk(
        ObservationLink,
        list(changed.values()),
        [
            "workflow_state",
            "deleted_at",
            "end_reason",
            "source",
            "kind",
            "ends_at",
            "sis_batch",
            "updated_at",
        ],
    )
    touched_ids = [links[pair].pk for pair in touched if links[pair].sis_batch_id != batch.pk]
    if touched_ids:
        ObservationLink.objects.filter(any_of("id", touched_ids)).update(sis_batch=batch)
    by_pair = {**links, **new}
    ended = [by_pair[pair] for pair in was_active if by_pair[pair].workflow_state == DELETED]
    for link in ended:
        remove_link_enrollments(link)
    live = [link for link in by_pair.values() if link.workflow_state == ACTIVE]
    _mirror(ctx, [link for link in live if (link.observer_id, link.student_id) in pairs])
    _record_events(ctx, events, by_pair)
    _log_changes(report, logged, by_pair, zone)
    _report_errors(errors, file, report)


def _end_date_passed(ctx, report, file, link, ends, now, line, observer_sis, student_sis) -> None:
    """The row's end date has passed: the warning says whether the link ends or is not made."""
    zone = school_time_zone(ctx.root_account)
    live = link is not None and link.workflow_state in LIVE
    outcome = "the link ends" if live else "the link is not made"
    if not live:
        file.counts["not made: end date passed"] += 1
    report.add_warning(
        file,
        line,
        f"{observer_sis} -> {student_sis}: the end date {format_link_end(ends, zone)} has "
        f"passed; {outcome}",
        observer_sis,
    )


def refused_row_message(verdict, observer_sis: str, student_sis: str) -> str:
    """A refused row names the rule, never a restriction's reason (staff read the report)."""
    rule = {
        rules.RESTRICTION: "a restriction on record forbids it",
        rules.PROTECTED_STUDENT: "the student is protected",
    }.get(verdict.rule, verdict.rule)
    return f"Observer {observer_sis} may not observe {student_sis}: {rule}"


def _record_refusals(ctx: ImportContext, refused: list[tuple]) -> None:
    """The chunk's refused rows' audit events, the people loaded once (not a query per row)."""
    if not refused:
        return
    people = User.objects.in_bulk({user for _, pair in refused for user in pair})
    for verdict, (observer_id, student_id) in refused:
        rules.record_refusal(
            verdict=verdict,
            actor=ctx.actor,
            root_account=ctx.root_account,
            observer=people[observer_id],
            student=people[student_id],
            source=LinkSource.SIS,
        )


def remove_links(
    ctx: ImportContext, link_ids: list[int], file: FileReport, report: ImportReport
) -> int:
    """Soft-delete these links (the SIS no longer names them): enrollments end, events recorded."""
    links = list(
        ObservationLink.objects.select_for_update()
        .filter(any_of("id", link_ids), root_account=ctx.root_account)
        .filter(workflow_state__in=LIVE)
        .order_by("id")
    )
    if not links:
        return 0
    now = timezone.now()
    for link in links:
        link.workflow_state, link.deleted_at = DELETED, now
        link.sis_batch, link.updated_at = ctx.batch, now
    update_in_bulk(
        ObservationLink, links, ["workflow_state", "deleted_at", "sis_batch", "updated_at"]
    )
    for link in links:
        remove_link_enrollments(link)
    by_pair = {(link.observer_id, link.student_id): link for link in links}
    _record_events(ctx, [(AuditAction.LINK_DELETED, pair) for pair in by_pair], by_pair)
    if report.changes is not None:
        sis = dict(
            Login.objects.filter(
                any_of("user_id", {u for pair in by_pair for u in pair}),
                root_account=ctx.root_account,
                sis_user_id__isnull=False,
            ).values_list("user_id", "sis_user_id")
        )
        _log_changes(
            report,
            [
                ("deleted", pair, sis.get(pair[0], "?"), sis.get(pair[1], "?"), "")
                for pair in by_pair
            ],
            by_pair,
            school_time_zone(ctx.root_account),
        )
    file.counts["deleted"] += len(links)
    return len(links)


def _log_changes(report: ImportReport, logged, links_by_pair, zone) -> None:
    """Name both people of each changed link in the preview (one query, only when previewing)."""
    if report.changes is None or not logged:
        return
    ids = {user_id for _, pair, *_ in logged for user_id in pair}
    names = dict(User.objects.filter(pk__in=ids).values_list("pk", "name"))
    for action, pair, observer_sis, student_sis, note in logged:
        link = links_by_pair[pair]
        if not note and action in ("created", "restored", "pending") and link.ends_at:
            note = f", until {format_link_end(link.ends_at, zone)}"
        report.changes.add(
            "links",
            action,
            f"{observer_sis} -> {student_sis}",
            f"{names.get(pair[0], '?')} observes {names.get(pair[1], '?')}"
            + (f" ({link.kind})" if link.kind else "")
            + note,
        )


def _report_errors(errors: list[tuple[int, str]], file: FileReport, report: ImportReport) -> None:
    for line, message in sorted(errors, key=lambda error: error[0] or 0):
        report.add_error(file, line, message)


_ENROLLMENT_COLUMNS = (
    "user_id",
    "course_id",
    "root_account_id",
    "type",
    "workflow_state",
    "associated_user_id",
    "start_at",
    "end_at",
    "created_at",
    "updated_at",
)
_AUDIT_COLUMNS = (
    "action",
    "observer_id",
    "student_id",
    "link_id",
    "detail",
    "source",
    "actor_id",
    "root_account_id",
    "ip_address",
    "user_agent",
    "request_id",
    "created_at",
    "notifications_pending",
    "emails_suppressed",
)


def _db_datetime(value):
    return None if value is None else connection.ops.adapt_datetimefield_value(value)


def _mirror(ctx: ImportContext, links: list[ObservationLink]) -> None:
    """Bring the observers' enrollments in step with their students', as link_observer does.

    A link whose observer has no observer enrollments for the student yet
    gets them created inside the database (``_create_mirrors``); one already
    in step is left alone; any other goes through
    ``mirror_link_enrollments``, the one place that decides which old
    observer enrollments come back.
    """
    if not links:
        return
    root_id = ctx.root_account.pk
    observer_ids = {link.observer_id for link in links}
    student_ids = {link.student_id for link in links}
    enrollable = set(
        Login.objects.filter(any_of("user_id", observer_ids), root_account_id=root_id)
        .exclude(workflow_state=Login.State.DELETED)
        .values_list("user_id", flat=True)
    )
    existing: dict[tuple[int, int], dict[int, tuple[str, object]]] = {}
    # No course filter: it lures SQLite's planner onto the course index.
    for observer_id, student_id, course_id, state, start_at in (
        Enrollment.objects.filter(
            any_of("associated_user_id", student_ids), any_of("user_id", observer_ids)
        )
        .order_by()
        .values_list("user_id", "associated_user_id", "course_id", "workflow_state", "start_at")
    ):
        existing.setdefault((observer_id, student_id), {})[course_id] = (state, start_at)
    fresh: list[tuple[int, int]] = []
    mirrored_before: list[ObservationLink] = []
    for link in links:
        if link.observer_id not in enrollable:
            continue
        if (link.observer_id, link.student_id) in existing:
            mirrored_before.append(link)
        else:
            fresh.append((link.observer_id, link.student_id))
    _create_mirrors(root_id, fresh)
    if not mirrored_before:
        return
    sources: dict[int, list[tuple[int, str, object]]] = {}
    for student_id, course_id, state, start_at in (
        Enrollment.objects.mirrorable()
        .filter(
            any_of("user_id", {link.student_id for link in mirrored_before}),
            root_account_id=root_id,
        )
        .order_by()
        .values_list("user_id", "course_id", "workflow_state", "start_at")
    ):
        sources.setdefault(student_id, []).append((course_id, state, start_at))
    for link in mirrored_before:
        mirrored = existing[(link.observer_id, link.student_id)]
        in_step = all(
            mirrored.get(course_id) == (observer_state_for(state), start_at)
            for course_id, state, start_at in sources.get(link.student_id, ())
        )
        if not in_step:
            mirror_link_enrollments(link)


def _create_mirrors(root_id: int, pairs: list[tuple[int, int]]) -> None:
    """Observer enrollments for (observer, student) pairs that have none yet, in one statement.

    What a link mirrors is ``Enrollment.objects.mirrorable()`` and each
    mirror's state is ``observer_state_for`` the student's, the rules
    ``observer_enrollment_mirroring`` follows; both are compiled into an
    ``INSERT ... SELECT`` so the student enrollments never travel to Python
    and back (7.4 per link in a district: most of a links file's time when
    they did).
    """
    if not pairs:
        return
    quote = connection.ops.quote_name
    # The pairs drive the join (an index scan per student): no key list in
    # the sources, whose generic plan once joined every pair to every source.
    sources = (
        Enrollment.objects.mirrorable()
        .filter(root_account_id=root_id)
        .order_by()
        .values_list("id", "user_id", "course_id", "workflow_state", "start_at", "end_at")
    )
    sources_sql, sources_params = sources.query.sql_with_params()
    if connection.vendor == "postgresql":
        pairs_sql = (
            "SELECT * FROM unnest(%s::bigint[], %s::bigint[]) WITH ORDINALITY"
            " AS p(observer_id, student_id, ord)"
        )
        pairs_params = [pg_array([o for o, _ in pairs]), pg_array([s for _, s in pairs])]
    else:
        pairs_sql = (
            "SELECT json_extract(value, '$[0]') AS observer_id,"
            " json_extract(value, '$[1]') AS student_id, key AS ord FROM json_each(%s)"
        )
        pairs_params = [json.dumps(pairs)]
    renamed = [
        (state, observer_state_for(state))
        for state in EnrollmentState.values
        if observer_state_for(state) != state
    ]
    state_sql = (
        "CASE s.workflow_state "
        + " ".join("WHEN %s THEN %s" for _ in renamed)
        + " ELSE s.workflow_state END"
        if renamed
        else "s.workflow_state"
    )
    now = _db_datetime(timezone.now())
    columns = ", ".join(
        quote(Enrollment._meta.get_field(column).column) for column in _ENROLLMENT_COLUMNS
    )
    # Names come from the model's metadata and the compiled queryset, values are parameters.
    sql = (
        f"INSERT INTO {quote(Enrollment._meta.db_table)} ({columns}) "  # noqa: S608
        f"SELECT p.observer_id, s.course_id, %s, %s, {state_sql}, s.user_id,"
        " s.start_at, s.end_at, %s, %s"
        f" FROM ({pairs_sql}) p JOIN ({sources_sql}) s ON s.user_id = p.student_id"
        " ORDER BY p.ord, s.course_id, s.id"
    )
    params = [
        root_id,
        EnrollmentType.OBSERVER.value,
        *[value for pair in renamed for value in pair],
        now,
        now,
        *pairs_params,
        *sources_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        note_inserted(Enrollment, max(cursor.rowcount, 0))


def _record_events(ctx: ImportContext, events, links_by_pair) -> None:
    """One audit event per change, written in one insert (what record_event writes per call)."""
    if not events:
        return
    actor = ctx.actor
    actor_user = actor.user if actor.user is not None and actor.user.pk else None
    field = AuditEvent._meta.get_field

    def detail(action: str, extra: str) -> dict:
        if action == AuditAction.LINK_DELETED:
            return {"sis_batch": ctx.batch.pk, **({"reason": extra} if extra else {})}
        found = {"source": LinkSource.SIS, "sis_batch": ctx.batch.pk}
        if extra:
            found["awaiting"] = extra
        return found

    # (action, pair) or (action, pair, the rule a pending link awaits / why it ended).
    events = [(event[0], event[1], event[2] if len(event) > 2 else "") for event in events]
    details = {
        key: field("detail").get_db_prep_save(detail(*key), connection)
        for key in {(action, awaiting) for action, _pair, awaiting in events}
    }
    constant = (
        actor.source,
        actor_user.pk if actor_user else None,
        ctx.root_account.pk,
        field("ip_address").get_db_prep_save(actor.ip_address, connection),
        (actor.user_agent or "")[:512],
        (actor.request_id or "")[:64],
        _db_datetime(timezone.now()),
        # Every change here is a link event of this root account: the
        # notification planner picks them up like record_event's.
        True,
        notifications.emails_suppressed(),
    )
    insert_rows(
        AuditEvent,
        _AUDIT_COLUMNS,
        [
            (
                str(action),
                pair[0],
                pair[1],
                links_by_pair[pair].pk,
                details[(action, awaiting)],
                *constant,
            )
            for action, pair, awaiting in events
        ],
    )


def planned_deletions(ctx: ImportContext, rows: Iterable[SisRow]) -> set[int]:
    """Ids of the active links the ``deleted`` rows would remove (for the mass-delete guard)."""
    doomed: set[int] = set()
    chunk: list[tuple[str, str]] = []

    def flush() -> None:
        users = sis_user_ids(ctx, {sis for pair in chunk for sis in pair})
        wanted = Q()
        count = 0
        for observer_sis, student_sis in chunk:
            if observer_sis in users and student_sis in users:
                wanted |= Q(observer_id=users[observer_sis], student_id=users[student_sis])
                count += 1
        if count:
            doomed.update(
                ObservationLink.objects.active()
                .filter(root_account=ctx.root_account)
                .filter(wanted)
                .values_list("pk", flat=True)
            )
        chunk.clear()

    for row in rows:
        checked = None if row.error else _validate(row)
        if isinstance(checked, tuple) and checked[2] == DELETED:
            chunk.append(checked[:2])
            if len(chunk) >= 500:
                flush()
    if chunk:
        flush()
    return doomed
