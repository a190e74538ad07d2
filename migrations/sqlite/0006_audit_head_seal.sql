-- With an audit key configured, every append also stores an HMAC of the chain's head: someone
-- who can rewrite the database but lacks the key cannot make a rewritten chain verify.
ALTER TABLE audit_head ADD COLUMN mac TEXT;
