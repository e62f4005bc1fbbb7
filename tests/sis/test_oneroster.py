"""OneRoster 1.1 / 1.2 bundles: the reference's example bundles, bulk vs delta, ownership, errors.

The bundles under tests/sis/oneroster/ are shared/reference/oneroster-csv.md §5
byte for byte: district d-rb, schools sch-north and sch-south, Maria Lopez
(parent of Ava and Ben), David Okafor (guardian of Cara), Hoa Nguyen
(relative of Cara).
"""

import shutil
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from linking.models import (
    Account,
    AuditAction,
    AuditEvent,
    Course,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    LinkSource,
    Login,
    ObservationLink,
    SisBatch,
    Term,
)
from linking.services.context import Actor
from linking.services.links import link_observer
from linking.services.sis import MassDeleteRefused

BUNDLES = Path(__file__).parent / "oneroster"


@pytest.fixture
def bundle(tmp_path):
    """bundle(name, **files) -> a copy of a reference bundle, some files replaced or removed."""

    def make(name: str, **files: str | None) -> Path:
        target = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(BUNDLES / name, target)
        for file_name, text in files.items():
            path = target / f"{file_name}.csv"
            if text is None:
                path.unlink()
            else:
                path.write_text(text, encoding="utf-8")
        return target

    return make


def read(name: str, file: str) -> str:
    return (BUNDLES / name / f"{file}.csv").read_text(encoding="utf-8")


def links(root_account, state="active"):
    """(observer SIS id, student SIS id, kind) of the links; "" for a person without an SIS id."""
    rows = (
        ObservationLink.objects.filter(root_account=root_account, workflow_state=state)
        .values_list("observer__logins__sis_user_id", "student__logins__sis_user_id", "kind")
        .distinct()
    )
    return sorted((o or "", s or "", kind) for o, s, kind in rows)


def observer_enrollments(root_account):
    return sorted(
        Enrollment.objects.filter(
            root_account=root_account,
            type=EnrollmentType.OBSERVER,
            workflow_state=EnrollmentState.ACTIVE,
        ).values_list(
            "user__logins__sis_user_id",
            "course__sis_course_id",
            "associated_user__logins__sis_user_id",
        )
    )


EXPECTED_LINKS = [
    ("g-david", "s-cara", "guardian"),
    ("g-hoa", "s-cara", "relative"),
    ("g-maria", "s-ava", "parent"),
    ("g-maria", "s-ben", "parent"),
]
EXPECTED_OBSERVER_ENROLLMENTS = [
    ("g-david", "cls-math3-b", "s-cara"),
    ("g-hoa", "cls-math3-b", "s-cara"),
    ("g-maria", "cls-math3-a", "s-ava"),
    ("g-maria", "cls-sci7-1", "s-ben"),
]


# Mapping ----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v11_bulk", "v12_bulk"])
def test_reference_bulk_bundle_maps_every_file(run_import, root_account, version):
    report = run_import(BUNDLES / version)

    assert not report.failed, report.errors
    assert report.warnings == []
    batch = SisBatch.objects.get(pk=report.batch_id)
    assert (batch.format, batch.workflow_state) == ("oneroster", "imported")
    # orgs: the district is the root account; schools are sub-accounts under it.
    root_account.refresh_from_db()
    assert root_account.sis_account_id == "d-rb"
    schools = Account.objects.filter(root_account=root_account).order_by("sis_account_id")
    assert [(a.sis_account_id, a.name, a.parent_id) for a in schools] == [
        ("sch-north", "North Elementary", root_account.pk),
        ("sch-south", "South Middle School", root_account.pk),
    ]
    # academicSessions: a term with its dates (endDate exclusive, as Term.end_at).
    term = Term.objects.get(root_account=root_account)
    assert (term.sis_term_id, term.name) == ("term-2526", "2025-26 Full Year")
    assert term.start_at == datetime(2025, 8, 18, tzinfo=UTC)
    assert term.end_at == datetime(2026, 6, 12, tzinfo=UTC)
    assert term.is_current(datetime(2026, 1, 10, tzinfo=UTC))
    assert not term.is_current(datetime(2026, 6, 12, tzinfo=UTC))
    # classes (with their course) -> courses in the school, with the term.
    math = Course.objects.get(sis_course_id="cls-math3-a")
    assert (math.name, math.course_code, math.account.sis_account_id, math.term_id) == (
        "Math 3 - Section A",
        "MATH3-A",
        "sch-north",
        term.pk,
    )
    assert Course.objects.filter(root_account=root_account).count() == 3
    assert math.is_current(datetime(2025, 9, 1, tzinfo=UTC))
    assert not math.is_current(datetime(2026, 7, 1, tzinfo=UTC))
    # users -> users with logins: sourcedId the SIS id, username the login id.
    maria = Login.objects.get(root_account=root_account, sis_user_id="g-maria")
    assert (maria.unique_id, maria.user.name, maria.user.sortable_name, maria.user.email) == (
        "maria.lopez@mail.example",
        "Maria Lopez",
        "Lopez, Maria",
        "maria.lopez@mail.example",
    )
    assert (maria.sis_role, maria.sis_agent_ids) == ("parent", "s-ava,s-ben")
    assert maria.password == ""  # OneRoster passwords are never stored
    assert Login.objects.get(sis_user_id="s-cara").sis_role == "student"
    # enrollments -> student and teacher enrollments, owned by the SIS.
    enrollments = Enrollment.objects.filter(root_account=root_account).exclude(type="observer")
    assert sorted(enrollments.values_list("user__logins__sis_user_id", "type")) == [
        ("s-ava", "student"),
        ("s-ben", "student"),
        ("s-cara", "student"),
        ("t-kim", "teacher"),
        ("t-kim", "teacher"),
        ("t-osei", "teacher"),
    ]
    assert all(e.sis_managed for e in enrollments)
    # agentSourcedIds -> links with the agent's role as their kind, source SIS.
    assert links(root_account) == EXPECTED_LINKS
    assert set(
        ObservationLink.objects.filter(root_account=root_account).values_list("source", "sis_batch")
    ) == {(LinkSource.SIS, batch.pk)}
    # Observer enrollments mirrored as for every link.
    assert observer_enrollments(root_account) == EXPECTED_OBSERVER_ENROLLMENTS
    assert AuditEvent.objects.filter(action=AuditAction.LINK_CREATED, source="sis").count() == 4


