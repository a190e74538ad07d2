-- Series imported from the PACS in the background (`services::pacs_imports`): one row per
-- series asked for, worked by whichever instance claims it under a lease, its progress counted
-- as instances arrive, and retried after a growing wait while the PACS cannot be reached.
-- `status`: queued (waiting for its first or next attempt), running, succeeded (`case_id` set)
-- or failed (`error` says why; the PACS refused, or the series is not importable).
CREATE TABLE pacs_imports (
    id                  TEXT PRIMARY KEY,
    study_instance_uid  TEXT NOT NULL,
    series_instance_uid TEXT NOT NULL,
    name                TEXT,
    labels              TEXT NOT NULL,
    requested_by        TEXT NOT NULL REFERENCES users (id),
    status              TEXT NOT NULL,
    instances_total     BIGINT NOT NULL DEFAULT 0,
    instances_done      BIGINT NOT NULL DEFAULT 0,
    attempts            BIGINT NOT NULL DEFAULT 0,
    next_attempt_at     BIGINT NOT NULL,
    claimed_until       BIGINT NOT NULL DEFAULT 0,
    case_id             TEXT REFERENCES cases (id),
    error               TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX pacs_imports_due ON pacs_imports (status, next_attempt_at);
CREATE INDEX pacs_imports_series ON pacs_imports (series_instance_uid, status);
