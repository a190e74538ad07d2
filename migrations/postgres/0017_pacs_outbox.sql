-- Segmentations on their way to the PACS: an approved mask version of a DICOM case, queued on
-- approval (with `--pacs-send-on-approval`) or when a send found the PACS down, and sent by
-- `services::pacs`'s sender, retried with backoff while the PACS cannot be reached. A row is
-- claimed by setting `claimed_until` (a lease), so one instance sends it at a time.
CREATE TABLE pacs_outbox (
    case_id         TEXT NOT NULL REFERENCES cases (id),
    mask_ref        TEXT NOT NULL,
    enqueued_at     BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until   BIGINT NOT NULL DEFAULT 0,
    sent_at         BIGINT,
    last_error      TEXT,
    PRIMARY KEY (case_id, mask_ref)
);
CREATE INDEX pacs_outbox_due ON pacs_outbox (next_attempt_at) WHERE sent_at IS NULL;
