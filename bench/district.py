"""A generated school district, as a OneRoster bundle and as the equivalent Canvas SIS CSVs.

``python -m bench.district --out DIR [--scale 0.1] [--oneroster-version 1.2]`` writes::

    DIR/canvas/base/      accounts.csv users.csv courses.csv enrollments.csv user_observers.csv
    DIR/canvas/changed/   the same files with 1% of the rows changed (see below)
    DIR/oneroster/base/   manifest.csv orgs.csv academicSessions.csv courses.csv classes.csv
                          users.csv enrollments.csv (+ roles.csv for 1.2), every file bulk
    DIR/oneroster/changed/  the bulk bundle of the changed district
    DIR/oneroster/delta/  base -> changed as a delta bundle (users and enrollments only)
    DIR/district.json     parameters and the counts actually written

The district is deterministic for a seed: one district org, N schools, one
term, courses with two classes (sections) each, teachers (two classes each),
students in several classes of their school, and families of one or two
students (siblings, who may go to different schools) with one or two
guardians (role ``parent``, some ``guardian``, a few ``relative``).
``agentSourcedIds`` are written on the student's and on the guardian's row.

The two formats describe the same district with the same ids: a user's
``sourcedId`` is its Canvas ``user_id`` and ``username`` its ``login_id``, a
school org is a Canvas sub-account (the district org is the root account
the import runs in), a class ``sourcedId`` is the Canvas ``course_id``.
``user_observers.csv`` holds every student-guardian pair, ``relative``
agents included, as the OneRoster importer links them (issue 12: parent,
guardian or relative); ``--no-relative-links`` leaves relatives out of the
Canvas side. Observer enrollments are never written: the importer derives them.

The "1% changed" district renames 1% of the users (family name), drops
0.5% of the student enrollments and adds 0.5% (one more class for a
student), and moves 1% of the parent/guardian links to another guardian.
The Canvas files stay complete (Canvas imports delete nothing that is
missing): dropped enrollments and moved links are ``deleted`` rows, added
ones new ``active`` rows. The OneRoster bulk bundle simply leaves them out
(bulk replaces the SIS-owned set); the delta bundle carries only the changed
users (students and guardians whose agents changed: both sides) and the
dropped (``tobedeleted``) and added enrollments.

Files are written row by row; the district keeps only its structure in
memory (who belongs to which family and school: a few tuples per person),
never the rows.
"""

import argparse
import csv
import json
import math
import random
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

# Exact OneRoster headers (reference oneroster-csv.md §2), in order.
OR_HEADERS = {
    "orgs": "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId",
    "academicSessions": (
        "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear"
    ),
    "courses": (
        "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,"
        "orgSourcedId,subjects,subjectCodes"
    ),
    "classes": (
        "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,"
        "location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods"
    ),
    "users-1.1": (
        "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,"
        "givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,"
        "password"
    ),
    "users-1.2": (
        "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,"
        "middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,"
        "userMasterIdentifier,resourceSourcedIds,preferredGivenName,preferredMiddleName,"
        "preferredFamilyName,primaryOrgSourcedId,pronouns"
    ),
    "roles": (
        "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,"
        "orgSourcedId,userProfileSourcedId"
    ),
    "enrollments": (
        "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,"
        "primary,beginDate,endDate"
    ),
}

# Every data file of the version, in the reference manifests' order (§5.1, §5.2).
MANIFEST_FILES = {
    "1.1": [
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
    ],
    "1.2": [
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
    ],
}

# Canvas SIS CSV headers (linking/services/sis/reader.py signatures, README "Formats").
CANVAS_HEADERS = {
    "accounts": "account_id,parent_account_id,name,status",
    "users": "user_id,login_id,first_name,last_name,email,status",
    "courses": "course_id,short_name,long_name,account_id,status",
    "enrollments": "course_id,user_id,role,status",
    "user_observers": "observer_id,student_id,status",
}

DISTRICT_ID = "d-bench"
TERM_ID = "term-2526"
DELTA_STAMP = "2025-10-06T09:15:00.000Z"
LINKED_ROLES = ("parent", "guardian")
GUARDIAN_ROLES = (*LINKED_ROLES, "relative")
VARIANTS = ("base", "changed")