def test_v12_preferred_names_and_roles(run_import, root_account):
    run_import(BUNDLES / "v12_bulk")

    ben = Login.objects.get(sis_user_id="s-ben").user
    assert (ben.name, ben.short_name) == ("Benjamin Lopez", "Ben Lopez")
    roles = dict(Login.objects.values_list("sis_user_id", "sis_role"))
    assert roles == {
        "t-kim": "teacher",
        "t-osei": "teacher",
        "s-ava": "student",
        "s-ben": "student",
        "s-cara": "student",
        "g-maria": "parent",
        "g-david": "guardian",
        "g-hoa": "relative",
    }


def test_zip_with_files_at_the_root_or_in_one_folder(run_import, root_account, tmp_path):
    for index, prefix in enumerate(("", "export-2025-10-05/")):
        archive = tmp_path / f"bundle{index}.zip"
        with zipfile.ZipFile(archive, "w") as zipped:
            for path in sorted((BUNDLES / "v11_bulk").iterdir()):
                zipped.write(path, prefix + path.name)

        report = run_import(archive)

        assert not report.failed, report.errors
        assert report.format == "oneroster"
        assert links(root_account) == EXPECTED_LINKS


def test_demographics_birth_dates(run_import, root_account, bundle):
    manifest = read("v11_bulk", "manifest").replace(
        "file.demographics,absent", "file.demographics,bulk"
    )
    demographics = (
        "sourcedId,status,dateLastModified,birthDate,sex,americanIndianOrAlaskaNative,asian,"
        "blackOrAfricanAmerican,nativeHawaiianOrOtherPacificIslander,white,"
        "demographicRaceTwoOrMoreRaces,hispanicOrLatinoEthnicity,countryOfBirthCode,"
        "stateOfBirthAbbreviation,cityOfBirth,publicSchoolResidenceStatus\n"
        "s-ava,,,2017-03-02,female,,,,,,,,,,,\n"
        "s-ben,,,2013-11-30,male,,,,,,,,,,,\n"
        "s-nobody,,,2013-11-30,male,,,,,,,,,,,\n"
        "s-cara,,,2017-02-30,female,,,,,,,,,,,\n"
    )

    report = run_import(bundle("v11_bulk", manifest=manifest, demographics=demographics))

    births = dict(Login.objects.values_list("sis_user_id", "user__birth_date"))
    assert births["s-ava"] == date(2017, 3, 2)
    assert births["s-ben"] == date(2013, 11, 30)
    assert births["s-cara"] is None
    assert [(e["file"], e["line"], e["sourced_id"]) for e in report.errors] == [
        ("demographics.csv", 4, "s-nobody"),
        ("demographics.csv", 5, "s-cara"),
    ]
    assert "birthDate '2017-02-30' is not a date" in report.errors[1]["message"]


