//! Times as people read them.

/// A unix time as RFC 3339 (UTC, whole seconds); the number itself if it is out of range.
pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(
        || unix.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}
