//! UTC calendar arithmetic for request signing and API timestamps: `SystemTime` to the
//! `YYYYMMDDTHHMMSSZ` form SigV4 signs, to RFC 3339, and RFC 3339 back to seconds.
//!
//! Pure and dependency-free (Howard Hinnant's days-from-civil algorithms); knows nothing about
//! HTTP or AWS services.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC instant broken into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Seconds since the Unix epoch (negative before 1970).
    pub unix: i64,
    /// Calendar year.
    pub year: i64,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    /// 0–23.
    pub hour: u32,
    /// 0–59.
    pub minute: u32,
    /// 0–59.
    pub second: u32,
}

impl UtcTime {
    /// The calendar fields of `time` (sub-second precision is dropped).
    pub fn from_system(time: SystemTime) -> Self {
        let unix = match time.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(0),
        };
        Self::from_unix(unix)
    }

    /// The calendar fields of `unix` seconds.
    pub fn from_unix(unix: i64) -> Self {
        let days = unix.div_euclid(86_400);
        let secs = unix.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Self {
            unix,
            year,
            month,
            day,
            hour: (secs / 3600) as u32,
            minute: (secs % 3600 / 60) as u32,
            second: (secs % 60) as u32,
        }
    }

    /// `20150830T123600Z`: SigV4's `X-Amz-Date`.
    pub fn amz_date(&self) -> String {
        format!(
            "{}T{:02}{:02}{:02}Z",
            self.date_stamp(),
            self.hour,
            self.minute,
            self.second
        )
    }

    /// `20150830`: the date of SigV4's credential scope.
    pub fn date_stamp(&self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }

    /// `2015-08-30T12:36:00Z`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// `time` as `2015-08-30T12:36:00Z`.
pub fn rfc3339(time: SystemTime) -> String {
    UtcTime::from_system(time).rfc3339()
}

/// The instant `unix` seconds after the epoch.
pub fn system_time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs()),
    }
}

/// Seconds since the epoch of an RFC 3339 timestamp such as `2026-12-01T10:00:00Z`,
/// `2026-12-01T10:00:00.000Z` or `2026-12-01T11:00:00+01:00`; `None` when it is not one.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    let (clock, offset_secs) = if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else {
        let split = rest.rfind(['+', '-'])?;
        let (clock, offset) = rest.split_at(split);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (h, m) = offset[1..].split_once(':')?;
        let h: i64 = h.parse().ok()?;
        let m: i64 = m.parse().ok()?;
        (clock, sign * (h * 3600 + m * 60))
    };
    let clock = clock.split('.').next()?;
    let mut clock_parts = clock.splitn(3, ':');
    let hour: i64 = clock_parts.next()?.parse().ok()?;
    let minute: i64 = clock_parts.next()?.parse().ok()?;
    let second: i64 = clock_parts.next()?.parse().ok()?;
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..=60).contains(&second);
    if !valid {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_signing_dates() {
        // 2015-08-30T12:36:00Z, the instant of AWS's SigV4 test suite.
        let t = UtcTime::from_unix(1_440_938_160);
        assert_eq!(t.amz_date(), "20150830T123600Z");
        assert_eq!(t.date_stamp(), "20150830");
        assert_eq!(t.rfc3339(), "2015-08-30T12:36:00Z");
        assert_eq!(UtcTime::from_unix(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            UtcTime::from_unix(951_782_400).rfc3339(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(rfc3339(system_time(-86_400)), "1969-12-31T00:00:00Z");
    }

    #[test]
    fn parses_rfc3339_forms() {
        for (text, unix) in [
            ("2015-08-30T12:36:00Z", Some(1_440_938_160)),
            ("2015-08-30T12:36:00.000Z", Some(1_440_938_160)),
            ("2015-08-30T14:36:00+02:00", Some(1_440_938_160)),
            ("2015-08-30T10:06:00-02:30", Some(1_440_938_160)),
            ("2000-02-29T00:00:00Z", Some(951_782_400)),
            ("2015-13-30T12:36:00Z", None),
            ("2015-08-30", None),
            ("yesterday", None),
        ] {
            assert_eq!(parse_rfc3339(text), unix, "{text}");
        }
    }

    #[test]
    fn round_trips_every_day_of_four_centuries() {
        let mut day = -146_097 * 2;
        while day < 146_097 * 2 {
            let t = UtcTime::from_unix(day * 86_400 + 3_723);
            assert_eq!(parse_rfc3339(&t.rfc3339()), Some(t.unix));
            day += 97;
        }
    }
}