def test_disabled_user_is_suspended_and_still_linked(run_import, root_account, bundle):
    users = read("v11_bulk", "users").replace("g-david,,,true,", "g-david,,,false,")

    run_import(bundle("v11_bulk", users=users))

    assert Login.objects.get(sis_user_id="g-david").workflow_state == Login.State.SUSPENDED
    assert ("g-david", "s-cara", "guardian") in links(root_account)


# Re-import, delta, ownership ------------------------------------------------------


def test_bulk_again_changes_nothing(run_import, root_account):
    run_import(BUNDLES / "v11_bulk")
    events = AuditEvent.objects.count()
    enrollments = list(Enrollment.objects.order_by("pk").values_list("pk", "workflow_state"))

    report = run_import(BUNDLES / "v11_bulk")

    totals = report.totals()
    assert (totals["created"], totals["updated"], totals["deleted"], totals["errors"]) == (
        0,
        0,
        0,
        0,
    )
    assert AuditEvent.objects.count() == events
    assert list(Enrollment.objects.order_by("pk").values_list("pk", "workflow_state")) == (
        enrollments
    )
    assert links(root_account) == EXPECTED_LINKS


@pytest.mark.parametrize("version", ["v11", "v12"])
def test_reference_delta(run_import, root_account, version):
    run_import(BUNDLES / f"{version}_bulk")

    report = run_import(BUNDLES / f"{version}_delta", allow_mass_delete=True)

    assert not report.failed, report.errors
    # David is no longer Cara's guardian: the link and his observer enrollment end.
    assert links(root_account) == [
        ("g-hoa", "s-cara", "relative"),
        ("g-maria", "s-ava", "parent"),
        ("g-maria", "s-ben", "parent"),
    ]
    assert links(root_account, "deleted") == [("g-david", "s-cara", "guardian")]
    assert Login.objects.get(sis_user_id="g-david").workflow_state == Login.State.ACTIVE
    # Ben leaves Science 7: his enrollment ends and Maria's observer enrollment with it.
    ben = Enrollment.objects.get(user__logins__sis_user_id="s-ben", type="student")
    assert ben.workflow_state == EnrollmentState.DELETED
    assert observer_enrollments(root_account) == [
        ("g-hoa", "cls-math3-b", "s-cara"),
        ("g-maria", "cls-math3-a", "s-ava"),
    ]
    # Nothing else changed: the other files were absent.
    assert Course.objects.filter(workflow_state="available").count() == 3
    assert Login.objects.filter(workflow_state="active").count() == 8
    deleted = AuditEvent.objects.filter(action=AuditAction.LINK_DELETED)
    assert [(e.observer.name, e.student.name) for e in deleted] == [("David Okafor", "Cara Nguyen")]


def test_delta_tobedeleted_user_loses_their_links(run_import, root_account, bundle):
    run_import(BUNDLES / "v11_bulk")
    users = (
        read("v11_delta", "users").splitlines()[0]
        + '\ng-maria,tobedeleted,2025-10-07T09:00:00Z,true,"sch-north,sch-south",parent,'
        'maria.lopez@mail.example,,Maria,Lopez,,,maria.lopez@mail.example,,,"s-ava,s-ben",,\n'
    )

    report = run_import(
        bundle(
            "v11_delta",
            users=users,
            enrollments=None,
            manifest=read("v11_delta", "manifest").replace(
                "file.enrollments,delta", "file.enrollments,absent"
            ),
        ),
        allow_mass_delete=True,
    )

    assert not report.failed, report.errors
    assert Login.objects.get(sis_user_id="g-maria").workflow_state == Login.State.DELETED
    assert links(root_account) == [
        ("g-david", "s-cara", "guardian"),
        ("g-hoa", "s-cara", "relative"),
    ]
    assert ("g-maria", "cls-math3-a", "s-ava") not in observer_enrollments(root_account)


