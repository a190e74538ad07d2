-- Access that can be taken back: a disabled user's sessions and tokens stop working at once,
-- and tokens can be revoked or issued with an expiry.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN revoked_at BIGINT;
