//! The API server's clock as this process estimates it from a response's
//! `Date` header (see "Clocks" in the module comment of [`super`]).

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The API server's clock, as this process estimates it: the local clock
/// plus the offset measured from a response's `Date` header.
#[derive(Debug, Clone, Copy)]
pub(super) struct ServerClock {
    offset: SignedDuration,
}

impl ServerClock {
    /// From a `Date` header (`Sun, 29 Nov 2026 11:03:08 GMT`) received at
    /// local time `local`. The header is truncated to the second, so the
    /// server's time lies in the second after it: take its middle.
    pub(super) fn from_date_header(date: Option<&str>, local: Timestamp) -> ServerClock {
        static PARSER: k8s_openapi::jiff::fmt::rfc2822::DateTimeParser =
            k8s_openapi::jiff::fmt::rfc2822::DateTimeParser::new();
        let offset = date
            .and_then(|d| PARSER.parse_timestamp(d).ok())
            .map(|server| plus(server, Duration::from_millis(500)).duration_since(local))
            .unwrap_or(SignedDuration::ZERO);
        ServerClock { offset }
    }

    pub(super) fn now(self) -> Timestamp {
        let local = Timestamp::now();
        local.checked_add(self.offset).unwrap_or(local)
    }
}

/// `time` plus `duration`, saturating at the end of time.
pub(super) fn plus(time: Timestamp, duration: Duration) -> Timestamp {
    time.checked_add(duration).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_clock_from_the_date_header() {
        let local: Timestamp = "2026-11-29T11:03:00Z".parse().unwrap();
        let clock = ServerClock::from_date_header(Some("Sun, 29 Nov 2026 11:03:08 GMT"), local);
        assert_eq!(clock.offset, SignedDuration::from_millis(8_500));
        let missing = ServerClock::from_date_header(None, local);
        assert_eq!(missing.offset, SignedDuration::ZERO);
        let garbage = ServerClock::from_date_header(Some("yesterday"), local);
        assert_eq!(garbage.offset, SignedDuration::ZERO);
    }
}