def test_a_sync_never_removes_links_made_by_hand_or_with_a_code(
    run_import, root_account, bundle, make_user
):
    run_import(BUNDLES / "v11_bulk")
    aunt = make_user("Aunt May", root_account)
    ava = Login.objects.get(sis_user_id="s-ava").user
    hoa = Login.objects.get(sis_user_id="g-hoa").user
    ben = Login.objects.get(sis_user_id="s-ben").user
    link_observer(
        observer=aunt,
        student=ava,
        root_account=root_account,
        actor=Actor.system(),
        source=LinkSource.PAIRING_CODE,
    )
    link_observer(
        observer=hoa,
        student=ben,
        root_account=root_account,
        actor=Actor.system(),
        source=LinkSource.ADMIN,
    )
    # The SIS now names nobody as Cara's or Ben's agents and drops Hoa's list.
    users = (
        read("v11_bulk", "users")
        .replace('"g-david,g-hoa"', "")
        .replace("g-maria,03,", ",03,")
        .replace("g-maria,07,", ",07,")
        .replace('"s-ava,s-ben"', "s-ava")
        .replace(",s-cara,,\n", ",,,\n")
    )

    report = run_import(bundle("v11_bulk", users=users), allow_mass_delete=True)

    assert not report.failed, report.errors
    # Maria -> Ava is still named by Maria's row (either side is enough).
    assert links(root_account) == [
        ("", "s-ava", ""),  # Aunt May's, made with a code: the sync never touches it
        ("g-hoa", "s-ben", ""),  # made by staff
        ("g-maria", "s-ava", "parent"),  # still named by Maria's row: either side is enough
    ]
    removed = links(root_account, "deleted")
    assert removed == [
        ("g-david", "s-cara", "guardian"),
        ("g-hoa", "s-cara", "relative"),
        ("g-maria", "s-ben", "parent"),
    ]
    assert ObservationLink.objects.get(observer=aunt).source == LinkSource.PAIRING_CODE


def test_a_sis_link_also_made_with_a_code_stays_when_the_sis_drops_it(
    run_import, root_account, bundle, make_user
):
    run_import(BUNDLES / "v11_bulk")
    link = ObservationLink.objects.get(
        observer__logins__sis_user_id="g-david", student__logins__sis_user_id="s-cara"
    )
    ObservationLink.objects.filter(pk=link.pk).update(source=LinkSource.PAIRING_CODE)
    users = (
        read("v11_bulk", "users")
        .replace('"g-david,g-hoa"', "g-hoa")
        .replace(",s-cara,,\n", ",,,\n", 1)
    )

    run_import(bundle("v11_bulk", users=users), allow_mass_delete=True)

    link.refresh_from_db()
    assert (link.workflow_state, link.source) == ("active", LinkSource.PAIRING_CODE)


def test_bulk_removes_what_the_sis_no_longer_sends(run_import, root_account, bundle):
    run_import(BUNDLES / "v11_bulk")
    enrollments = "\n".join(
        line for line in read("v11_bulk", "enrollments").splitlines() if "e-ben-s7" not in line
    )
    classes = read("v11_bulk", "classes").replace(
        "cls-math3-b,,,Math 3 - Section B,03,crs-math3,MATH3-B,scheduled,Room 14,sch-north,"
        "term-2526,Mathematics,,2\n",
        "",
    )
    enrollments = enrollments.replace(
        "\ne-kim-m3b,,,cls-math3-b,sch-north,t-kim,teacher,true,,", ""
    ).replace("\ne-cara-m3b,,,cls-math3-b,sch-north,s-cara,student,,,", "")

    report = run_import(
        bundle("v11_bulk", enrollments=enrollments + "\n", classes=classes),
        allow_mass_delete=True,
    )

    assert not report.failed, report.errors
    assert Course.objects.get(sis_course_id="cls-math3-b").workflow_state == "deleted"
    assert set(
        Enrollment.objects.filter(workflow_state="deleted", type="student").values_list(
            "user__logins__sis_user_id", flat=True
        )
    ) == {"s-ben", "s-cara"}
    assert observer_enrollments(root_account) == [("g-maria", "cls-math3-a", "s-ava")]
    files = {f.name: f for f in report.files}
    assert files["enrollments.csv"].counts["deleted"] == 3
    assert files["classes.csv"].counts["deleted"] == 1


# Guards ---------------------------------------------------------------------------


def test_truncated_bulk_users_file_is_refused_and_leaves_nothing(run_import, root_account, bundle):
    run_import(BUNDLES / "v11_bulk")
    truncated = "\n".join(read("v11_bulk", "users").splitlines()[:3]) + "\n"
    before = (links(root_account), Login.objects.filter(workflow_state="active").count())

    with pytest.raises(MassDeleteRefused) as refused:
        run_import(bundle("v11_bulk", users=truncated))

    assert refused.value.kind == "users"
    assert "would delete 6 of 8 active users" in refused.value.message
    batch = SisBatch.objects.get(pk=refused.value.batch_id)
    assert batch.workflow_state == SisBatch.State.ABORTED
    assert batch.counts["mass_delete"]["kinds"]["users"]["over_limit"] is True
    assert (links(root_account), Login.objects.filter(workflow_state="active").count()) == before


