"""PostgreSQL: an enrollment's references are checked once per statement, not once per row.

An enrollment refers to its user, the student it observes (observer
enrollments) and its course in its root account. Foreign keys checked that
row by row: PostgreSQL queues a trigger event per row and key and runs one
lookup per event (about 4 µs each). A district's first links file writes
about 440,000 observer enrollments, so 1.3 million lookups, 5 of the file's
14.5 seconds (issue 12); every enrollments file paid the same per row.

This migration replaces the three keys with triggers that check the same
things set-wise:

- after each INSERT statement, one query locks the users and courses the
  new rows name (``FOR KEY SHARE``, the lock a foreign key's check takes,
  so nobody can delete them or change their keys until this transaction
  ends) and anti-joins find any row whose user, observed user or course is
  missing, or whose course is in another root account. The links file's
  checks take well under a second instead of 5;
- an UPDATE that changes one of those columns (rare: the app never does)
  checks the row the same way;
- deleting a user or a course, or changing its id or a course's root
  account, fails while an enrollment still names it: a constraint trigger,
  deferred to commit like the foreign keys it replaces, so Django may
  delete a user and then their enrollments in one transaction.

A violation raises SQLSTATE 23503 (foreign_key_violation), which Django
reports as ``IntegrityError``, as before. Two differences from the keys,
written down in docs/sis.md: the check on new enrollments runs at the end
of the statement that writes them, not at commit (every writer creates
users and courses first; Django's deletion order deletes enrollments before
the user and course they name, as it does for databases without deferred
keys); and, as with any trigger, ``TRUNCATE`` of users or courses alone is
not stopped (Django truncates every table together).

The model keeps declaring ordinary foreign keys: Django's schema editor
finds no constraint to drop when a later migration alters the fields (it is
not strict about it) and adds none. SQLite keeps its foreign keys: its
checks are cheap and it cannot run these triggers.
"""

from django.db import migrations

ENROLLMENT_KEYS = ("user_id", "associated_user_id", "course_id", "root_account_id")
COMPOSITE = "enrollment_course_in_root_account"


# The new rows' checks: lock what they name, then find any row naming
# something missing. Written once, run two ways by the trigger: a statement
# of up to SMALL rows runs them as static SQL, whose plans PL/pgSQL keeps
# (index probes: a one-row insert takes about 65 µs in all, against some
# 35 µs with the keys); a larger one as dynamic SQL (EXECUTE), planned for
# its own number of rows (hash joins, some tens of milliseconds for an
# import's chunk of 30,000). One cached plan for both was wrong for one of them: made for
# 30,000 rows, it hashed every user for a single row (20 ms an enrollment).
SMALL = 64
LOCK_USERS = (
    "1 FROM linking_user u"
    " WHERE u.id IN (SELECT n.user_id FROM new_rows n"
    " UNION SELECT n.associated_user_id FROM new_rows n WHERE n.associated_user_id IS NOT NULL)"
    " ORDER BY u.id FOR KEY SHARE OF u"
)
LOCK_COURSES = (
    "1 FROM linking_course c WHERE c.id IN (SELECT n.course_id FROM new_rows n)"
    " ORDER BY c.id FOR KEY SHARE OF c"
)
FIND_BROKEN = (
    "n.user_id, n.associated_user_id, n.course_id, n.root_account_id {into} FROM ("
    " SELECT n.* FROM new_rows n"
    " WHERE NOT EXISTS (SELECT 1 FROM linking_user u WHERE u.id = n.user_id)"
    " UNION ALL SELECT n.* FROM new_rows n"
    " WHERE n.associated_user_id IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM linking_user u WHERE u.id = n.associated_user_id)"
    " UNION ALL SELECT n.* FROM new_rows n"
    " WHERE NOT EXISTS (SELECT 1 FROM linking_course c"
    " WHERE c.id = n.course_id AND c.root_account_id = n.root_account_id)"
    ") n LIMIT 1"
)
CHECK_INSERTED = f"""
CREATE FUNCTION linking_enrollment_check_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    written bigint;
    bad record;
BEGIN
    SELECT count(*) INTO written FROM new_rows;
    IF written <= {SMALL} THEN
        PERFORM {LOCK_USERS};
        PERFORM {LOCK_COURSES};
        SELECT {FIND_BROKEN.format(into="INTO bad")};
    ELSE
        EXECUTE $q$SELECT {LOCK_USERS}$q$;
        EXECUTE $q$SELECT {LOCK_COURSES}$q$;
        EXECUTE $q$SELECT {FIND_BROKEN.format(into="")}$q$ INTO bad;
    END IF;
    IF bad.user_id IS NOT NULL THEN
        PERFORM linking_enrollment_reference_violation(
            bad.user_id, bad.associated_user_id, bad.course_id, bad.root_account_id);
    END IF;
    RETURN NULL;
END $$;
"""

