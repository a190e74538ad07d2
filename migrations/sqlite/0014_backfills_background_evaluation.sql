-- Backfills: "evaluate this version on every labelled case", one job per case. Their jobs wait
-- behind those of imports and people (priority 1 against 0); cancelling one deletes its jobs
-- still queued and counts them here.
CREATE TABLE backfills (
    id             TEXT PRIMARY KEY,
    model_id       TEXT NOT NULL REFERENCES models (id),
    created_by     TEXT NOT NULL REFERENCES users (id),
    total          BIGINT NOT NULL,
    cancelled_jobs BIGINT NOT NULL DEFAULT 0,
    cancelled_at   BIGINT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX backfills_model ON backfills (model_id, created_at);
ALTER TABLE model_jobs ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
ALTER TABLE model_jobs ADD COLUMN backfill_id TEXT REFERENCES backfills (id);
CREATE INDEX model_jobs_queue ON model_jobs (status, priority, next_attempt_at);
CREATE INDEX model_jobs_backfill ON model_jobs (backfill_id, status);

-- Evaluations are computed in the background. An instance computing one holds its claim, so
-- one instance at a time computes each (prediction, human mask); a claim whose lease ran out
-- (a crashed instance) may be taken over.
CREATE TABLE evaluation_claims (
    prediction_id TEXT NOT NULL REFERENCES predictions (id),
    human_ref     TEXT NOT NULL,
    worker        TEXT NOT NULL,
    lease_until   BIGINT NOT NULL,
    PRIMARY KEY (prediction_id, human_ref)
);