def test_guard_applies_to_links_and_enrollments_with_an_override(run_import, root_account, bundle):
    run_import(BUNDLES / "v11_bulk")
    no_agents = (
        read("v11_bulk", "users")
        .replace('"g-david,g-hoa"', "")
        .replace(",g-maria,", ",,")
        .replace('"s-ava,s-ben"', "")
        .replace(",s-cara,,\n", ",,,\n")
    )
    with pytest.raises(MassDeleteRefused) as refused:
        run_import(bundle("v11_bulk", users=no_agents))
    assert refused.value.kind == "links"
    assert links(root_account) == EXPECTED_LINKS

    header = read("v11_bulk", "enrollments").splitlines()[0] + "\n"
    with pytest.raises(MassDeleteRefused) as refused:
        run_import(bundle("v11_bulk", enrollments=header))
    assert refused.value.kind == "enrollments"

    report = run_import(bundle("v11_bulk", users=no_agents), allow_mass_delete=True)
    assert report.mass_delete["kinds"]["links"]["would_delete"] == 4
    assert links(root_account) == []


def test_dry_run_previews_the_changes_and_writes_nothing(run_import, root_account, tmp_path):
    changes = tmp_path / "changes.csv"

    report = run_import(BUNDLES / "v11_bulk", dry_run=True, changes_path=changes)

    assert report.state == SisBatch.State.DRY_RUN
    assert not ObservationLink.objects.exists()
    assert not Login.objects.exists()
    assert not SisBatch.objects.exists()
    first = report.changes.first
    assert first["links"][0] == {
        "kind": "links",
        "action": "created",
        "sis_id": "g-maria -> s-ava",
        "description": "Maria Lopez observes Ava Lopez (parent)",
    }
    assert {row["sis_id"] for row in first["users"]} >= {"g-maria", "s-ava"}
    assert len(first["enrollments"]) == 6
    lines = changes.read_text().splitlines()
    assert lines[0] == "kind,action,sis_id,description"
    assert sum(1 for line in lines if line.startswith("links,created")) == 4
    assert len(lines) == 1 + 2 + 1 + 3 + 8 + 6 + 4


# Row errors and file errors -----------------------------------------------------


def test_row_errors_name_file_line_and_sourced_id_and_the_rest_goes_on(
    run_import, root_account, bundle
):
    orgs = read("v11_bulk", "orgs") + "sch-west,,,West,campus,,d-rb\nsch-x,,,X,school,,nowhere\n"
    classes = read("v11_bulk", "classes") + (
        "cls-bad,,,Bad,03,crs-none,BAD,scheduled,R,sch-north,term-2526,,,1\n"
        "cls-odd,,,Odd,03,crs-math3,ODD,lecture,R,sch-north,term-2526,,,1\n"
        "cls-math3-a,,,Again,03,crs-math3,AGAIN,scheduled,R,sch-north,term-2526,,,1\n"
    )
    users = read("v11_bulk", "users") + (
        "s-dup,,,true,sch-north,student,ava.lopez,,Ava,Clone,,,,,,,03,\n"
        "s-wiz,,,true,sch-north,wizard,wiz,,Wi,Zard,,,,,,,03,\n"
        "s-noname,,,true,sch-north,student,,,No,Name,,,,,,,03,\n"
        "s-bad,,,maybe,sch-north,student,bad,,Bad,Flag,,,,,,,03,\n"
        "s-ben,,,true,sch-south,student,ben2,,Ben,Twice,,,,,,,07,\n"
    )
    enrollments = read("v11_bulk", "enrollments") + (
        "e-x1,,,cls-none,sch-north,s-ava,student,,,\n"
        "e-x2,,,cls-math3-a,sch-north,s-ghost,student,,,\n"
        "e-x3,,,cls-math3-a,sch-north,s-cara,pupil,,,\n"
        "e-x4,,,cls-math3-a,sch-north,s-cara,student,,2025-13-01,\n"
        "e-x5,,,cls-math3-a,sch-north,t-osei,administrator,,,\n"
    )

    report = run_import(
        bundle("v11_bulk", orgs=orgs, classes=classes, users=users, enrollments=enrollments)
    )

    found = {(e["file"], e["line"], e["sourced_id"]): e["message"] for e in report.errors}
    assert found == {
        ("orgs.csv", 5, "sch-west"): found[("orgs.csv", 5, "sch-west")],
        ("orgs.csv", 6, "sch-x"): "parentSourcedId nowhere of org sch-x is not a known org",
        ("classes.csv", 5, "cls-bad"): "courseSourcedId crs-none is not in courses.csv",
        ("classes.csv", 6, "cls-odd"): found[("classes.csv", 6, "cls-odd")],
        (
            "classes.csv",
            7,
            "cls-math3-a",
        ): "sourcedId cls-math3-a appears more than once in the file",
        ("users.csv", 10, "s-dup"): (
            "username ava.lopez of user s-dup is already the login of user s-ava "
            "(usernames are compared without case)"
        ),
        ("users.csv", 11, "s-wiz"): found[("users.csv", 11, "s-wiz")],
        ("users.csv", 12, "s-noname"): "username is required",
        ("users.csv", 13, "s-bad"): "enabledUser 'maybe' must be true or false",
        ("users.csv", 14, "s-ben"): "sourcedId s-ben appears more than once in the file",
        ("enrollments.csv", 8, "e-x1"): "classSourcedId cls-none is not a known class",
        ("enrollments.csv", 9, "e-x2"): "userSourcedId s-ghost is not a known user",
        ("enrollments.csv", 10, "e-x3"): found[("enrollments.csv", 10, "e-x3")],
        ("enrollments.csv", 11, "e-x4"): "beginDate '2025-13-01' is not a date (YYYY-MM-DD)",
    }
    assert "type 'campus' is not one of" in found[("orgs.csv", 5, "sch-west")]
    assert "classType 'lecture' is not one of" in found[("classes.csv", 6, "cls-odd")]
    assert "role 'wizard' is not one of" in found[("users.csv", 11, "s-wiz")]
    assert "role 'pupil' is not one of" in found[("enrollments.csv", 10, "e-x3")]
    # An administrator enrollment is a warning, not an error; nothing is enrolled.
    assert [(w["file"], w["line"]) for w in report.warnings] == [("enrollments.csv", 12)]
    # The good rows all went in; the bad ones changed nothing.
    assert links(root_account) == EXPECTED_LINKS
    assert Course.objects.get(sis_course_id="cls-math3-a").name == "Math 3 - Section A"
    assert Login.objects.get(sis_user_id="s-ben").unique_id == "ben.lopez"
    assert not Login.objects.filter(sis_user_id__in=["s-dup", "s-wiz", "s-bad"]).exists()
    assert SisBatch.objects.get(pk=report.batch_id).workflow_state == "imported_with_messages"


