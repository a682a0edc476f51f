-- Each project gets a stable random id (uid) that names its Docker network and volumes: a name can be taken
-- again after a project is deleted, or changed by a rename, a uid never is, so a project never reaches another's
-- (or a deleted namesake's) network or data.
--
-- unscoped_volumes: the project existed before volumes were per project. Its apps made their volumes under the
-- bare volume name; a deployment keeps mounting such a volume when it carries Mist's labels for this project,
-- so an upgrade loses no data. Projects created from now on never look at bare names.

ALTER TABLE projects ADD COLUMN uid TEXT;
ALTER TABLE projects ADD COLUMN unscoped_volumes INTEGER NOT NULL DEFAULT 0;
UPDATE projects SET uid = lower(hex(randomblob(8))), unscoped_volumes = 1;
CREATE UNIQUE INDEX projects_uid ON projects (uid);

-- A row inserted without one gets a uid too; once given, it never changes.
CREATE TRIGGER projects_uid_on_insert AFTER INSERT ON projects WHEN NEW.uid IS NULL
BEGIN
    UPDATE projects SET uid = lower(hex(randomblob(8))) WHERE id = NEW.id;
END;

CREATE TRIGGER projects_uid_is_stable BEFORE UPDATE OF uid ON projects
WHEN OLD.uid IS NOT NULL AND NEW.uid IS NOT OLD.uid
BEGIN
    SELECT RAISE(ABORT, 'a project''s uid never changes');
END;
