-- Managed databases: a container of an official image on its project's network, with a Mist-owned volume and
-- generated credentials. The passwords are sealed (bound to "database:<id>:password" and
-- "database:<id>:admin-password"); the user and database names are not secret.
--
-- spec: JSON of how it runs (persistence for Redis, memory, cpus, restart, public_port).
-- status: what the user asked for (running, stopped); Docker says how it actually is.

CREATE TABLE databases (
    id                    INTEGER PRIMARY KEY,
    project_id            INTEGER NOT NULL REFERENCES projects(id),
    name                  TEXT NOT NULL,
    engine                TEXT NOT NULL,
    version               TEXT NOT NULL,
    spec                  TEXT NOT NULL DEFAULT '{}',
    username              TEXT NOT NULL,
    database_name         TEXT NOT NULL,
    password_sealed       TEXT NOT NULL DEFAULT '',
    admin_password_sealed TEXT,
    status                TEXT NOT NULL DEFAULT 'running',
    container_name        TEXT NOT NULL,
    volume                TEXT NOT NULL,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    UNIQUE (project_id, name)
);

-- An app linked to a database: the variables Mist set on the app for it (removed again by an unlink).
CREATE TABLE database_links (
    database_id INTEGER NOT NULL REFERENCES databases(id) ON DELETE CASCADE,
    app_id      INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    prefix      TEXT NOT NULL,
    keys        TEXT NOT NULL DEFAULT '[]',
    created_at  TEXT NOT NULL,
    PRIMARY KEY (database_id, app_id)
);
CREATE INDEX database_links_by_app ON database_links (app_id);