def test_teacher_named_as_agent_and_dangling_agents_are_warnings(run_import, root_account, bundle):
    users = read("v11_bulk", "users").replace(
        "s-cara,,,true,sch-north,student,cara.nguyen,,Cara,Nguyen,,S2003,"
        'cara.nguyen@st.rbusd.example,,,"g-david,g-hoa"',
        "s-cara,,,true,sch-north,student,cara.nguyen,,Cara,Nguyen,,S2003,"
        'cara.nguyen@st.rbusd.example,,,"g-david,g-hoa,t-kim,g-unknown"',
    )

    report = run_import(bundle("v11_bulk", users=users))

    assert not report.failed, report.errors
    messages = [w["message"] for w in report.warnings]
    assert messages == [
        "user s-cara (a student) names t-kim (a teacher) as an agent: only a student and a "
        "parent, guardian or relative are linked",
        "agent g-unknown of user s-cara is not a known user",
    ]
    assert links(root_account) == EXPECTED_LINKS


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {
                "manifest": read("v11_bulk", "manifest").replace(
                    "oneroster.version,1.1", "oneroster.version,1.0"
                )
            },
            "manifest.csv: oneroster.version is '1.0'; this importer reads OneRoster 1.1 and 1.2",
        ),
        (
            {"manifest": read("v11_bulk", "manifest").replace("file.orgs,bulk", "file.orgs,full")},
            "manifest.csv: file.orgs is 'full'; expected bulk, delta or absent",
        ),
        (
            {"orgs": None},
            "manifest.csv: file.orgs is bulk but orgs.csv is not in the bundle",
        ),
        (
            {"manifest": read("v11_bulk", "manifest") + "source.note," + "x" * 200_000 + "\n"},
            "manifest.csv: line 19: Malformed CSV row: field larger than field limit",
        ),
        (
            {"users": read("v11_bulk", "users").replace("username,", "login,", 1)},
            "users.csv: missing required column(s) username",
        ),
        (
            {"users": b"sourcedId,status\n\xff\xfe".decode("latin-1")},
            "users.csv: missing required column(s)",
        ),
    ],
)
def test_a_malformed_bundle_is_a_file_error_and_applies_nothing(
    run_import, root_account, bundle, files, message
):
    report = run_import(bundle("v11_bulk", **files))

    assert report.failed
    assert report.state == SisBatch.State.FAILED
    assert any(message in e["message"] for e in report.errors), report.errors
    assert not Login.objects.exists()
    assert not ObservationLink.objects.exists()
    assert not Account.objects.filter(root_account=root_account).exists()