FORWARD_TEMPLATE = r"""
CREATE FUNCTION linking_enrollment_reference_violation(
    enrollment_user bigint, observed_user bigint, course bigint, root_account bigint
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'insert or update on table "linking_enrollment" violates its references'
        USING ERRCODE = 'foreign_key_violation',
              TABLE = 'linking_enrollment',
              DETAIL = format(
                  'Key (user_id, associated_user_id, course_id, root_account_id)=(%s, %s, %s, %s):'
                  ' the user, the observed user or the course does not exist,'
                  ' or the course is not in that root account.',
                  enrollment_user, coalesce(observed_user::text, 'null'), course, root_account);
END $$;

-- After each INSERT statement: the new rows' references, set-wise.
{check_inserted}
CREATE TRIGGER linking_enrollment_references_inserted
    AFTER INSERT ON linking_enrollment
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION linking_enrollment_check_inserted();

-- An UPDATE that changes a reference: that row, the same way.
CREATE FUNCTION linking_enrollment_check_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM linking_user u
     WHERE u.id IN (NEW.user_id, NEW.associated_user_id)
     ORDER BY u.id FOR KEY SHARE OF u;
    PERFORM 1 FROM linking_course c WHERE c.id = NEW.course_id FOR KEY SHARE OF c;
    IF NOT EXISTS (SELECT 1 FROM linking_user u WHERE u.id = NEW.user_id)
       OR (NEW.associated_user_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM linking_user u WHERE u.id = NEW.associated_user_id))
       OR NOT EXISTS (SELECT 1 FROM linking_course c
                       WHERE c.id = NEW.course_id AND c.root_account_id = NEW.root_account_id)
    THEN
        PERFORM linking_enrollment_reference_violation(
            NEW.user_id, NEW.associated_user_id, NEW.course_id, NEW.root_account_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER linking_enrollment_references_changed
    AFTER UPDATE OF user_id, associated_user_id, course_id, root_account_id ON linking_enrollment
    FOR EACH ROW
    WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id
          OR OLD.associated_user_id IS DISTINCT FROM NEW.associated_user_id
          OR OLD.course_id IS DISTINCT FROM NEW.course_id
          OR OLD.root_account_id IS DISTINCT FROM NEW.root_account_id)
    EXECUTE FUNCTION linking_enrollment_check_changed();

-- A user or course an enrollment names cannot go (checked at commit).
CREATE FUNCTION linking_enrollment_check_referenced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    enrollment bigint;
BEGIN
    IF TG_TABLE_NAME = 'linking_user' THEN
        IF EXISTS (SELECT 1 FROM linking_user u WHERE u.id = OLD.id) THEN
            RETURN NULL;  -- the id came back (deleted and written again)
        END IF;
        SELECT e.id INTO enrollment FROM linking_enrollment e WHERE e.user_id = OLD.id LIMIT 1;
        IF NOT FOUND THEN
            SELECT e.id INTO enrollment FROM linking_enrollment e
             WHERE e.associated_user_id = OLD.id LIMIT 1;
        END IF;
    ELSE
        IF EXISTS (SELECT 1 FROM linking_course c
                    WHERE c.id = OLD.id AND c.root_account_id = OLD.root_account_id) THEN
            RETURN NULL;
        END IF;
        SELECT e.id INTO enrollment FROM linking_enrollment e
         WHERE e.course_id = OLD.id AND e.root_account_id = OLD.root_account_id LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'update or delete on table "%" violates references from table "linking_enrollment"',
                TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation',
                  TABLE = TG_TABLE_NAME,
                  DETAIL = format('Key (id)=(%s) is still referenced from enrollment %s.',
                                  OLD.id, enrollment);
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER linking_user_enrollments_deleted
    AFTER DELETE ON linking_user DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION linking_enrollment_check_referenced();
CREATE CONSTRAINT TRIGGER linking_user_enrollments_rekeyed
    AFTER UPDATE OF id ON linking_user DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION linking_enrollment_check_referenced();
CREATE CONSTRAINT TRIGGER linking_course_enrollments_deleted
    AFTER DELETE ON linking_course DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION linking_enrollment_check_referenced();
CREATE CONSTRAINT TRIGGER linking_course_enrollments_rekeyed
    AFTER UPDATE OF id, root_account_id ON linking_course DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.root_account_id IS DISTINCT FROM NEW.root_account_id)
    EXECUTE FUNCTION linking_enrollment_check_referenced();
"""

