-- Failed logins per key (`user SHA256-OF-NAME` or `address IP`) in the current window
-- (`server::login_limit`), shared by every instance so a limit holds however requests are
-- spread. Rows whose window ended are deleted by the sweeper.
CREATE TABLE login_failures (
    key          TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    failures     BIGINT NOT NULL
);
