-- Accounts for a team: profiles, two-factor authentication, sessions with rotating refresh tokens, API tokens,
-- invitations, login failure counters, project members with dates, and who/where in the audit log.
-- Sessions of the first schema held bearer tokens of another kind: they are dropped (everyone logs in again).

ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN full_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN totp_secret TEXT;          -- sealed; set once confirmed
ALTER TABLE users ADD COLUMN totp_pending TEXT;         -- sealed; a setup not yet confirmed
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;    -- the last time step used: no code works twice
ALTER TABLE users ADD COLUMN last_login_at TEXT;
CREATE UNIQUE INDEX users_by_email ON users (email) WHERE email IS NOT NULL;

CREATE TABLE recovery_codes (
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   TEXT,
    PRIMARY KEY (user_id, code_hash)
);

DROP TABLE sessions;
CREATE TABLE sessions (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,     -- when the refresh token runs out (renewed on every refresh)
    last_used_at   TEXT,
    revoked_at     TEXT,
    revoked_reason TEXT,
    source         TEXT,
    user_agent     TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id, id);

-- Every refresh token ever given, by hash: a used one presented again means it was copied.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    used_at    TEXT
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    project_id   INTEGER REFERENCES projects(id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id, id);

CREATE TABLE invites (
    id           INTEGER PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    username     TEXT,
    email        TEXT,
    role         TEXT NOT NULL,
    project_id   INTEGER REFERENCES projects(id) ON DELETE CASCADE,
    project_role TEXT,
    created_by   INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    accepted_at  TEXT,
    accepted_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    revoked_at   TEXT
);

-- "user:<name>" and "source:<address>" counters of failed logins in a row.
CREATE TABLE login_failures (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    locked_until TEXT,
    last_at      TEXT NOT NULL
) WITHOUT ROWID;

ALTER TABLE project_members ADD COLUMN added_at TEXT;
CREATE INDEX project_members_by_user ON project_members (user_id);
-- Whoever created a project administers it.
INSERT OR IGNORE INTO project_members (project_id, user_id, role, added_at)
    SELECT id, owner_id, 'admin', created_at FROM projects WHERE owner_id IS NOT NULL;

ALTER TABLE audit_log ADD COLUMN actor_role TEXT;
ALTER TABLE audit_log ADD COLUMN source TEXT;
CREATE INDEX audit_by_action ON audit_log (action, id DESC);
