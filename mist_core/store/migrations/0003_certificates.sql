-- Certificates: ACME accounts (one per directory URL) and one certificate per domain, with its issuance state.
-- Private keys are sealed by SecretBox (bound to `acme-account:<id>` and `cert:<id>:key`). No foreign key to
-- domains: a certificate lives and dies by its domain name, and the domains table belongs to another migration.

CREATE TABLE IF NOT EXISTS acme_accounts (
    id            INTEGER PRIMARY KEY,
    directory_url TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL DEFAULT '',
    key_sealed    TEXT NOT NULL,
    uri           TEXT,
    created_at    TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS certificates (
    id              INTEGER PRIMARY KEY,
    domain          TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'issued', 'renewing', 'failed')),
    source          TEXT NOT NULL DEFAULT 'acme' CHECK (source IN ('acme', 'uploaded')),
    cert_pem        TEXT,
    chain_pem       TEXT,
    key_sealed      TEXT,
    not_before      TEXT,
    not_after       TEXT,
    last_error      TEXT,
    next_attempt_at TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    serial          TEXT,
    updated_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS certificates_by_status ON certificates (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS certificates_by_expiry ON certificates (not_after);
