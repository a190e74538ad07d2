-- Volumes are also stored in slabs of whole k-slices, each its own object (`slabs`), listed in
-- order by their volume's row (`slabs_json`: grid, header, slab ids). A label save writes only
-- the slabs its edits touch and shares the others with the version it replaces; such a
-- version's `.nii.gz` is written when first asked for (`file_stored` 0 until then, and its
-- size and SHA-256 recorded then).
ALTER TABLE objects ADD COLUMN slabs_json TEXT NOT NULL DEFAULT '';
ALTER TABLE objects ADD COLUMN file_stored BIGINT NOT NULL DEFAULT 1;
CREATE TABLE slabs (
    object_ref TEXT PRIMARY KEY,
    case_id    TEXT NOT NULL REFERENCES cases (id),
    size_bytes BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX slabs_case ON slabs (case_id, created_at);
