"""The benchmark's district generator (bench/district.py): a tiny district, checked file by file.

The headers are the reference's (oneroster-csv.md §2, copied here rather
than taken from the generator), every reference resolves, agents appear on
both sides, and the Canvas files describe the same users, courses,
enrollments and links as the OneRoster bundles (base, changed, and base plus
the delta).
"""

import csv
from pathlib import Path

import pytest

from bench.district import Params, generate
from linking.services.sis.reader import SisSource, recognise

TINY = Params(users=40, schools=2, classes=4, enrollments=60, links=24, seed=7, change_share=0.1)

HEADERS = {
    "orgs.csv": "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId",
    "academicSessions.csv": "sourcedId,status,dateLastModified,title,type,startDate,endDate,"
    "parentSourcedId,schoolYear",
    "courses.csv": "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,"
    "grades,orgSourcedId,subjects,subjectCodes",
    "classes.csv": "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,"
    "classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods",
    "enrollments.csv": "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,"
    "userSourcedId,role,primary,beginDate,endDate",
    "manifest.csv": "propertyName,value",
}
USERS = {
    "1.1": "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,"
    "givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password",
    "1.2": "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,"
    "middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,"
    "resourceSourcedIds,preferredGivenName,preferredMiddleName,preferredFamilyName,"
    "primaryOrgSourcedId,pronouns",
}
ROLES = (
    "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,"
    "orgSourcedId,userProfileSourcedId"
)
MANIFEST_11 = [
    "academicSessions",
    "categories",
    "classes",
    "classResources",
    "courses",
    "courseResources",
    "demographics",
    "enrollments",
    "lineItems",
    "orgs",
    "resources",
    "results",
    "users",
]
MANIFEST_12 = [
    "academicSessions",
    "categories",
    "classes",
    "classResources",
    "courses",
    "courseResources",
    "demographics",
    "enrollments",
    "lineItemLearningObjectiveIds",
    "lineItems",
    "lineItemScoreScales",
    "orgs",
    "resources",
    "resultLearningObjectiveIds",
    "results",
    "resultScoreScales",
    "roles",
    "scoreScales",
    "userProfiles",
    "userResources",
    "users",
]
CANVAS_KINDS = {
    "accounts.csv": "accounts",
    "users.csv": "users",
    "courses.csv": "courses",
    "enrollments.csv": "enrollments",
    "user_observers.csv": "user_observers",
}


@pytest.fixture(autouse=True)
def _clear_cache():
    """Overrides the conftest's: these tests write files only, so no test database is needed."""
    yield


def read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    assert body, f"{path.name}: OneRoster forbids files without data rows"
    for row in body:
        assert len(row) == len(header), f"{path.name}: {row}"
    return header, [dict(zip(header, row, strict=True)) for row in body]


def split(value: str) -> list[str]:
    return value.split(",") if value else []


@pytest.fixture(scope="module", params=["1.1", "1.2"])
def district(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"district{request.param}")
    summary = generate(out, TINY, version=request.param)
    return out, request.param, summary


