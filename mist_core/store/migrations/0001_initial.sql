-- The first schema: accounts, projects, apps, deployments and their logs, env vars, the job queue, audit, settings.
-- Timestamps are ISO 8601 UTC text; JSON columns hold pydantic dumps.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'owner',
    created_at    TEXT NOT NULL
);

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    last_used_at TEXT
);

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '[]',
    owner_id    INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE project_members (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);

CREATE TABLE apps (
    id                 INTEGER PRIMARY KEY,
    project_id         INTEGER NOT NULL REFERENCES projects(id),
    name               TEXT NOT NULL,
    spec               TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'new',
    live_deployment_id INTEGER REFERENCES deployments(id) ON DELETE SET NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE deployments (
    id             INTEGER PRIMARY KEY,
    app_id         INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    state          TEXT NOT NULL,
    ref            TEXT NOT NULL,
    commit_sha     TEXT,
    commit_message TEXT,
    commit_author  TEXT,
    image          TEXT,
    container_name TEXT,
    error          TEXT,
    source         TEXT NOT NULL DEFAULT 'git',
    rollback_of    INTEGER,
    config         TEXT NOT NULL,
    steps          TEXT NOT NULL DEFAULT '[]',
    triggered_by   TEXT,
    created_at     TEXT NOT NULL,
    finished_at    TEXT
);
CREATE INDEX deployments_by_app ON deployments (app_id, id DESC);
CREATE INDEX deployments_by_state ON deployments (state);

CREATE TABLE deployment_logs (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    ts            TEXT NOT NULL,
    stream        TEXT NOT NULL,
    text          TEXT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
) WITHOUT ROWID;

CREATE TABLE env_vars (
    app_id     INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    secret     INTEGER NOT NULL DEFAULT 0,
    build      INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (app_id, key)
);

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    deployment_id    INTEGER NOT NULL UNIQUE REFERENCES deployments(id) ON DELETE CASCADE,
    app_id           INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    status           TEXT NOT NULL DEFAULT 'queued',
    attempts         INTEGER NOT NULL DEFAULT 0,
    run_after        TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    created_at       TEXT NOT NULL
);
CREATE INDEX jobs_to_claim ON jobs (status, run_after);
CREATE INDEX jobs_by_app ON jobs (app_id, status);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    ts      TEXT NOT NULL,
    actor   TEXT,
    action  TEXT NOT NULL,
    project TEXT,
    app     TEXT,
    detail  TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_actor ON audit_log (actor, id DESC);
CREATE INDEX audit_by_project ON audit_log (project, id DESC);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
