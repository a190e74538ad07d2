-- The model registry, the orchestrator's job queue, predictions, and cached evaluations.

-- One row per registered model version; the card is the validated JSON as submitted.
CREATE TABLE models (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    version      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('registered', 'shadow', 'production', 'archived')),
    card         TEXT NOT NULL,
    artifact_ref TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    created_by   TEXT NOT NULL REFERENCES users (id),
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (name, version)
);
-- At most one production and one shadow version per model name, whatever the application does.
CREATE UNIQUE INDEX models_one_production ON models (name) WHERE state = 'production';
CREATE UNIQUE INDEX models_one_shadow ON models (name) WHERE state = 'shadow';

-- Durable job queue: one row per (trigger, active model). Workers claim rows with a lease;
-- a lease that runs out (crashed or stopped worker) makes the job claimable again.
CREATE TABLE model_jobs (
    id              TEXT PRIMARY KEY,
    run_id          TEXT NOT NULL,
    case_id         TEXT NOT NULL REFERENCES cases (id),
    model_id        TEXT NOT NULL REFERENCES models (id),
    role            TEXT NOT NULL CHECK (role IN ('production', 'shadow')),
    trigger_kind    TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    max_attempts    BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    worker          TEXT,
    last_error      TEXT,
    output_ref      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX model_jobs_claimable ON model_jobs (status, next_attempt_at);
CREATE INDEX model_jobs_case ON model_jobs (case_id, created_at);
CREATE INDEX model_jobs_run ON model_jobs (run_id);

-- Model outputs: production ones may pre-label a case; shadow ones are never shown to labelers.
CREATE TABLE predictions (
    id         TEXT PRIMARY KEY,
    job_id     TEXT NOT NULL UNIQUE REFERENCES model_jobs (id),
    case_id    TEXT NOT NULL REFERENCES cases (id),
    model_id   TEXT NOT NULL REFERENCES models (id),
    role       TEXT NOT NULL,
    object_ref TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE INDEX predictions_model ON predictions (model_id, case_id);

-- Agreement of a prediction with one human mask version, per label.
CREATE TABLE evaluations (
    prediction_id TEXT NOT NULL REFERENCES predictions (id),
    human_ref     TEXT NOT NULL,
    label_value   BIGINT NOT NULL,
    dice          DOUBLE PRECISION NOT NULL,
    hd95_mm       DOUBLE PRECISION,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (prediction_id, human_ref, label_value)
);