FIRST_NAMES = [
    "Ava",
    "Ben",
    "Cara",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonah",
    "Kai",
    "Lena",
    "Mateo",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Umar",
    "Vera",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
    "Amir",
    "Bea",
    "Caleb",
    "Dara",
    "Emil",
    "Fatima",
    "Gil",
    "Hana",
    "Ivan",
    "June",
    "Kofi",
    "Lucia",
    "Milo",
    "Noor",
]
LAST_NAMES = [
    "Lopez",
    "Nguyen",
    "Okafor",
    "Kim",
    "Osei",
    "Smith",
    "Garcia",
    "Chen",
    "Patel",
    "Rossi",
    "Novak",
    "Haddad",
    "Silva",
    "Tanaka",
    "Mensah",
    "Dubois",
    "Kowalski",
    "Ali",
    "Jensen",
    "Moreau",
    "Ivanova",
    "Costa",
    "Sato",
    "Abara",
    "Brennan",
    "Cruz",
    "Diaz",
    "Eriksen",
    "Farah",
    "Gupta",
    "Horvat",
    "Ito",
    "Jovanovic",
    "Khan",
    "Larsen",
    "Mendes",
    "Nakamura",
    "Olsen",
    "Park",
    "Quispe",
]
SUBJECTS = (
    ("Mathematics", "MATH"),
    ("Science", "SCI"),
    ("English Language Arts", "ELA"),
    ("Social Studies", "SOC"),
    ("Art", "ART"),
    ("Music", "MUS"),
    ("Physical Education", "PE"),
    ("World Languages", "LANG"),
)


@dataclass(frozen=True)
class Params:
    """Size of the district; ``scaled(f)`` multiplies every count (schools included)."""

    users: int = 100_000
    schools: int = 50
    classes: int = 5_000
    enrollments: int = 300_000
    links: int = 60_000
    seed: int = 2026
    change_share: float = 0.01  # of users, student enrollments and links, in "changed"

    @classmethod
    def scaled(cls, scale: float, seed: int = 2026) -> "Params":
        base = cls()
        return cls(
            users=max(8, round(base.users * scale)),
            schools=max(1, round(base.schools * scale)),
            classes=max(2, round(base.classes * scale)),
            enrollments=max(4, round(base.enrollments * scale)),
            links=max(2, round(base.links * scale)),
            seed=seed,
        )


def _school_id(k: int) -> str:
    return f"sch-{k:03d}"


