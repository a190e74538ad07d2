//! Values written for people, alike on the server and in the browser: times.

/// `YYYY-MM-DD HH:MM UTC` from milliseconds since the Unix epoch. Pure arithmetic, so the
/// server's rendering and the browser's hydration print the same text.
pub fn format_time(ms: i64) -> String {
    let UtcTime { year, month, day, ms_of_day } = UtcTime::of(ms);
    let minutes = ms_of_day / 60_000;
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", minutes / 60, minutes % 60)
}

/// A time in milliseconds since the Unix epoch as its UTC calendar day.
pub struct UtcTime {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub ms_of_day: i64,
}

impl UtcTime {
    pub fn of(ms: i64) -> UtcTime {
        let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        UtcTime { year, month, day, ms_of_day }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::format_time(1_795_787_700_000), "2026-11-27 13:55 UTC");
        assert_eq!(super::format_time(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
