//! The server's one notion of time: milliseconds since the Unix epoch, stored this way on
//! both databases.

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