def oneroster_state(directory: Path, version: str) -> dict:
    """Users, courses, enrollments and parent/guardian pairs of a bulk bundle, checked."""
    _, orgs = read(directory / "orgs.csv")
    org_type = {o["sourcedId"]: o["type"] for o in orgs}
    schools = {o["sourcedId"] for o in orgs if o["type"] == "school"}
    assert all(not o["parentSourcedId"] or o["parentSourcedId"] in org_type for o in orgs)
    _, sessions = read(directory / "academicSessions.csv")
    session_ids = {s["sourcedId"] for s in sessions}
    _, courses = read(directory / "courses.csv")
    assert all(c["orgSourcedId"] in org_type for c in courses)
    course_ids = {c["sourcedId"] for c in courses}
    _, classes = read(directory / "classes.csv")
    class_school = {}
    for c in classes:
        assert c["courseSourcedId"] in course_ids
        assert c["schoolSourcedId"] in schools
        assert set(split(c["termSourcedIds"])) <= session_ids
        assert c["classType"] in {"homeroom", "scheduled"}
        class_school[c["sourcedId"]] = c["schoolSourcedId"]
    _, users = read(directory / "users.csv")
    by_id = {u["sourcedId"]: u for u in users}
    assert len(by_id) == len(users), "duplicate sourcedId"
    role = {}
    if version == "1.1":
        for u in users:
            assert set(split(u["orgSourcedIds"])) <= set(org_type)
            role[u["sourcedId"]] = u["role"]
    else:
        _, roles = read(directory / "roles.csv")
        primary = set()
        for r in roles:
            assert r["userSourcedId"] in by_id and r["orgSourcedId"] in org_type
            key = (r["userSourcedId"], r["orgSourcedId"])
            assert r["roleType"] == "primary" and key not in primary
            primary.add(key)
            role[r["userSourcedId"]] = r["role"]
        assert all(u["primaryOrgSourcedId"] in org_type for u in users)
    assert set(role) == set(by_id)
    assert set(role.values()) <= {"student", "teacher", "parent", "guardian", "relative"}
    pairs = set()
    for u in users:
        assert u["status"] == u["dateLastModified"] == ""  # bulk
        for agent in split(u["agentSourcedIds"]):
            assert agent in by_id, f"{u['sourcedId']} names unknown agent {agent}"
            # Agents on both sides (OAS12: the reverse view must be modelled).
            assert u["sourcedId"] in split(by_id[agent]["agentSourcedIds"])
            if role[u["sourcedId"]] == "student":
                assert role[agent] in {"parent", "guardian", "relative"}
                assert 1 <= len(split(u["agentSourcedIds"])) <= 2
                if role[agent] in {"parent", "guardian"}:
                    pairs.add((agent, u["sourcedId"]))
            else:
                assert role[agent] == "student"
    _, enrollments = read(directory / "enrollments.csv")
    enrolled = set()
    for e in enrollments:
        assert e["classSourcedId"] in class_school and e["userSourcedId"] in by_id
        assert e["schoolSourcedId"] == class_school[e["classSourcedId"]]
        assert e["role"] == role[e["userSourcedId"]] and e["role"] in {"student", "teacher"}
        assert e["status"] == e["dateLastModified"] == ""
        enrolled.add((e["classSourcedId"], e["userSourcedId"], e["role"]))
    assert len({e["sourcedId"] for e in enrollments}) == len(enrollments)
    return {
        "accounts": {(o["sourcedId"], "") for o in orgs if o["type"] == "school"},
        "users": {
            (u["sourcedId"], u["username"], u["givenName"], u["familyName"], u["email"])
            for u in users
        },
        "courses": {
            (c["sourcedId"], c["classCode"], c["title"], c["schoolSourcedId"]) for c in classes
        },
        "enrollments": enrolled,
        "links": pairs,
    }


def canvas_state(directory: Path) -> dict:
    """The same, from the Canvas files: what stays active after importing them."""
    for name, kind in CANVAS_KINDS.items():
        path = directory / name
        assert recognise(SisSource(name=name, opener=lambda p=path: p.open("rb"))) == kind
    _, accounts = read(directory / "accounts.csv")
    _, users = read(directory / "users.csv")
    _, courses = read(directory / "courses.csv")
    _, enrollments = read(directory / "enrollments.csv")
    _, links = read(directory / "user_observers.csv")
    user_ids = {u["user_id"] for u in users}
    assert all(e["user_id"] in user_ids for e in enrollments)
    assert all({x["observer_id"], x["student_id"]} <= user_ids for x in links)
    return {
        "accounts": {(a["account_id"], a["parent_account_id"]) for a in accounts},
        "users": {
            (u["user_id"], u["login_id"], u["first_name"], u["last_name"], u["email"])
            for u in users
            if u["status"] == "active"
        },
        "courses": {
            (c["course_id"], c["short_name"], c["long_name"], c["account_id"]) for c in courses
        },
        "enrollments": {
            (e["course_id"], e["user_id"], e["role"])
            for e in enrollments
            if e["status"] == "active"
        },
        "links": {(x["observer_id"], x["student_id"]) for x in links if x["status"] == "active"},
    }


def test_headers_and_manifest(district):
    out, version, _ = district
    for bundle in ("base", "changed", "delta"):
        directory = out / "oneroster" / bundle
        for name, header in HEADERS.items():
            if (directory / name).exists():
                assert ",".join(read(directory / name)[0]) == header, name
        assert ",".join(read(directory / "users.csv")[0]) == USERS[version]
        if version == "1.2" and bundle != "delta":
            assert ",".join(read(directory / "roles.csv")[0]) == ROLES
        _, manifest = read(directory / "manifest.csv")
        props = {m["propertyName"]: m["value"] for m in manifest}
        assert props["manifest.version"] == "1.0" and props["oneroster.version"] == version
        files = [p[len("file.") :] for p in props if p.startswith("file.")]
        assert files == (MANIFEST_11 if version == "1.1" else MANIFEST_12)
        present = {p.name[: -len(".csv")] for p in directory.glob("*.csv")} - {"manifest"}
        assert {f for f in files if props[f"file.{f}"] != "absent"} == present
        mode = "delta" if bundle == "delta" else "bulk"
        assert {props[f"file.{f}"] for f in present} == {mode}


