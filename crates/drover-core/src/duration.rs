//! Durations and sizes as people write them in plans: `500ms`, `1s`, `10m`, `1MiB`.

use std::time::Duration;

/// The longest duration a plan or flag may give: ten years. Longer than any interval,
/// timeout, schedule or retention anyone means, and far enough from every limit the
/// durations later meet (milliseconds in a u64, `Instant` arithmetic, a report's three
/// rounds, a DNS TTL in an i32) that nothing built from a parsed duration can overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Parses `250ms`, `5s`, `10m`, `2h`, `1m30s`. A bare number is refused: units are required.
/// Anything longer than [`MAX_DURATION`] is refused, not wrapped or saturated.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; write e.g. 500ms, 5s, 10m".into());
    }
    let too_long = || format!("'{text}' is too long: at most {} (10 years)", format_duration(MAX_DURATION));
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("'{text}' is not a duration; write e.g. 500ms, 5s, 10m"));
        }
        let number = &rest[..digits];
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => return Err(format!("'{text}' has no unit; write e.g. {number}s or {number}ms")),
            other => return Err(format!("'{text}' has unknown unit '{other}'; use ms, s, m or h")),
        };
        // Every step checked: `18446744073709551615s1s` is an error, not a wrap or a panic.
        total_ms = number
            .parse::<u64>()
            .ok()
            .and_then(|value| value.checked_mul(unit_ms))
            .and_then(|part| total_ms.checked_add(part))
            .filter(|&ms| ms <= MAX_DURATION.as_millis() as u64)
            .ok_or_else(too_long)?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Renders a duration the way plans write them (`1.5s`, `250ms`, `10m`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".into()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Parses `0`, `512KiB`, `1MiB`, `16MB`, `1024` (bytes).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    if digits == 0 {
        return Err(format!("'{text}' is not a size; write e.g. 0, 512KiB, 1MiB"));
    }
    let value: u64 = text[..digits].parse().map_err(|_| format!("'{text}' is too large"))?;
    let factor: u64 = match text[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("'{text}' has unknown unit '{other}'; use B, KiB, MiB, GiB")),
    };
    value.checked_mul(factor).ok_or_else(|| format!("'{text}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_people_write() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("fast").is_err());
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
    }

    /// Each of these once panicked (debug) or wrapped to a short duration (release).
    #[test]
    fn durations_too_long_are_refused_not_wrapped() {
        for text in ["18446744073709551615s1s", "5124095576030432h", "99999999999999999999ms", "87600h1ms", "87601h"] {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains("too long: at most 87600h"), "{text}: {error}");
        }
        assert_eq!(parse_duration("87600h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("0h0m0s0ms"), Ok(Duration::ZERO));
    }

    proptest::proptest! {
        /// Whatever is written, the reader answers a duration no longer than the bound, or an error.
        #[test]
        fn any_text_is_a_bounded_duration_or_an_error(text in "([0-9]{0,21}(ms|s|m|h|x|)){0,4}") {
            if let Ok(d) = parse_duration(&text) {
                proptest::prop_assert!(d <= MAX_DURATION);
            }
        }
    }

    #[test]
    fn sizes_people_write() {
        assert_eq!(parse_bytes("1MiB"), Ok(1 << 20));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("18446744073709551615KiB").unwrap_err().contains("too large"));
        assert!(parse_bytes("99999999999999999999").unwrap_err().contains("too large"));
    }
}
