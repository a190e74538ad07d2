-- Which model pre-labelled a case (its first mask version): a human mask that started from a
-- model's own output is flagged when that model is evaluated against it (anchoring bias).
CREATE TABLE prelabels (
    mask_ref   TEXT PRIMARY KEY,
    case_id    TEXT NOT NULL REFERENCES cases (id),
    model_id   TEXT NOT NULL REFERENCES models (id),
    created_at BIGINT NOT NULL
);
CREATE INDEX prelabels_model ON prelabels (model_id, case_id);