def test_canvas_and_oneroster_describe_the_same_district(district):
    out, version, summary = district
    for variant in ("base", "changed"):
        ours = oneroster_state(out / "oneroster" / variant, version)
        theirs = canvas_state(out / "canvas" / variant)
        assert ours == theirs, variant
    base = oneroster_state(out / "oneroster" / "base", version)
    changed = oneroster_state(out / "oneroster" / "changed", version)
    for kind in ("users", "enrollments", "links"):
        assert base[kind] != changed[kind], f"the changed district changes {kind}"
    assert len(base["users"]) == TINY.users
    assert summary["changes"]["moved_links"] > 0
    # Siblings: some guardian is the agent of two students.
    _, users = read(out / "oneroster" / "base" / "users.csv")
    assert any(len(split(u["agentSourcedIds"])) == 2 and u["sourcedId"][0] == "g" for u in users)


def test_delta_turns_base_into_changed(district):
    out, _version, _ = district
    users = {u["sourcedId"]: u for u in read(out / "oneroster" / "base" / "users.csv")[1]}
    enrollments = {
        e["sourcedId"]: e for e in read(out / "oneroster" / "base" / "enrollments.csv")[1]
    }
    for kind, table in (("users", users), ("enrollments", enrollments)):
        for row in read(out / "oneroster" / "delta" / f"{kind}.csv")[1]:
            assert row["status"] in {"active", "tobedeleted"} and row["dateLastModified"]
            if row["status"] == "tobedeleted":
                del table[row["sourcedId"]]
            else:
                table[row["sourcedId"]] = {**row, "status": "", "dateLastModified": ""}
    want_users = {u["sourcedId"]: u for u in read(out / "oneroster" / "changed" / "users.csv")[1]}
    want_enrollments = {
        e["sourcedId"]: e for e in read(out / "oneroster" / "changed" / "enrollments.csv")[1]
    }
    assert users == want_users
    assert enrollments == want_enrollments


def test_deterministic(tmp_path):
    generate(tmp_path / "a", TINY)
    generate(tmp_path / "b", TINY)
    for path in sorted((tmp_path / "a").rglob("*.csv")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


SUMMARY = """SIS batch #4 (imported)
file                kind            rows  created  restored  updated  deleted  unchanged  errors
------------------  --------------  ----  -------  --------  -------  -------  ---------  ------
accounts.csv        accounts           1        0         0        0        0          1       0
users.csv           users           2000        0         0       20        0       1980       0
------------------  --------------  ----  -------  --------  -------  -------  ---------  ------
total                               2001        0         0       20        0       1981       0
"""
TIMED_SUMMARY = """SIS batch #5 (imported)
file          kind       rows  created  seconds  errors
------------  --------  -----  -------  -------  ------
manifest.csv  manifest      1        0     0.01       0
users.csv     users     20000    20000     3.25       0
------------  --------  -----  -------  -------  ------
total                   20001    20000     3.26       0
"""


def test_harness_reads_the_summary_table():
    """bench.district_import reads sis_import's table by position, a seconds column included."""
    from bench.district_import import Timed, parse_summary, rejection

    columns, files, total = parse_summary(SUMMARY)
    assert columns[:3] == ["file", "kind", "rows"] and "seconds" not in columns
    assert [(f["file"], f["kind"], f["rows"]) for f in files] == [
        ("accounts.csv", "accounts", "1"),
        ("users.csv", "users", "2000"),
    ]
    assert total["rows"] == "2001" and total["kind"] == "" and total["updated"] == "20"
    columns, files, total = parse_summary(TIMED_SUMMARY)
    assert files[1]["seconds"] == "3.25" and total["seconds"] == "3.26"
    assert parse_summary("no table here") is None
    ok = Timed(returncode=0, seconds=1.0, rss_mb=70.0, stdout=SUMMARY, stderr="")
    assert rejection(ok) is None
    refused = SUMMARY.replace("accounts   ", "?          ").replace("2001", "   0")
    message = "users.csv: users.csv: unrecognised header; expected ..."
    reason = rejection(Timed(1, 1.0, 70.0, stdout=refused, stderr=message))
    assert "not recognised" in reason and "users.csv: unrecognised header" in reason
