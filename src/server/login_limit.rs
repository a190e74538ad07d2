//! Failed logins are counted per username and per client address in a fixed window; past the
//! limit (0: no limit), logins for that key are refused with 429 and `Retry-After` until the
//! window ends, so passwords cannot be guessed at speed. The counts live in the database
//! (`login_failures`), so the limit holds across every instance behind a load balancer; the
//! sweeper deletes ended windows.

use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::clock::now_ms;
use super::db::Db;
use super::error::AppError;

#[derive(Clone, Copy, Debug)]
pub struct LoginLimiter {
    window: Duration,
    per_username: u32,
    per_address: u32,
}

impl LoginLimiter {
    pub fn new(window: Duration, per_username: u32, per_address: u32) -> LoginLimiter {
        LoginLimiter { window, per_username, per_address }
    }

    fn window_ms(&self) -> i64 {
        self.window.as_millis() as i64
    }

    /// The limited keys of one attempt, each with its limit. A name is kept as its SHA-256:
    /// anyone may send any name (up to the login body's 16 KiB), and each key is a row.
    fn keys(&self, username: &str, address: Option<IpAddr>) -> Vec<(String, u32)> {
        let mut keys = vec![(format!("user {}", hex::encode(Sha256::digest(username.as_bytes()))), self.per_username)];
        keys.extend(address.map(|a| (format!("address {a}"), self.per_address)));
        keys.retain(|(_, limit)| *limit > 0);
        keys
    }

    /// `Err(TooManyLogins)` while `username` or `address` has used up its failures.
    pub(crate) async fn check(&self, db: &Db, username: &str, address: Option<IpAddr>) -> Result<(), AppError> {
        let now = now_ms();
        let mut wait_ms = 0;
        for (key, limit) in self.keys(username, address) {
            let row: Option<(i64, i64)> =
                sqlx::query_as("SELECT window_start, failures FROM login_failures WHERE key = $1")
                    .bind(&key)
                    .fetch_optional(&db.pool)
                    .await?;
            if let Some((started, failures)) = row {
                let ends = started + self.window_ms();
                if now < ends && failures >= i64::from(limit) {
                    wait_ms = wait_ms.max(ends - now);
                }
            }
        }
        if wait_ms > 0 {
            metrics::counter!("seglab_login_refusals_total").increment(1);
            let retry_after_secs = (wait_ms as u64).div_ceil(1000).max(1);
            return Err(AppError::TooManyLogins { retry_after_secs });
        }
        Ok(())
    }

    /// Counts a failed login against `username` and `address`: one statement per key, so
    /// failures arriving at several instances at once are all counted.
    pub async fn failed(&self, db: &Db, username: &str, address: Option<IpAddr>) -> Result<(), AppError> {
        metrics::counter!("seglab_login_failures_total").increment(1);
        let now = now_ms();
        for (key, _) in self.keys(username, address) {
            sqlx::query(
                "INSERT INTO login_failures (key, window_start, failures) VALUES ($1, $2, 1)
                 ON CONFLICT (key) DO UPDATE SET
                   failures = CASE WHEN login_failures.window_start + $3 <= $2 THEN 1 ELSE login_failures.failures + 1 END,
                   window_start = CASE WHEN login_failures.window_start + $3 <= $2 THEN $2 ELSE login_failures.window_start END",
            )
            .bind(&key)
            .bind(now)
            .bind(self.window_ms())
            .execute(&db.pool)
            .await?;
        }
        Ok(())
    }

    /// Forgets the windows that have ended; returns how many.
    pub async fn purge_ended(&self, db: &Db) -> Result<u64, AppError> {
        let deleted = sqlx::query("DELETE FROM login_failures WHERE window_start + $1 <= $2")
            .bind(self.window_ms())
            .bind(now_ms())
            .execute(&db.pool)
            .await?;
        Ok(deleted.rows_affected())
    }
}
