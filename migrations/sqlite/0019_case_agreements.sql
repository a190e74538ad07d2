-- The agreement between a case's readers (`services::readings`), computed in the background
-- once every reading is submitted, or on the first request for it, and kept: the case page and
-- the agreement across cases read it instead of running STAPLE again. `readings_key` names the
-- reading versions it was computed from, so a figure never outlives its readings.
CREATE TABLE case_agreements (
    case_id        TEXT PRIMARY KEY REFERENCES cases (id),
    readings_key   TEXT NOT NULL,
    agreement_json TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

-- The cases read by several readers, oldest first: where a labeler's next reading to take is
-- looked for, without scanning the cases read by one labeler.
CREATE INDEX cases_read_by_several ON cases (created_at, id) WHERE readings_required > 1;