def test_bad_utf8_in_the_middle_of_a_file_fails_the_bundle(run_import, root_account, bundle):
    path = bundle("v11_bulk")
    data = (path / "users.csv").read_bytes() + b"s-x,,,true,sch-north,student,x,,\xff,Y,,,,,,,,\n"
    (path / "users.csv").write_bytes(data)

    report = run_import(path)

    assert report.state == SisBatch.State.FAILED
    assert "not UTF-8" in report.errors[-1]["message"]
    assert not Login.objects.exists()


def test_delta_rows_need_a_status(run_import, root_account, bundle):
    run_import(BUNDLES / "v11_bulk")
    users = (
        read("v11_delta", "users")
        .replace("s-cara,active,", "s-cara,,")
        .replace("g-david,active,2025-10-06T09:15:00.000Z", "g-david,active,yesterday")
    )

    report = run_import(bundle("v11_delta", users=users), allow_mass_delete=True)

    assert [(e["line"], e["message"]) for e in report.errors] == [
        (2, "status is required in a delta file (active or tobedeleted)"),
        (
            3,
            "dateLastModified 'yesterday' is not a date and time (ISO 8601, "
            "e.g. 2025-10-06T09:15:00.000Z)",
        ),
    ]
    assert links(root_account) == EXPECTED_LINKS


def test_oneroster_bundle_must_come_alone(run_import, root_account, tmp_path):
    other = tmp_path / "users.csv"
    other.write_text("user_id,login_id,status\nU1,u1,active\n")

    with pytest.raises(Exception, match="must be imported on its own"):
        run_import(BUNDLES / "v11_bulk", other)


# One importer, two readers ------------------------------------------------------

CANVAS_EQUIVALENT = {
    "accounts.csv": (
        "account_id,parent_account_id,name,status\n"
        "sch-north,,North Elementary,active\nsch-south,,South Middle School,active\n"
    ),
    "users.csv": (
        "user_id,login_id,first_name,last_name,email,status\n"
        "t-kim,akim,Ana,Kim,akim@rbusd.example,active\n"
        "t-osei,kosei,Kofi,Osei,kosei@rbusd.example,active\n"
        "s-ava,ava.lopez,Ava,Lopez,ava.lopez@st.rbusd.example,active\n"
        "s-ben,ben.lopez,Ben,Lopez,ben.lopez@st.rbusd.example,active\n"
        "s-cara,cara.nguyen,Cara,Nguyen,cara.nguyen@st.rbusd.example,active\n"
        "g-maria,maria.lopez@mail.example,Maria,Lopez,maria.lopez@mail.example,active\n"
        "g-david,david.okafor@mail.example,David,Okafor,david.okafor@mail.example,active\n"
        "g-hoa,hoa.nguyen@mail.example,Hoa,Nguyen,hoa.nguyen@mail.example,active\n"
    ),
    "courses.csv": (
        "course_id,short_name,long_name,account_id,status\n"
        "cls-math3-a,MATH3-A,Math 3 - Section A,sch-north,active\n"
        "cls-math3-b,MATH3-B,Math 3 - Section B,sch-north,active\n"
        "cls-sci7-1,SCI7-3,Science 7 - Period 3,sch-south,active\n"
    ),
    "enrollments.csv": (
        "course_id,user_id,role,status\n"
        "cls-math3-a,t-kim,teacher,active\ncls-math3-b,t-kim,teacher,active\n"
        "cls-sci7-1,t-osei,teacher,active\ncls-math3-a,s-ava,student,active\n"
        "cls-math3-b,s-cara,student,active\ncls-sci7-1,s-ben,student,active\n"
    ),
    "user_observers.csv": (
        "observer_id,student_id,status\n"
        "g-maria,s-ava,active\ng-maria,s-ben,active\ng-david,s-cara,active\n"
        "g-hoa,s-cara,active\n"
    ),
}


def _state(root_account):
    enrollments = sorted(
        Enrollment.objects.filter(root_account=root_account).values_list(
            "user__logins__sis_user_id",
            "course__sis_course_id",
            "type",
            "workflow_state",
            "associated_user__logins__sis_user_id",
        ),
        key=lambda row: tuple(str(v) for v in row),
    )
    pairs = [(o, s) for o, s, _ in links(root_account)]
    return pairs, enrollments


def test_oneroster_and_equivalent_canvas_files_leave_the_same_links_and_enrollments(
    run_import, root_account, other_root_account, tmp_path
):
    canvas = tmp_path / "canvas"
    canvas.mkdir()
    for name, text in CANVAS_EQUIVALENT.items():
        (canvas / name).write_text(text)

    run_import(BUNDLES / "v11_bulk")
    canvas_report = run_import(canvas, account=other_root_account)

    assert not canvas_report.failed, canvas_report.errors
    assert _state(root_account) == _state(other_root_account)
    assert len(_state(root_account)[1]) == 10