class District:
    """The structure of a generated district; rows are produced on demand, never stored."""

    def __init__(self, params: Params):
        p = self.params = params
        if p.classes < p.schools:
            raise ValueError("need at least one class per school")
        rng = random.Random(p.seed)
        # Classes: a contiguous block per school; two classes (sections) per course.
        self.class_start = [k * p.classes // p.schools for k in range(p.schools + 1)]
        self.class_school = array("I")
        for k in range(p.schools):
            self.class_school.extend([k] * (self.class_start[k + 1] - self.class_start[k]))
        # Teachers: two consecutive classes each.
        self.teachers = math.ceil(p.classes / 2)
        rest = p.users - self.teachers
        students = min(max(1, round(p.links / 1.5)), rest - 1)
        guardians = rest - students
        # Families: F of them, P with two children (siblings), G - F with two guardians;
        # links are then about students * guardians / families.
        families = min(students, guardians, max(1, round(students * guardians / p.links)))
        families = max(families, math.ceil(guardians / 2))
        if families > min(students, guardians):
            raise ValueError(
                f"{p.users} users cannot hold {p.links} links with {self.teachers} teachers: "
                "give more links or fewer users"
            )
        self.students, self.guardians = students, guardians
        sibling_families = set(rng.sample(range(families), students - families))
        two_guardian_families = set(rng.sample(range(families), guardians - families))
        self.student_guardians: list[tuple[int, ...]] = []
        self.guardian_students: list[tuple[int, ...]] = []
        self.family_name = array("H")  # per student and, after them, per guardian
        guardian_family = array("H")
        self.student_school = array("I")
        for f in range(families):
            kids = 2 if f in sibling_families else 1
            adults = 2 if f in two_guardian_families else 1
            first_kid, first_adult = len(self.student_guardians), len(self.guardian_students)
            kid_ids = tuple(range(first_kid, first_kid + kids))
            adult_ids = tuple(range(first_adult, first_adult + adults))
            name = rng.randrange(len(LAST_NAMES))
            school = rng.randrange(p.schools)
            for n in range(kids):
                self.student_guardians.append(adult_ids)
                self.family_name.append(name)
                # Siblings mostly share a school; some go to another one.
                if n and rng.random() < 0.3:
                    school = rng.randrange(p.schools)
                self.student_school.append(school)
            for _ in range(adults):
                self.guardian_students.append(kid_ids)
                guardian_family.append(name)
        self.family_name.extend(guardian_family)
        roll = [rng.random() for _ in range(guardians)]
        self.guardian_role = bytes(2 if r < 0.03 else 1 if r < 0.23 else 0 for r in roll)
        self.first_name = array("H", (rng.randrange(len(FIRST_NAMES)) for _ in range(p.users)))
        # Student enrollments: the total spread evenly over the students, each in
        # distinct classes of their school (fewer when the school has fewer classes).
        self.student_enrollments = max(0, p.enrollments - p.classes)
        self._plan_changes(random.Random(p.seed + 1))

    # --- people ---------------------------------------------------------------

    def user_index(self, kind: str, n: int) -> int:
        """Position of a person among all users: teachers, then students, then guardians."""
        return {"t": 0, "s": self.teachers, "g": self.teachers + self.students}[kind] + n

    @staticmethod
    def student_id(s: int) -> str:
        return f"stu-{s:06d}"

    @staticmethod
    def guardian_id(g: int) -> str:
        return f"gdn-{g:06d}"

    @staticmethod
    def teacher_id(t: int) -> str:
        return f"tch-{t:05d}"

    def class_id(self, c: int) -> str:
        k = self.class_school[c]
        return f"cls-{k:03d}-{c - self.class_start[k]:03d}"

    def course_of(self, c: int) -> tuple[str, int]:
        """(course sourcedId, subject index) of a class: two sections per course."""
        k = self.class_school[c]
        j = (c - self.class_start[k]) // 2
        return f"crs-{k:03d}-{j:03d}", j % len(SUBJECTS)

    def student_classes(self, s: int) -> list[int]:
        """The classes of a student in the base district, sorted (deterministic per student)."""
        per = self.student_enrollments * (s + 1) // self.students
        per -= self.student_enrollments * s // self.students
        k = self.student_school[s]
        start, end = self.class_start[k], self.class_start[k + 1]
        rng = random.Random(self.params.seed * 1_000_003 + s)
        return sorted(start + j for j in rng.sample(range(end - start), min(per, end - start)))

    def guardian_orgs(self, g: int) -> list[str]:
        """Schools of the guardian's children, in both variants (so roles never change)."""
        students = set(self.guardian_students[g]) | set(self.changed_gs.get(g, ()))
        return sorted({_school_id(self.student_school[s]) for s in students})

    def agents(self, kind: str, n: int, variant: str) -> tuple[int, ...]:
        if kind == "s":
            if variant == "changed":
                return self.changed_sg.get(n, self.student_guardians[n])
            return self.student_guardians[n]
        if variant == "changed":
            return self.changed_gs.get(n, self.guardian_students[n])
        return self.guardian_students[n]

    # --- the 1% change --------------------------------------------------------

    def _plan_changes(self, rng: random.Random) -> None:
        p = self.params
        share = p.change_share
        self.renamed = set(rng.sample(range(p.users), round(p.users * share)))
        total = self.total_student_enrollments()
        changes = max(1, round(total * share))
        self.dropped = set(rng.sample(range(total), changes // 2))  # ordinals, base order
        self.added: dict[int, int] = {}  # student -> extra class
        for s in rng.sample(range(self.students), min(self.students, changes - changes // 2)):
            k = self.student_school[s]
            free = sorted(
                set(range(self.class_start[k], self.class_start[k + 1]))
                - set(self.student_classes(s))
            )
            if free:
                self.added[s] = rng.choice(free)
        # Move 1% of the parent/guardian links to another parent/guardian.
        eligible = [
            (s, g)
            for s, gs in enumerate(self.student_guardians)
            for g in gs
            if self.guardian_role[g] < 2
        ]
        linked = [g for g in range(self.guardians) if self.guardian_role[g] < 2]
        self.changed_sg: dict[int, tuple[int, ...]] = {}
        self.changed_gs: dict[int, tuple[int, ...]] = {}
        self.moved: list[tuple[int, int, int]] = []  # (student, old guardian, new guardian)
        if len(linked) < 3:
            return
        for s, g in rng.sample(eligible, round(len(eligible) * share)):
            current = self.changed_sg.get(s, self.student_guardians[s])
            if g not in current:
                continue
            for _ in range(10):  # bounded: a guardian not already the student's
                new = rng.choice(linked)
                if new not in current:
                    break
            else:
                continue
            self.changed_sg[s] = tuple(new if x == g else x for x in current)
            old_side = self.changed_gs.get(g, self.guardian_students[g])
            self.changed_gs[g] = tuple(x for x in old_side if x != s)
            self.changed_gs[new] = (*self.changed_gs.get(new, self.guardian_students[new]), s)
            self.moved.append((s, g, new))

    def total_student_enrollments(self) -> int:
        """Student enrollments of the base district (each capped at the school's classes)."""
        total = 0
        for s in range(self.students):
            k = self.student_school[s]
            per = self.student_enrollments * (s + 1) // self.students
            per -= self.student_enrollments * s // self.students
            total += min(per, self.class_start[k + 1] - self.class_start[k])
        return total

    # --- rows -----------------------------------------------------------------

    def people(self, variant: str) -> Iterator[dict]:
        """Every user of the variant: teachers, students, guardians."""
        for t in range(self.teachers):
            classes = [c for c in (2 * t, 2 * t + 1) if c < self.params.classes]
            yield self._person("t", t, variant, sorted({self.class_school[c] for c in classes}))
        for s in range(self.students):
            yield self._person("s", s, variant, [self.student_school[s]])
        for g in range(self.guardians):
            yield self._person("g", g, variant, None)

    def _person(self, kind: str, n: int, variant: str, schools: list[int] | None) -> dict:
        index = self.user_index(kind, n)
        given = FIRST_NAMES[self.first_name[index]]
        if kind == "t":
            family = LAST_NAMES[(index * 7 + self.params.seed) % len(LAST_NAMES)]
        else:
            offset = 0 if kind == "s" else self.students
            family = LAST_NAMES[self.family_name[offset + n]]
        renamed = variant == "changed" and index in self.renamed
        if renamed:
            family = f"{family}-{LAST_NAMES[(index + 3) % len(LAST_NAMES)]}"
        orgs = [_school_id(k) for k in schools] if schools is not None else self.guardian_orgs(n)
        if kind == "t":
            uid, role, agents, grades = self.teacher_id(n), "teacher", [], ""
            username = f"t{n:05d}"
            email = f"{username}@staff.bench.example"
        elif kind == "s":
            uid, role, grades = self.student_id(n), "student", f"{n % 12 + 1:02d}"
            agents = [self.guardian_id(g) for g in self.agents("s", n, variant)]
            username = f"s{n:06d}"
            email = f"{username}@st.bench.example"
        else:
            uid, role, grades = self.guardian_id(n), GUARDIAN_ROLES[self.guardian_role[n]], ""
            agents = [self.student_id(s) for s in self.agents("g", n, variant)]
            username = email = f"{given.lower()}.g{n:06d}@mail.example"
        return {
            "id": uid,
            "kind": kind,
            "n": n,
            "role": role,
            "username": username,
            "given": given,
            "family": family,
            "email": email,
            "orgs": orgs,
            "agents": agents,
            "grades": grades,
            "identifier": uid.split("-")[1].upper() if kind != "g" else "",
            "renamed": renamed,
        }

    def enrollments(self, variant: str) -> Iterator[dict]:
        """Teacher enrollments, then student enrollments, of the variant.

        ``state`` is "active", "dropped" (in base, not in changed) or "added"
        (only in changed); the base variant yields no "added" rows and every
        row as "active".
        """
        for c in range(self.params.classes):
            yield self._enrollment(c, self.teacher_id(c // 2), "teacher", "active")
        ordinal = 0
        for s in range(self.students):
            classes = self.student_classes(s)
            for c in classes:
                state = "active"
                if variant == "changed" and ordinal in self.dropped:
                    state = "dropped"
                ordinal += 1
                yield self._enrollment(c, self.student_id(s), "student", state)
            if variant == "changed" and s in self.added:
                yield self._enrollment(self.added[s], self.student_id(s), "student", "added")

    def _enrollment(self, c: int, uid: str, role: str, state: str) -> dict:
        class_id = self.class_id(c)
        return {
            "id": f"enr-{class_id[4:]}-{uid}",
            "class": class_id,
            "school": _school_id(self.class_school[c]),
            "user": uid,
            "role": role,
            "state": state,
        }

    def linked_pairs(self, variant: str, relatives: bool = True) -> Iterator[tuple[str, str]]:
        """(guardian, student) pairs that make observation links, in student order."""
        for s in range(self.students):
            for g in self.agents("s", s, variant):
                if relatives or self.guardian_role[g] < 2:
                    yield self.guardian_id(g), self.student_id(s)


# --- writers --------------------------------------------------------------------


class _Writer:
    """A CSV file written row by row, with its row count."""

    def __init__(self, path: Path, header: str):
        self.path = path
        self.handle = path.open("w", newline="", encoding="utf-8")
        self.csv = csv.writer(self.handle)
        self.csv.writerow(header.split(","))
        self.rows = 0

    def row(self, values) -> None:
        self.csv.writerow(values)
        self.rows += 1

    def close(self) -> int:
        self.handle.close()
        return self.rows


def _classes_rows(d: District) -> Iterator[list[str]]:
    for c in range(d.params.classes):
        class_id = d.class_id(c)
        course_id, subject = d.course_of(c)
        name, code = SUBJECTS[subject]
        section = "AB"[(c - d.class_start[d.class_school[c]]) % 2]
        yield [
            class_id,
            f"{name} {course_id[-3:]} - Section {section}",
            f"{code}{course_id[-3:]}-{section}",
            course_id,
            subject,
            d.class_school[c],
        ]


def write_canvas(d: District, out: Path, variant: str, relatives: bool = True) -> dict:
    """The Canvas SIS CSVs of the variant; changes are deleted/new rows (files stay complete)."""
    out.mkdir(parents=True, exist_ok=True)
    w = _Writer(out / "accounts.csv", CANVAS_HEADERS["accounts"])
    for k in range(d.params.schools):
        w.row([_school_id(k), "", f"School {k:03d}", "active"])
    counts = {"accounts": w.close()}
    w = _Writer(out / "users.csv", CANVAS_HEADERS["users"])
    for person in d.people(variant):
        w.row(
            [
                person["id"],
                person["username"],
                person["given"],
                person["family"],
                person["email"],
                "active",
            ]
        )
    counts["users"] = w.close()
    w = _Writer(out / "courses.csv", CANVAS_HEADERS["courses"])
    for class_id, title, code, _course, _subject, school in _classes_rows(d):
        w.row([class_id, code, title, _school_id(school), "active"])
    counts["courses"] = w.close()
    w = _Writer(out / "enrollments.csv", CANVAS_HEADERS["enrollments"])
    for e in d.enrollments(variant):
        status = "deleted" if e["state"] == "dropped" else "active"
        w.row([e["class"], e["user"], e["role"], status])
    counts["enrollments"] = w.close()
    w = _Writer(out / "user_observers.csv", CANVAS_HEADERS["user_observers"])
    if variant == "base":
        for guardian, student in d.linked_pairs("base", relatives):
            w.row([guardian, student, "active"])
    else:
        for s in range(d.students):
            student, now = d.student_id(s), d.changed_sg.get(s)
            before = [g for g in d.student_guardians[s] if relatives or d.guardian_role[g] < 2]
            for g in before:
                gone = now is not None and g not in now
                w.row([d.guardian_id(g), student, "deleted" if gone else "active"])
            for g in now or ():
                if g not in before and (relatives or d.guardian_role[g] < 2):
                    w.row([d.guardian_id(g), student, "active"])
    counts["user_observers"] = w.close()
    return counts


def _manifest(out: Path, version: str, modes: dict[str, str]) -> None:
    w = _Writer(out / "manifest.csv", "propertyName,value")
    w.row(["manifest.version", "1.0"])
    w.row(["oneroster.version", version])
    for name in MANIFEST_FILES[version]:
        w.row([f"file.{name}", modes.get(name, "absent")])
    w.row(["source.systemName", "observers bench district"])
    w.row(["source.systemCode", "BENCH"])
    w.close()


def _user_row(person: dict, version: str, status: str, stamp: str) -> list:
    agents = ",".join(person["agents"])
    common_head = [person["id"], status, stamp, "true"]
    names = [person["given"], person["family"], "", person["identifier"], person["email"], "", ""]
    if version == "1.1":
        return [
            *common_head,
            ",".join(person["orgs"]),
            person["role"],
            person["username"],
            "",
            *names,
            agents,
            person["grades"],
            "",
        ]
    return [
        *common_head,
        person["username"],
        "",
        *names,
        agents,
        person["grades"],
        "",
        "",
        "",
        "",
        "",
        "",
        person["orgs"][0] if person["orgs"] else "",
        "",
    ]


def _enrollment_row(e: dict, status: str, stamp: str) -> list:
    primary = "true" if e["role"] == "teacher" else ""
    return [
        e["id"],
        status,
        stamp,
        e["class"],
        e["school"],
        e["user"],
        e["role"],
        primary,
        "",
        "",
    ]


def write_oneroster(d: District, out: Path, variant: str, version: str = "1.1") -> dict:
    """A bulk bundle of the variant (status and dateLastModified blank)."""
    out.mkdir(parents=True, exist_ok=True)
    files = ["academicSessions", "classes", "courses", "enrollments", "orgs", "users"]
    if version == "1.2":
        files.append("roles")
    _manifest(out, version, dict.fromkeys(files, "bulk"))
    w = _Writer(out / "orgs.csv", OR_HEADERS["orgs"])
    w.row([DISTRICT_ID, "", "", "Bench Unified School District", "district", "0699999", ""])
    for k in range(d.params.schools):
        w.row([_school_id(k), "", "", f"School {k:03d}", "school", f"06999990{k:04d}", DISTRICT_ID])
    counts = {"orgs": w.close()}
    w = _Writer(out / "academicSessions.csv", OR_HEADERS["academicSessions"])
    w.row([TERM_ID, "", "", "2025-26 Full Year", "term", "2025-08-18", "2026-06-12", "", "2026"])
    counts["academicSessions"] = w.close()
    w = _Writer(out / "courses.csv", OR_HEADERS["courses"])
    for _class_id, _title, code, course_id, subject, school in _classes_rows(d):
        if code.endswith("-A"):  # one row per course, with its first section
            name = SUBJECTS[subject][0]
            w.row(
                [
                    course_id,
                    "",
                    "",
                    "",
                    f"{name} {course_id[-3:]}",
                    code[:-2],
                    "",
                    _school_id(school),
                    name,
                    "",
                ]
            )
    counts["courses"] = w.close()
    w = _Writer(out / "classes.csv", OR_HEADERS["classes"])
    for class_id, title, code, course_id, subject, school in _classes_rows(d):
        name = SUBJECTS[subject][0]
        w.row(
            [
                class_id,
                "",
                "",
                title,
                "",
                course_id,
                code,
                "scheduled",
                "",
                _school_id(school),
                TERM_ID,
                name,
                "",
                str(int(class_id[-1]) % 6 + 1),
            ]
        )
    counts["classes"] = w.close()
    w = _Writer(out / "users.csv", OR_HEADERS[f"users-{version}"])
    roles = _Writer(out / "roles.csv", OR_HEADERS["roles"]) if version == "1.2" else None
    for person in d.people(variant):
        w.row(_user_row(person, version, "", ""))
        for org in person["orgs"] if roles else ():
            roles.row(
                [
                    f"r-{person['id']}-{org}",
                    "",
                    "",
                    person["id"],
                    "primary",
                    person["role"],
                    "",
                    "",
                    org,
                    "",
                ]
            )
    counts["users"] = w.close()
    if roles:
        counts["roles"] = roles.close()
    w = _Writer(out / "enrollments.csv", OR_HEADERS["enrollments"])
    for e in d.enrollments(variant):
        if e["state"] != "dropped":
            w.row(_enrollment_row(e, "", ""))
    counts["enrollments"] = w.close()
    return counts


def write_oneroster_delta(d: District, out: Path, version: str = "1.1") -> dict:
    """base -> changed as delta files: changed users (both sides of a moved link), enrollments."""
    out.mkdir(parents=True, exist_ok=True)
    _manifest(out, version, {"users": "delta", "enrollments": "delta"})
    touched_students = set(d.changed_sg)
    touched_guardians = set(d.changed_gs)
    w = _Writer(out / "users.csv", OR_HEADERS[f"users-{version}"])
    for person in d.people("changed"):
        touched = (person["kind"] == "s" and person["n"] in touched_students) or (
            person["kind"] == "g" and person["n"] in touched_guardians
        )
        if person["renamed"] or touched:
            w.row(_user_row(person, version, "active", DELTA_STAMP))
    counts = {"users": w.close()}
    w = _Writer(out / "enrollments.csv", OR_HEADERS["enrollments"])
    for e in d.enrollments("changed"):
        if e["state"] == "dropped":
            w.row(_enrollment_row(e, "tobedeleted", DELTA_STAMP))
        elif e["state"] == "added":
            w.row(_enrollment_row(e, "active", DELTA_STAMP))
    counts["enrollments"] = w.close()
    return counts


def generate(
    out: Path,
    params: Params,
    *,
    version: str = "1.1",
    relative_links: bool = True,
) -> dict:
    """Write every bundle of the district under ``out``; the summary goes to district.json."""
    d = District(params)
    summary = {
        "params": asdict(params),
        "oneroster_version": version,
        "relative_links": relative_links,
        "people": {"teachers": d.teachers, "students": d.students, "guardians": d.guardians},
        "agent_pairs": sum(len(gs) for gs in d.student_guardians),
        "links": sum(1 for _ in d.linked_pairs("base", relative_links)),
        "changes": {
            "renamed_users": len(d.renamed),
            "dropped_enrollments": len(d.dropped),
            "added_enrollments": len(d.added),
            "moved_links": len(d.moved),
        },
        "files": {},
    }
    for variant in VARIANTS:
        summary["files"][f"canvas/{variant}"] = write_canvas(
            d, out / "canvas" / variant, variant, relative_links
        )
        summary["files"][f"oneroster/{variant}"] = write_oneroster(
            d, out / "oneroster" / variant, variant, version
        )
    summary["files"]["oneroster/delta"] = write_oneroster_delta(
        d, out / "oneroster" / "delta", version
    )
    (out / "district.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.district",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--scale", type=float, default=1.0, help="0.1 = 10,000 users, 5 schools")
    parser.add_argument("--seed", type=int, default=2026)
    for name in ("users", "schools", "classes", "enrollments", "links"):
        parser.add_argument(f"--{name}", type=int, help=f"override the scaled number of {name}")
    parser.add_argument("--oneroster-version", choices=("1.1", "1.2"), default="1.1")
    parser.add_argument(
        "--no-relative-links",
        dest="relative_links",
        action="store_false",
        help="leave relative agents out of user_observers.csv (default: all agents are linked)",
    )
    args = parser.parse_args(argv)
    params = Params.scaled(args.scale, args.seed)
    overrides = {
        name: getattr(args, name)
        for name in ("users", "schools", "classes", "enrollments", "links")
        if getattr(args, name) is not None
    }
    params = Params(**{**asdict(params), **overrides})
    summary = generate(
        args.out, params, version=args.oneroster_version, relative_links=args.relative_links
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