FORWARD = FORWARD_TEMPLATE.replace("{check_inserted}", CHECK_INSERTED)

BACKWARD = """
DROP TRIGGER IF EXISTS linking_course_enrollments_rekeyed ON linking_course;
DROP TRIGGER IF EXISTS linking_course_enrollments_deleted ON linking_course;
DROP TRIGGER IF EXISTS linking_user_enrollments_rekeyed ON linking_user;
DROP TRIGGER IF EXISTS linking_user_enrollments_deleted ON linking_user;
DROP TRIGGER IF EXISTS linking_enrollment_references_changed ON linking_enrollment;
DROP TRIGGER IF EXISTS linking_enrollment_references_inserted ON linking_enrollment;
DROP FUNCTION IF EXISTS linking_enrollment_check_referenced();
DROP FUNCTION IF EXISTS linking_enrollment_check_changed();
DROP FUNCTION IF EXISTS linking_enrollment_check_inserted();
DROP FUNCTION IF EXISTS linking_enrollment_reference_violation(bigint, bigint, bigint, bigint);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    enrollment = apps.get_model("linking", "Enrollment")
    quote = schema_editor.quote_name
    table = quote(enrollment._meta.db_table)
    # The keys on these columns: user, associated_user and the composite
    # (course, root account) of migration 0016 (or the two plain keys, on a
    # database migrated before it).
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.conname FROM pg_constraint c WHERE c.conrelid = %s::regclass"
            " AND c.contype = 'f' AND NOT EXISTS (SELECT 1 FROM pg_attribute a"
            " WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)"
            " AND a.attname::text <> ALL (%s::text[]))",
            [enrollment._meta.db_table, list(ENROLLMENT_KEYS)],
        )
        names = {row[0] for row in cursor.fetchall()}
    for name in sorted(names):
        schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {quote(name)}")
    schema_editor.execute(FORWARD, None)  # no placeholders: the bodies hold %


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(BACKWARD, None)
    enrollment = apps.get_model("linking", "Enrollment")
    course = apps.get_model("linking", "Course")
    quote = schema_editor.quote_name
    for name in ("user", "associated_user"):
        field = enrollment._meta.get_field(name)
        schema_editor.execute(
            schema_editor._create_fk_sql(enrollment, field, "_fk_%(to_table)s_%(to_column)s")
        )
    schema_editor.execute(
        f"ALTER TABLE {quote(enrollment._meta.db_table)} ADD CONSTRAINT {quote(COMPOSITE)} "
        f"FOREIGN KEY (course_id, root_account_id) "
        f"REFERENCES {quote(course._meta.db_table)} (id, root_account_id) "
        "DEFERRABLE INITIALLY DEFERRED"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("linking", "0018_invitation_language"),
    ]

    operations = [
        migrations.RunPython(forward, backward, elidable=False),
    ]
