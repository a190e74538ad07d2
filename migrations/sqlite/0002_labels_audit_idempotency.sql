-- Label saves, the tamper-evident audit log, and stored idempotent responses.

-- One row per saved mask version: who changed which case from which version to which.
CREATE TABLE labels (
    id             TEXT PRIMARY KEY,
    case_id        TEXT NOT NULL REFERENCES cases (id),
    user_id        TEXT NOT NULL REFERENCES users (id),
    old_mask_ref   TEXT NOT NULL,
    new_mask_ref   TEXT NOT NULL UNIQUE,
    voxels_changed BIGINT NOT NULL,
    runs           BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX labels_case ON labels (case_id, created_at);

-- Append-only; each row's hash covers its content and the previous row's hash.
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    action    TEXT NOT NULL,
    user_id   TEXT,
    case_id   TEXT,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- The chain's head; updating this one row serialises audit writers.
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Idempotency-Key handling: one row per (user, key); kept at least 24 hours.
CREATE TABLE idempotency_keys (
    user_id         TEXT NOT NULL,
    idem_key        TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,         -- SHA-256 of the request
    state           TEXT NOT NULL CHECK (state IN ('running', 'done')),
    response_status BIGINT,
    response_body   TEXT,
    created_at      BIGINT NOT NULL,
    locked_at       BIGINT NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
