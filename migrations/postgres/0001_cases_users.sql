-- Users, API tokens, cases and the objects (image, mask versions) stored for them.
-- Portable types only (TEXT, BIGINT, DOUBLE PRECISION): the same queries run on SQLite.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    roles         TEXT NOT NULL,          -- comma-separated: labeler,ml_engineer,admin
    password_hash TEXT,
    created_at    BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    token_sha256 TEXT PRIMARY KEY,        -- only the hash is kept
    user_id      TEXT NOT NULL REFERENCES users (id),
    created_at   BIGINT NOT NULL
);

CREATE TABLE cases (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    labels_json   TEXT NOT NULL,          -- [{value, name, color}]
    image_ref     TEXT NOT NULL,
    head_mask_ref TEXT NOT NULL,          -- the current mask version
    created_at    BIGINT NOT NULL
);

-- Every object written for a case; keys are never reused, so rows are never updated.
CREATE TABLE objects (
    object_ref  TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL REFERENCES cases (id),
    kind        TEXT NOT NULL CHECK (kind IN ('image', 'mask')),
    size_bytes  BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    dim_i       BIGINT NOT NULL,
    dim_j       BIGINT NOT NULL,
    dim_k       BIGINT NOT NULL,
    voxel_type  TEXT NOT NULL,
    spacing_i   DOUBLE PRECISION NOT NULL,
    spacing_j   DOUBLE PRECISION NOT NULL,
    spacing_k   DOUBLE PRECISION NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX objects_case ON objects (case_id, created_at);
