//! Durations as authored: `500ms`, `30s`, `2m`, `1h30m`, `7d`.
//!
//! Pure parsing; knows nothing about where the duration appears.

use std::time::Duration;

/// Parses a duration like `30s`, `2m`, `1h30m`, `500ms` or `7d`. Bare numbers are refused:
/// `timeout: 30` is ambiguous, so the unit is required.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("`{t}` is not a duration"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{t}` is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            "" => return Err(format!("`{t}` has no unit")),
            other => return Err(format!("`{t}` has an unknown unit `{other}`")),
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Formats a duration the way it would be authored (`1h30m`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let cases = [
            ("30s", 30_000),
            ("2m", 120_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("7d", 604_800_000),
            ("1m30s", 90_000),
        ];
        for (text, ms) in cases {
            let d = parse_duration(text).expect(text);
            assert_eq!(d.as_millis(), ms, "{text}");
            assert_eq!(format_duration(d), text);
        }
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["", "30", "s", "3x", "1.5h", "-1s", "h1"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
