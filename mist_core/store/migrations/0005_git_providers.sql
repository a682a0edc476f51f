-- Git providers (GitHub Apps, GitLab and Gitea accounts), how each app reaches its repository (token, deploy key
-- or provider; pinned ssh host keys; its webhook), every webhook delivery and what Mist did with it, and
-- preview apps made for pull requests.

CREATE TABLE git_providers (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL CHECK (kind IN ('github', 'gitlab', 'gitea')),
    url              TEXT NOT NULL,
    api_url          TEXT NOT NULL,
    app_id           INTEGER,
    app_slug         TEXT,
    installation_id  INTEGER,
    token_sealed     TEXT,   -- GitLab / Gitea access token
    key_sealed       TEXT,   -- GitHub App private key
    secret_sealed    TEXT,   -- GitHub App webhook secret
    hook_id          TEXT NOT NULL UNIQUE,
    created_at       TEXT NOT NULL
);

-- A GitHub App being created from a manifest: the state Mist gave GitHub, until the browser comes back.
CREATE TABLE github_manifests (
    state      TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    url        TEXT NOT NULL,
    hook_id    TEXT NOT NULL,   -- the App's webhook URL is chosen before the App exists
    created_by INTEGER REFERENCES users(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE app_sources (
    app_id          INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    provider_id     INTEGER REFERENCES git_providers(id),
    repo            TEXT,
    token_sealed    TEXT,
    key_sealed      TEXT,    -- the deploy key's private half
    public_key      TEXT,
    known_hosts     TEXT,
    hook_id         TEXT NOT NULL UNIQUE,
    webhook_kind    TEXT,
    secret_sealed   TEXT NOT NULL,
    deploy_on_push  INTEGER NOT NULL DEFAULT 1,
    deploy_tags     INTEGER NOT NULL DEFAULT 0,
    previews        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX app_sources_by_repo ON app_sources (provider_id, repo);

ALTER TABLE apps ADD COLUMN preview_of INTEGER REFERENCES apps(id) ON DELETE CASCADE;
ALTER TABLE apps ADD COLUMN pr_number INTEGER;
ALTER TABLE apps ADD COLUMN pr_head_ref TEXT;
ALTER TABLE apps ADD COLUMN pr_comment_id INTEGER;
CREATE UNIQUE INDEX previews_by_number ON apps (preview_of, pr_number) WHERE preview_of IS NOT NULL;

CREATE TABLE webhook_deliveries (
    id            INTEGER PRIMARY KEY,
    hook_id       TEXT NOT NULL,
    app_id        INTEGER REFERENCES apps(id) ON DELETE CASCADE,
    provider_id   INTEGER REFERENCES git_providers(id) ON DELETE CASCADE,
    delivery_id   TEXT,
    event         TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    reason        TEXT NOT NULL,
    ref           TEXT,
    sha           TEXT,
    pr_number     INTEGER,
    deployment_id INTEGER
);
CREATE INDEX webhook_deliveries_by_app ON webhook_deliveries (app_id, id DESC);
-- A delivery id is taken once per endpoint; a replay is recorded as refused, without the id.
CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries (hook_id, delivery_id, app_id)
    WHERE delivery_id IS NOT NULL;
