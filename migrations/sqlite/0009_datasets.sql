-- Dataset snapshots: frozen lists of approved cases (image and approved mask, each with its
-- SHA-256, and the split), which models are trained and evaluated on. A snapshot is never
-- changed; a new one is a new version of the name.
CREATE TABLE datasets (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    version        BIGINT NOT NULL,
    created_by     TEXT NOT NULL REFERENCES users (id),
    created_at     BIGINT NOT NULL,
    request_json   TEXT NOT NULL,          -- the filter and split asked for
    label_map_json TEXT NOT NULL,          -- {"1": "liver", …}
    UNIQUE (name, version)
);

CREATE TABLE dataset_cases (
    dataset_id   TEXT NOT NULL REFERENCES datasets (id),
    case_id      TEXT NOT NULL REFERENCES cases (id),
    case_name    TEXT NOT NULL,
    image_ref    TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    mask_ref     TEXT NOT NULL,
    mask_sha256  TEXT NOT NULL,
    split        TEXT NOT NULL CHECK (split IN ('train', 'validation', 'test')),
    PRIMARY KEY (dataset_id, case_id)
);

CREATE TRIGGER datasets_no_update BEFORE UPDATE ON datasets
BEGIN SELECT RAISE(ABORT, 'dataset snapshots are never changed; make a new version'); END;
CREATE TRIGGER datasets_no_delete BEFORE DELETE ON datasets
BEGIN SELECT RAISE(ABORT, 'dataset snapshots are never changed; make a new version'); END;
CREATE TRIGGER dataset_cases_no_update BEFORE UPDATE ON dataset_cases
BEGIN SELECT RAISE(ABORT, 'dataset snapshots are never changed; make a new version'); END;
CREATE TRIGGER dataset_cases_no_delete BEFORE DELETE ON dataset_cases
BEGIN SELECT RAISE(ABORT, 'dataset snapshots are never changed; make a new version'); END;
