-- Backups: where they go (destinations), when they are made (schedules, claimed with a lease like the deploy
-- queue's jobs, so a tick runs once however often the daemon restarts), and each one made (backups), with
-- what verifying and restoring it found.

CREATE TABLE backup_destinations (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('local', 's3')),
    config      TEXT NOT NULL DEFAULT '{}',  -- path; or endpoint, bucket, region, prefix
    credentials TEXT,                        -- sealed JSON (S3 access and secret key)
    encrypt     INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);

CREATE TABLE backup_schedules (
    id               INTEGER PRIMARY KEY,
    project_id       INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    subject_kind     TEXT NOT NULL,
    subject_id       INTEGER,            -- the subject's row (a database's); NULL for a volume
    subject_name     TEXT NOT NULL,
    destination_id   INTEGER NOT NULL REFERENCES backup_destinations(id),
    cron             TEXT NOT NULL,
    timezone         TEXT NOT NULL DEFAULT 'UTC',
    verify           INTEGER NOT NULL DEFAULT 1,
    retention        TEXT NOT NULL DEFAULT '{}',
    next_run_at      TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    last_run_at      TEXT,
    last_backup_id   INTEGER,
    created_at       TEXT NOT NULL,
    UNIQUE (project_id, subject_kind, subject_name, destination_id)
);
CREATE INDEX backup_schedules_due ON backup_schedules (next_run_at);

CREATE TABLE backups (
    id             INTEGER PRIMARY KEY,
    project_id     INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    subject_kind   TEXT NOT NULL,
    subject_id     INTEGER,
    subject_name   TEXT NOT NULL,
    destination_id INTEGER REFERENCES backup_destinations(id),
    schedule_id    INTEGER REFERENCES backup_schedules(id) ON DELETE SET NULL,
    object_key     TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('running', 'success', 'failed')),
    started_at     TEXT NOT NULL,
    finished_at    TEXT,
    size           INTEGER,
    raw_size       INTEGER,
    checksum       TEXT,
    key_id         TEXT,                 -- the backup key that encrypted it; NULL: not encrypted
    exit_status    INTEGER,
    error          TEXT,
    manifest       BLOB,                 -- what the dump held (gzip JSON), for verification
    verified       TEXT NOT NULL DEFAULT 'never' CHECK (verified IN ('never', 'running', 'passed', 'failed')),
    verified_at    TEXT,
    verify_detail  TEXT,
    restore_state  TEXT CHECK (restore_state IN ('running', 'success', 'failed')),
    restore_target TEXT,
    restored_at    TEXT,
    restore_detail TEXT,
    -- A successful backup has its size and checksum: nothing counts as a backup without them.
    CHECK (state != 'success' OR (size IS NOT NULL AND checksum IS NOT NULL AND raw_size > 0))
);
CREATE INDEX backups_subject ON backups (project_id, subject_kind, subject_name, id);
