-- Single sign-on (`services::sso`). A user who signs on through the OpenID Connect provider
-- is known by the provider's issuer and subject, never by a name the provider could reuse.
ALTER TABLE users ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX users_oidc_subject ON users (oidc_subject);

-- Login attempts between the redirect to the provider and its answer, on whichever instance
-- the answer arrives: found by the digest of their `state`, deleted when used (once) or by
-- the sweeper when abandoned.
CREATE TABLE oidc_logins (
    state_sha256  TEXT PRIMARY KEY,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
