-- Domains: the names an app answers to, with the per-domain proxy options (HTTPS, HSTS, www redirect,
-- path prefix, custom response headers, security headers).

CREATE TABLE domains (
    id               INTEGER PRIMARY KEY,
    app_id           INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name             TEXT NOT NULL UNIQUE,
    https            INTEGER NOT NULL DEFAULT 1,
    hsts_max_age     INTEGER NOT NULL DEFAULT 0,
    www_redirect     TEXT NOT NULL DEFAULT '' CHECK (www_redirect IN ('', 'to-apex', 'to-www')),
    path_prefix      TEXT NOT NULL DEFAULT '',
    headers          TEXT NOT NULL DEFAULT '{}',
    security_headers INTEGER NOT NULL DEFAULT 1,
    created_at       TEXT NOT NULL
);
CREATE INDEX domains_by_app ON domains (app_id, name);