# Export ---------------------------------------------------------------------------


def test_oneroster_export_reimports_to_the_same_users_and_links(
    run_import, root_account, other_root_account, tmp_path, make_user
):
    from linking.services.sis import export_oneroster_directory, export_oneroster_zip

    run_import(BUNDLES / "v11_bulk")
    # A link made with a code between SIS people is exported too; one with a side
    # without an SIS id cannot be.
    link_observer(
        observer=Login.objects.get(sis_user_id="g-hoa").user,
        student=Login.objects.get(sis_user_id="s-ava").user,
        root_account=root_account,
        actor=Actor.system(),
        source=LinkSource.PAIRING_CODE,
    )
    link_observer(
        observer=make_user("No SIS", root_account),
        student=Login.objects.get(sis_user_id="s-ben").user,
        root_account=root_account,
        actor=Actor.system(),
        source=LinkSource.PAIRING_CODE,
    )
    out = tmp_path / "export"
    root_account.refresh_from_db()  # the import recorded the district's sourcedId

    counts = export_oneroster_directory(root_account=root_account, directory=out)

    assert (counts.users, counts.skipped_links) == (8, 1)
    rows = (out / "users.csv").read_text().splitlines()
    assert rows[0].startswith("sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role")
    assert "g-maria,,,true,d-rb,parent,maria.lopez@mail.example,,Maria,Lopez,,," in "\n".join(rows)
    assert '"g-hoa,g-maria"' in next(row for row in rows if row.startswith("s-ava,"))
    before = links(root_account)
    events = AuditEvent.objects.count()

    # Into the same school: no link comes or goes, the code-made link keeps its source
    # and takes the kind the export gave its observer (Hoa is a relative).
    again = run_import(out)
    assert not again.failed, again.errors
    totals = again.totals()
    assert (totals["created"], totals["deleted"], totals["restored"]) == (0, 0, 0)
    assert [(f.name, dict(f.counts)) for f in again.files][1] == (
        "users.csv (agentSourcedIds)",
        {"updated": 1, "unchanged": 4},
    )
    hoa_ava = ("g-hoa", "s-ava", "relative")
    assert links(root_account) == sorted([*(r for r in before if r[:2] != hoa_ava[:2]), hoa_ava])
    assert AuditEvent.objects.count() == events
    assert (
        ObservationLink.objects.get(
            observer__logins__sis_user_id="g-hoa", student__logins__sis_user_id="s-ava"
        ).source
        == LinkSource.PAIRING_CODE
    )
    before = links(root_account)
    # Into an empty school: the same people and links.
    fresh = run_import(out, account=other_root_account)
    assert not fresh.failed, fresh.errors
    assert links(other_root_account) == [row for row in before if row[0]]
    assert sorted(
        Login.objects.filter(root_account=other_root_account).values_list(
            "sis_user_id", "unique_id", "user__name", "user__email"
        )
    ) == sorted(
        Login.objects.filter(root_account=root_account, sis_user_id__isnull=False).values_list(
            "sis_user_id", "unique_id", "user__name", "user__email"
        )
    )
    # The zip holds the same two files.
    archive = tmp_path / "export.zip"
    with archive.open("wb") as target:
        export_oneroster_zip(root_account=root_account, target=target)
    with zipfile.ZipFile(archive) as zipped:
        assert sorted(zipped.namelist()) == ["manifest.csv", "users.csv"]
        assert zipped.read("users.csv").decode() == (out / "users.csv").read_text()


def test_v12_role_of_an_unknown_user_is_a_row_error_and_a_user_without_a_role_is_not_linked(
    run_import, root_account, bundle
):
    roles = (
        "\n".join(
            line
            for line in read("v12_bulk", "roles").splitlines()
            if not line.startswith("r-g-hoa,")
        )
        + "\nr-ghost,,,s-ghost,primary,student,,,sch-north,\n"
    )

    report = run_import(bundle("v12_bulk", roles=roles))

    assert [(e["file"], e["line"], e["sourced_id"], e["message"]) for e in report.errors] == [
        (
            "roles.csv",
            10,
            "s-ghost",
            "userSourcedId s-ghost is not in users.csv nor imported before",
        )
    ]
    assert Login.objects.get(sis_user_id="g-hoa").sis_role == ""
    assert ("g-hoa", "s-cara", "relative") not in links(root_account)
    assert any("names g-hoa (without a role) as an agent" in w["message"] for w in report.warnings)
    assert len(links(root_account)) == 3
