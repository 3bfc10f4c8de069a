//! Calendar expressions: every form, every error, next occurrences across
//! month, year and leap-day boundaries, DST in Europe/Berlin, and a property
//! test against a brute-force minute scan.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use proptest::prelude::*;

use super::{Calendar, CalendarError};

fn cal(expr: &str) -> Calendar {
    Calendar::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn err(expr: &str) -> CalendarError {
    match Calendar::parse(expr) {
        Ok(c) => panic!("{expr} parsed as {c}"),
        Err(e) => e,
    }
}

/// Milliseconds of an RFC 3339 instant.
fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
}

/// An instant as RFC 3339 UTC, for readable assertions.
fn utc(ms: i64) -> String {
    Timestamp::from_millisecond(ms).unwrap().to_string()
}

fn next(expr: &str, after: &str) -> Option<String> {
    cal(expr).next_after(ms(after), &TimeZone::UTC).map(utc)
}

/// The first `n` occurrences after `after`, in UTC.
fn nexts(expr: &str, after: &str, n: usize) -> Vec<String> {
    let c = cal(expr);
    let mut out = Vec::new();
    let mut t = ms(after);
    for _ in 0..n {
        t = c.next_after(t, &TimeZone::UTC).unwrap();
        out.push(utc(t));
    }
    out
}

fn berlin() -> Option<TimeZone> {
    match TimeZone::get("Europe/Berlin") {
        Ok(tz) => Some(tz),
        Err(e) => {
            eprintln!("skipping the DST test: Europe/Berlin does not load here ({e})");
            None
        }
    }
}

// --- parsing and the normalized form ---------------------------------------

#[test]
fn normalized_forms() {
    for (expr, norm) in [
        ("Sun 01:00", "Sun *-*-* 01:00:00"),
        ("Mon..Sat 01:00", "Mon..Sat *-*-* 01:00:00"),
        ("*-*-* 00/4:30", "*-*-* 00/4:30:00"),
        ("*-*-01", "*-*-01 00:00:00"),
        ("*-01,07-01", "*-01,07-01 00:00:00"),
        ("08..18:00", "*-*-* 08..18:00:00"),
        ("12:34:56", "*-*-* 12:34:56"),
        ("2024-02-29 6:5:4", "2024-02-29 06:05:04"),
        ("01-01", "*-01-01 00:00:00"),
        ("mon,wed,FRI 7:00", "Mon,Wed,Fri *-*-* 07:00:00"),
        (
            "Monday..Wednesday,Saturday 7:00",
            "Mon..Wed,Sat *-*-* 07:00:00",
        ),
        ("Sat,Sun", "Sat,Sun *-*-* 00:00:00"),
        ("Mon..Sun 1:00", "*-*-* 01:00:00"),
        ("*:0/15", "*-*-* *:00/15:00"),
        ("*:*/15", "*-*-* *:*/15:00"),
        ("8..17/3:00", "*-*-* 08..17/3:00:00"),
        ("2025..2027/2-*-*", "2025..2027/2-*-* 00:00:00"),
        ("Fri *-*-13", "Fri *-*-13 00:00:00"),
        ("03:30 UTC", "*-*-* 03:30:00 UTC"),
        ("  daily   ", "*-*-* 00:00:00"),
    ] {
        assert_eq!(cal(expr).to_string(), norm, "{expr}");
    }
}

#[test]
fn shorthands() {
    for (short, norm) in [
        ("minutely", "*-*-* *:*:00"),
        ("hourly", "*-*-* *:00:00"),
        ("daily", "*-*-* 00:00:00"),
        ("weekly", "Mon *-*-* 00:00:00"),
        ("monthly", "*-*-01 00:00:00"),
        ("yearly", "*-01-01 00:00:00"),
        ("annually", "*-01-01 00:00:00"),
        ("Daily", "*-*-* 00:00:00"),
    ] {
        assert_eq!(cal(short).to_string(), norm, "{short}");
        assert_eq!(cal(short), cal(norm), "{short}");
    }
    assert_eq!(cal("daily UTC").to_string(), "*-*-* 00:00:00 UTC");
}

#[test]
fn omitted_parts_default_to_every_day_at_midnight() {
    assert_eq!(cal("Mon"), cal("Mon *-*-* 00:00:00"));
    assert_eq!(cal("*-*-*"), cal("daily"));
    assert_eq!(cal("00:00"), cal("daily"));
    assert_eq!(cal("UTC").to_string(), "*-*-* 00:00:00 UTC");
}

#[test]
fn display_parses_back_to_the_same_calendar() {
    for expr in [
        "Sun 01:00",
        "Mon..Fri,Sun *-*-* 00/4:30",
        "*-01,07-01",
        "2024..2030/3-02-29 23:59:59",
        "Tue,Thu 08..18/2:*/20:15",
        "weekly",
        "*:*:*",
    ] {
        let c = cal(expr);
        let again = cal(&c.to_string());
        assert_eq!(c, again, "{expr}");
        assert_eq!(c.to_string(), again.to_string());
    }
}

#[test]
fn zones() {
    assert_eq!(cal("03:30 utc").zone_name(), Some("UTC"));
    assert_eq!(cal("03:30").zone_name(), None);
    if berlin().is_some() {
        let c = cal("Mon 03:30 Europe/Berlin");
        assert_eq!(c.zone_name(), Some("Europe/Berlin"));
        assert_eq!(c.to_string(), "Mon *-*-* 03:30:00 Europe/Berlin");
        assert_eq!(
            cal("weekly Europe/Berlin").zone_name(),
            Some("Europe/Berlin")
        );
        // A zone alone: every day at midnight there.
        assert_eq!(
            cal("Europe/Berlin").to_string(),
            "*-*-* 00:00:00 Europe/Berlin"
        );
    }
}

// --- errors ------------------------------------------------------------------

#[test]
fn error_messages_name_the_token_and_column() {
    for (expr, msg) in [
        (
            "Mon2 01:00",
            "unknown weekday 'Mon2' at column 1 (expected Mon, Tue, Wed, Thu, Fri, Sat or Sun)",
        ),
        ("25:00", "hour 25 out of range 0..23 at column 1"),
        ("12:60", "minute 60 out of range 0..59 at column 4"),
        ("12:00:61", "second 61 out of range 0..59 at column 7"),
        ("*-13-01", "month 13 out of range 1..12 at column 3"),
        ("*-00-01", "month 00 out of range 1..12 at column 3"),
        ("*-*-32", "day 32 out of range 1..31 at column 5"),
        ("1969-*-*", "year 1969 out of range 1970..2199 at column 1"),
        ("2200-*-*", "year 2200 out of range 1970..2199 at column 1"),
        (
            "99999999-*-*",
            "year 99999999 out of range 1970..2199 at column 1",
        ),
        ("08..25:00", "hour 25 out of range 0..23 at column 5"),
        (
            "Mon..Fri 1x:00",
            "hour '1x' at column 10 is not a number \
             (expected *, N, a list N,M, a range N..M or a repetition N/STEP)",
        ),
        (
            "1,,2:00",
            "hour '' at column 3 is not a number \
             (expected *, N, a list N,M, a range N..M or a repetition N/STEP)",
        ),
        (
            "*-*-* 1/x:00",
            "hour 'x' at column 9 is not a number \
             (expected *, N, a list N,M, a range N..M or a repetition N/STEP)",
        ),
        ("18..08:00", "hour range 18..08 at column 1 runs backwards"),
        (
            "Fri..Mon",
            "weekday range Fri..Mon at column 1 runs backwards",
        ),
        (
            "*:0/0",
            "minute step 0 at column 5: a repetition needs a step of at least 1",
        ),
        (
            "Mon,Tuesday,Fu 01:00",
            "unknown weekday 'Fu' at column 13 (expected Mon, Tue, Wed, Thu, Fri, Sat or Sun)",
        ),
        (
            "Mon..Frx",
            "unknown weekday 'Frx' at column 6 (expected Mon, Tue, Wed, Thu, Fri, Sat or Sun)",
        ),
        (
            "01:00 *-*-*",
            "unexpected '*-*-*' at column 7: expected [WEEKDAYS] [YEAR-MONTH-DAY] \
             [HOUR:MINUTE[:SECOND]] [TIMEZONE], in that order",
        ),
        (
            "01:00 02:00",
            "unexpected '02:00' at column 7: expected [WEEKDAYS] [YEAR-MONTH-DAY] \
             [HOUR:MINUTE[:SECOND]] [TIMEZONE], in that order",
        ),
        (
            "*-*-* Mon 01:00",
            "unexpected 'Mon' at column 7: expected [WEEKDAYS] [YEAR-MONTH-DAY] \
             [HOUR:MINUTE[:SECOND]] [TIMEZONE], in that order",
        ),
        (
            "*-*-* Mon",
            "unexpected 'Mon' at column 7: expected [WEEKDAYS] [YEAR-MONTH-DAY] \
             [HOUR:MINUTE[:SECOND]] [TIMEZONE], in that order",
        ),
        (
            "Mon 42",
            "unexpected '42' at column 5: expected [WEEKDAYS] [YEAR-MONTH-DAY] \
             [HOUR:MINUTE[:SECOND]] [TIMEZONE], in that order",
        ),
        (
            "1:2:3:4",
            "unexpected '1:2:3:4' at column 1: a time is HOUR:MINUTE or HOUR:MINUTE:SECOND, \
             e.g. 00/4:30",
        ),
        (
            "1-2-3-4",
            "unexpected '1-2-3-4' at column 1: a date is YEAR-MONTH-DAY (or MONTH-DAY), e.g. *-*-01",
        ),
        (
            "daily 01:00",
            "unexpected '01:00' at column 7: a shorthand (daily, …) can only be followed by a time zone",
        ),
        (
            "daily UTC 01:00",
            "unexpected '01:00' at column 11: a shorthand (daily, …) can only be followed by a time zone",
        ),
        (
            "*,1:00",
            "hour '*' at column 1 is not a number \
             (expected *, N, a list N,M, a range N..M or a repetition N/STEP)",
        ),
    ] {
        assert_eq!(err(expr).to_string(), msg, "{expr}");
    }
}

#[test]
fn error_variants() {
    assert_eq!(err(""), CalendarError::Empty);
    assert_eq!(err(" \t "), CalendarError::Empty);
    assert!(err("").to_string().starts_with("empty calendar expression"));
    assert!(matches!(
        err("Mon 01:00 Mars/Olympus"),
        CalendarError::UnknownZone { ref name, column: 11, .. } if name == "Mars/Olympus"
    ));
    assert!(
        err("01:00 Nowhere")
            .to_string()
            .starts_with("unknown time zone 'Nowhere' at column 7: ")
    );
    // Columns count characters, not bytes.
    assert!(matches!(
        err("Mön 01:00"),
        CalendarError::UnknownWeekday { column: 1, .. }
    ));
    assert!(matches!(
        err("Mon  ä:00"),
        CalendarError::NotANumber { column: 6, .. }
    ));
    assert!(matches!(
        err("Mon 1:00 Europe/Berlin extra"),
        CalendarError::Unexpected { column: 10, .. } | CalendarError::UnknownZone { .. }
    ));
}

// --- next_after in UTC ----------------------------------------------------------

#[test]
fn strictly_after() {
    // An instant that matches exactly is not "after" itself.
    assert_eq!(
        next("daily", "2024-05-01T00:00:00Z").as_deref(),
        Some("2024-05-02T00:00:00Z")
    );
    assert_eq!(
        next("daily", "2024-04-30T23:59:59.999Z").as_deref(),
        Some("2024-05-01T00:00:00Z")
    );
    // Milliseconds past a match: the match is before.
    assert_eq!(
        next("*:*:*", "2024-05-01T10:00:00.500Z").as_deref(),
        Some("2024-05-01T10:00:01Z")
    );
}

#[test]
fn every_form_in_utc() {
    assert_eq!(
        nexts("minutely", "2024-05-01T10:00:30Z", 2),
        ["2024-05-01T10:01:00Z", "2024-05-01T10:02:00Z"]
    );
    assert_eq!(
        nexts("hourly", "2024-05-01T23:30:00Z", 2),
        ["2024-05-02T00:00:00Z", "2024-05-02T01:00:00Z"]
    );
    assert_eq!(
        nexts("weekly", "2024-05-01T10:00:00Z", 2), // a Wednesday
        ["2024-05-06T00:00:00Z", "2024-05-13T00:00:00Z"]
    );
    assert_eq!(
        nexts("monthly", "2024-01-31T10:00:00Z", 3),
        [
            "2024-02-01T00:00:00Z",
            "2024-03-01T00:00:00Z",
            "2024-04-01T00:00:00Z"
        ]
    );
    assert_eq!(
        nexts("yearly", "2024-06-01T00:00:00Z", 2),
        ["2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"]
    );
    assert_eq!(
        nexts("*-*-* 00/4:30", "2024-05-01T21:00:00Z", 4),
        [
            "2024-05-02T00:30:00Z",
            "2024-05-02T04:30:00Z",
            "2024-05-02T08:30:00Z",
            "2024-05-02T12:30:00Z"
        ]
    );
    assert_eq!(
        nexts("08..18:00", "2024-05-01T17:30:00Z", 3),
        [
            "2024-05-01T18:00:00Z",
            "2024-05-02T08:00:00Z",
            "2024-05-02T09:00:00Z"
        ]
    );
    assert_eq!(
        nexts("8..17/3:15", "2024-05-01T12:00:00Z", 3),
        [
            "2024-05-01T14:15:00Z",
            "2024-05-01T17:15:00Z",
            "2024-05-02T08:15:00Z"
        ]
    );
    assert_eq!(
        nexts("*:0/20", "2024-05-01T23:45:00Z", 3),
        [
            "2024-05-02T00:00:00Z",
            "2024-05-02T00:20:00Z",
            "2024-05-02T00:40:00Z"
        ]
    );
    assert_eq!(
        nexts("*:*/25:30", "2024-05-01T10:51:00Z", 3),
        [
            "2024-05-01T11:00:30Z",
            "2024-05-01T11:25:30Z",
            "2024-05-01T11:50:30Z"
        ]
    );
    assert_eq!(
        nexts("1,13:05,35:10", "2024-05-01T12:00:00Z", 4),
        [
            "2024-05-01T13:05:10Z",
            "2024-05-01T13:35:10Z",
            "2024-05-02T01:05:10Z",
            "2024-05-02T01:35:10Z"
        ]
    );
    assert_eq!(
        nexts("*-01,07-01", "2024-03-15T00:00:00Z", 3),
        [
            "2024-07-01T00:00:00Z",
            "2025-01-01T00:00:00Z",
            "2025-07-01T00:00:00Z"
        ]
    );
    assert_eq!(
        nexts("*-*-1/10 06:00", "2024-02-15T00:00:00Z", 4),
        [
            "2024-02-21T06:00:00Z",
            "2024-03-01T06:00:00Z",
            "2024-03-11T06:00:00Z",
            "2024-03-21T06:00:00Z"
        ]
    );
    assert_eq!(
        nexts("2025..2029/2-03-01", "2024-01-01T00:00:00Z", 3),
        [
            "2025-03-01T00:00:00Z",
            "2027-03-01T00:00:00Z",
            "2029-03-01T00:00:00Z"
        ]
    );
    assert_eq!(next("2025-03-01", "2025-03-01T00:00:00Z"), None);
}

#[test]
fn month_and_year_ends() {
    assert_eq!(
        nexts("*-*-31 12:00", "2024-01-31T13:00:00Z", 3),
        [
            "2024-03-31T12:00:00Z",
            "2024-05-31T12:00:00Z",
            "2024-07-31T12:00:00Z"
        ]
    );
    assert_eq!(
        nexts("*-*-30,31 23:59:59", "2024-12-30T23:59:59Z", 3),
        [
            "2024-12-31T23:59:59Z",
            "2025-01-30T23:59:59Z",
            "2025-01-31T23:59:59Z"
        ]
    );
    assert_eq!(
        nexts("*-12-31 23:00", "2023-12-31T23:30:00Z", 1),
        ["2024-12-31T23:00:00Z"]
    );
    assert_eq!(
        next("daily", "2024-12-31T12:00:00Z").as_deref(),
        Some("2025-01-01T00:00:00Z")
    );
}

#[test]
fn leap_days() {
    assert_eq!(
        nexts("*-02-29", "2023-01-01T00:00:00Z", 3),
        [
            "2024-02-29T00:00:00Z",
            "2028-02-29T00:00:00Z",
            "2032-02-29T00:00:00Z"
        ]
    );
    assert_eq!(
        nexts("*-02-28,29 12:00", "2023-02-28T12:00:00Z", 3),
        [
            "2024-02-28T12:00:00Z",
            "2024-02-29T12:00:00Z",
            "2025-02-28T12:00:00Z"
        ]
    );
    // 2100 is not a leap year: the gap is 8 years.
    assert_eq!(
        next("*-02-29", "2096-03-01T00:00:00Z").as_deref(),
        Some("2104-02-29T00:00:00Z")
    );
}

#[test]
fn impossible_dates_give_none_quickly() {
    let start = std::time::Instant::now();
    for expr in ["*-02-30", "*-04-31", "*-02-31 12:00", "Mon 2024-05-01"] {
        assert_eq!(next(expr, "2024-01-01T00:00:00Z"), None, "{expr}");
        assert_eq!(
            cal(expr).last_at_or_before(ms("2024-01-01T00:00:00Z"), &TimeZone::UTC),
            None,
            "{expr}"
        );
    }
    // Past the search horizon.
    assert_eq!(next("2199-01-01", "2024-01-01T00:00:00Z"), None);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn weekdays_and_dates_both_must_match() {
    // Friday the 13th.
    assert_eq!(
        nexts("Fri *-*-13", "2024-01-01T00:00:00Z", 3),
        [
            "2024-09-13T00:00:00Z",
            "2024-12-13T00:00:00Z",
            "2025-06-13T00:00:00Z"
        ]
    );
    // The first Monday of each month.
    assert_eq!(
        nexts("Mon *-*-1..7 02:00", "2024-01-01T03:00:00Z", 3),
        [
            "2024-02-05T02:00:00Z",
            "2024-03-04T02:00:00Z",
            "2024-04-01T02:00:00Z"
        ]
    );
    assert_eq!(
        nexts("Sat,Sun 10:00", "2024-05-03T00:00:00Z", 3),
        [
            "2024-05-04T10:00:00Z",
            "2024-05-05T10:00:00Z",
            "2024-05-11T10:00:00Z"
        ]
    );
    assert_eq!(
        nexts("Mon..Fri 18:30", "2024-05-03T19:00:00Z", 2), // a Friday evening
        ["2024-05-06T18:30:00Z", "2024-05-07T18:30:00Z"]
    );
}

#[test]
fn last_at_or_before_in_utc() {
    let c = cal("*-*-* 00/4:30");
    let tz = TimeZone::UTC;
    assert_eq!(
        c.last_at_or_before(ms("2024-05-02T04:30:00Z"), &tz)
            .map(utc)
            .as_deref(),
        Some("2024-05-02T04:30:00Z")
    );
    assert_eq!(
        c.last_at_or_before(ms("2024-05-02T04:29:59Z"), &tz)
            .map(utc)
            .as_deref(),
        Some("2024-05-02T00:30:00Z")
    );
    assert_eq!(
        c.last_at_or_before(ms("2024-05-02T00:10:00Z"), &tz)
            .map(utc)
            .as_deref(),
        Some("2024-05-01T20:30:00Z")
    );
    assert_eq!(
        cal("*-02-29")
            .last_at_or_before(ms("2028-02-28T00:00:00Z"), &tz)
            .map(utc)
            .as_deref(),
        Some("2024-02-29T00:00:00Z")
    );
    assert_eq!(
        cal("Sun 01:00")
            .last_at_or_before(ms("2024-05-08T12:00:00Z"), &tz)
            .map(utc)
            .as_deref(),
        Some("2024-05-05T01:00:00Z")
    );
}

#[test]
fn own_zone_overrides_the_default() {
    let c = cal("12:00 UTC");
    let other = TimeZone::fixed(jiff::tz::offset(5));
    assert_eq!(
        c.next_after(ms("2024-05-01T00:00:00Z"), &other)
            .map(utc)
            .as_deref(),
        Some("2024-05-01T12:00:00Z")
    );
    // Without a zone, the default applies: noon at +05 is 07:00Z.
    assert_eq!(
        cal("12:00")
            .next_after(ms("2024-05-01T00:00:00Z"), &other)
            .map(utc)
            .as_deref(),
        Some("2024-05-01T07:00:00Z")
    );
}

// --- DST in Europe/Berlin --------------------------------------------------------
// 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00Z).
// 2024-10-27: 03:00 CEST falls back to 02:00 CET (01:00Z); 02:xx happens twice.

fn next_in(c: &Calendar, after: &str, tz: &TimeZone) -> String {
    utc(c.next_after(ms(after), tz).unwrap())
}

#[test]
fn dst_gap_fires_when_the_gap_ends() {
    let Some(tz) = berlin() else { return };
    let c = cal("*-*-* 02:30");
    assert_eq!(
        next_in(&c, "2024-03-30T12:00:00Z", &tz),
        "2024-03-31T01:00:00Z"
    );
    assert_eq!(
        next_in(&c, "2024-03-31T01:00:00Z", &tz),
        "2024-04-01T00:30:00Z"
    );
    // Every quarter hour: the four in the gap fire once, at 03:00 CEST.
    let q = cal("*:0/15");
    let mut t = ms("2024-03-31T00:30:00Z");
    let mut seen = Vec::new();
    for _ in 0..5 {
        t = q.next_after(t, &tz).unwrap();
        seen.push(utc(t));
    }
    assert_eq!(
        seen,
        [
            "2024-03-31T00:45:00Z", // 01:45 CET
            "2024-03-31T01:00:00Z", // 02:00..02:45 (gap) and 03:00 CEST, once
            "2024-03-31T01:15:00Z", // 03:15 CEST
            "2024-03-31T01:30:00Z",
            "2024-03-31T01:45:00Z",
        ]
    );
    assert_eq!(
        c.last_at_or_before(ms("2024-03-31T01:00:00Z"), &tz)
            .map(utc)
            .as_deref(),
        Some("2024-03-31T01:00:00Z")
    );
    assert_eq!(
        c.last_at_or_before(ms("2024-03-31T00:59:59Z"), &tz)
            .map(utc)
            .as_deref(),
        Some("2024-03-30T01:30:00Z")
    );
}

#[test]
fn dst_fold_fires_once_at_the_earlier_instant() {
    let Some(tz) = berlin() else { return };
    let c = cal("*-*-* 02:30");
    assert_eq!(
        next_in(&c, "2024-10-26T12:00:00Z", &tz),
        "2024-10-27T00:30:00Z"
    );
    // Not again at the second 02:30 (01:30Z).
    assert_eq!(
        next_in(&c, "2024-10-27T00:30:00Z", &tz),
        "2024-10-28T01:30:00Z"
    );
    // Asked from inside the second pass of the fold.
    assert_eq!(
        next_in(&c, "2024-10-27T01:10:00Z", &tz),
        "2024-10-28T01:30:00Z"
    );
    assert_eq!(
        c.last_at_or_before(ms("2024-10-27T01:45:00Z"), &tz)
            .map(utc)
            .as_deref(),
        Some("2024-10-27T00:30:00Z")
    );
    // Every quarter hour: the repeated hour's quarters are not repeated.
    let q = cal("*:0/15");
    let mut t = ms("2024-10-27T00:30:00Z");
    let mut seen = Vec::new();
    for _ in 0..4 {
        t = q.next_after(t, &tz).unwrap();
        seen.push(utc(t));
    }
    assert_eq!(
        seen,
        [
            "2024-10-27T00:45:00Z", // 02:45 CEST
            "2024-10-27T02:00:00Z", // 03:00 CET (02:00..02:45 CET skipped)
            "2024-10-27T02:15:00Z",
            "2024-10-27T02:30:00Z",
        ]
    );
    // From inside the second pass, last_at_or_before finds the first pass's
    // quarter that is later in local time.
    assert_eq!(
        q.last_at_or_before(ms("2024-10-27T01:20:00Z"), &tz)
            .map(utc)
            .as_deref(),
        Some("2024-10-27T00:45:00Z")
    );
}

#[test]
fn berlin_daily_is_local_midnight_across_both_changes() {
    let Some(tz) = berlin() else { return };
    let c = cal("daily");
    let mut t = ms("2024-03-29T12:00:00Z");
    let mut seen = Vec::new();
    for _ in 0..3 {
        t = c.next_after(t, &tz).unwrap();
        seen.push(utc(t));
    }
    assert_eq!(
        seen,
        [
            "2024-03-29T23:00:00Z",
            "2024-03-30T23:00:00Z",
            "2024-03-31T22:00:00Z"
        ]
    );
    let named = cal("daily Europe/Berlin");
    assert_eq!(
        named
            .next_after(ms("2024-03-31T12:00:00Z"), &TimeZone::UTC)
            .map(utc)
            .as_deref(),
        Some("2024-03-31T22:00:00Z")
    );
}

// --- property test: against a brute-force minute scan (UTC) -------------------------

/// How one numeric component is generated: the text and, independently of
/// the parser, which values it matches.
#[derive(Debug, Clone)]
enum Gen {
    Any,
    List(Vec<u16>),
    Range(u16, u16),
    Step(u16, u16),
    RangeStep(u16, u16, u16),
}

impl Gen {
    fn render(&self, width: usize) -> String {
        match self {
            Gen::Any => "*".to_string(),
            Gen::List(v) => v
                .iter()
                .map(|x| format!("{x:0width$}"))
                .collect::<Vec<_>>()
                .join(","),
            Gen::Range(a, b) => format!("{a}..{b}"),
            Gen::Step(a, s) => format!("{a}/{s}"),
            Gen::RangeStep(a, b, s) => format!("{a}..{b}/{s}"),
        }
    }

    fn holds(&self, v: u16) -> bool {
        match self {
            Gen::Any => true,
            Gen::List(l) => l.contains(&v),
            Gen::Range(a, b) => *a <= v && v <= *b,
            Gen::Step(a, s) => v >= *a && (v - a).is_multiple_of(*s),
            Gen::RangeStep(a, b, s) => *a <= v && v <= *b && (v - a).is_multiple_of(*s),
        }
    }
}

fn gen_field(min: u16, max: u16) -> impl Strategy<Value = Gen> {
    prop_oneof![
        2 => Just(Gen::Any),
        2 => proptest::collection::vec(min..=max, 1..4).prop_map(Gen::List),
        1 => (min..=max, min..=max).prop_map(|(a, b)| Gen::Range(a.min(b), a.max(b))),
        1 => (min..=max, 1..=max.max(1)).prop_map(|(a, s)| Gen::Step(a, s)),
        1 => (min..=max, min..=max, 1..=max.max(1))
            .prop_map(|(a, b, s)| Gen::RangeStep(a.min(b), a.max(b), s)),
    ]
}

#[derive(Debug, Clone)]
struct Expr {
    weekdays: Option<Vec<bool>>,
    month: Gen,
    day: Gen,
    hour: Gen,
    minute: Gen,
}

impl Expr {
    fn render(&self) -> String {
        const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let mut s = String::new();
        if let Some(w) = &self.weekdays {
            let names: Vec<&str> = (0..7).filter(|&i| w[i]).map(|i| NAMES[i]).collect();
            if !names.is_empty() {
                s.push_str(&names.join(","));
                s.push(' ');
            }
        }
        s.push_str(&format!(
            "*-{}-{} {}:{}",
            self.month.render(2),
            self.day.render(2),
            self.hour.render(2),
            self.minute.render(2)
        ));
        s
    }

    fn holds(&self, dt: DateTime) -> bool {
        let wd = usize::try_from(dt.weekday().to_monday_zero_offset()).unwrap();
        let weekday_ok = match &self.weekdays {
            Some(w) if w.iter().any(|&b| b) => w[wd],
            _ => true,
        };
        let u = |v: i8| u16::try_from(v).unwrap();
        weekday_ok
            && dt.second() == 0
            && dt.subsec_nanosecond() == 0
            && self.month.holds(u(dt.month()))
            && self.day.holds(u(dt.day()))
            && self.hour.holds(u(dt.hour()))
            && self.minute.holds(u(dt.minute()))
    }
}

fn gen_expr() -> impl Strategy<Value = Expr> {
    (
        proptest::option::of(proptest::collection::vec(any::<bool>(), 7)),
        prop_oneof![3 => Just(Gen::Any), 1 => gen_field(1, 12)],
        prop_oneof![3 => Just(Gen::Any), 1 => gen_field(1, 31)],
        gen_field(0, 23),
        gen_field(0, 59),
    )
        .prop_map(|(weekdays, month, day, hour, minute)| Expr {
            weekdays,
            month,
            day,
            hour,
            minute,
        })
}

const MINUTE_MS: i64 = 60_000;
/// How far the brute-force scan looks.
const SCAN_MS: i64 = 3 * 86_400_000;

fn utc_dt(ms: i64) -> DateTime {
    Timestamp::from_millisecond(ms)
        .unwrap()
        .to_zoned(TimeZone::UTC)
        .datetime()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn next_after_matches_a_minute_scan(
        e in gen_expr(),
        // 2024-01-01 .. 2027-01-01
        after in 1_704_067_200_000i64..1_798_761_600_000i64,
    ) {
        let text = e.render();
        let c = Calendar::parse(&text).unwrap();
        let again = Calendar::parse(&c.to_string()).unwrap();
        prop_assert_eq!(&again, &c, "{} -> {}", text, c);

        let got = c.next_after(after, &TimeZone::UTC);
        if let Some(r) = got {
            prop_assert!(r > after, "{text}: {r} <= {after}");
            prop_assert!(e.holds(utc_dt(r)), "{text}: {} does not match", utc(r));
            prop_assert!(c.matches(utc_dt(r)));
            prop_assert_eq!(c.last_at_or_before(r, &TimeZone::UTC), Some(r));
            let before = c.last_at_or_before(r - 1, &TimeZone::UTC);
            prop_assert!(before.is_none_or(|b| b <= after), "{text}: {before:?} in between");
        }
        // No match in (after, min(result, after + 3 days)).
        let end = got.unwrap_or(i64::MAX).min(after + SCAN_MS);
        let mut t = (after / MINUTE_MS + 1) * MINUTE_MS;
        while t < end {
            prop_assert!(!e.holds(utc_dt(t)), "{text}: missed {}", utc(t));
            t += MINUTE_MS;
        }
    }

    #[test]
    fn last_at_or_before_matches_a_minute_scan(
        e in gen_expr(),
        at in 1_704_067_200_000i64..1_798_761_600_000i64,
    ) {
        let text = e.render();
        let c = Calendar::parse(&text).unwrap();
        let got = c.last_at_or_before(at, &TimeZone::UTC);
        if let Some(r) = got {
            prop_assert!(r <= at);
            prop_assert!(e.holds(utc_dt(r)), "{text}: {} does not match", utc(r));
            prop_assert!(c.next_after(r, &TimeZone::UTC).is_none_or(|n| n > at));
        }
        let start = got.unwrap_or(i64::MIN).max(at - SCAN_MS);
        let mut t = at.div_euclid(MINUTE_MS) * MINUTE_MS;
        while t > start {
            prop_assert!(!e.holds(utc_dt(t)), "{text}: missed {}", utc(t));
            t -= MINUTE_MS;
        }
    }

    #[test]
    fn berlin_results_are_later_and_match_or_end_a_gap(
        e in gen_expr(),
        after in 1_704_067_200_000i64..1_798_761_600_000i64,
    ) {
        let Ok(tz) = TimeZone::get("Europe/Berlin") else { return Ok(()) };
        let c = Calendar::parse(&e.render()).unwrap();
        if let Some(r) = c.next_after(after, &tz) {
            prop_assert!(r > after);
            let ts = Timestamp::from_millisecond(r).unwrap();
            let local = ts.to_zoned(tz.clone()).datetime();
            let ends_gap = tz
                .preceding(ts.checked_add(jiff::SignedDuration::from_millis(1)).unwrap())
                .next()
                .is_some_and(|tr| tr.timestamp() == ts);
            prop_assert!(e.holds(local) || ends_gap, "{}: {}", e.render(), local);
        }
    }
}

#[test]
fn the_examples_in_the_documentation_hold() {
    let doc = include_str!("../../../../docs/calendar.md");
    let examples = doc
        .split("## Examples")
        .nth(1)
        .and_then(|s| s.split("## Grammar").next())
        .unwrap();
    let mut checked = 0;
    for line in examples.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let expr = cells[1].trim_matches('`');
        let norm = cells[2].trim_matches('`');
        assert_eq!(cal(expr).to_string(), norm, "{expr}");
        assert_eq!(cal(norm), cal(expr), "{expr}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} examples found");
    // The error samples.
    let errors = doc.split("## Errors").nth(1).unwrap();
    for (expr, shown) in [
        ("Mon2 01:00", "unknown weekday 'Mon2' at column 1"),
        ("25:00", "hour 25 out of range 0..23 at column 1"),
        ("12:1x", "minute '1x' at column 4 is not a number"),
        ("18..08:00", "hour range 18..08 at column 1 runs backwards"),
        ("*:0/0", "minute step 0 at column 5"),
        (
            "Mon 01:00 Europe/Berln",
            "unknown time zone 'Europe/Berln' at column 11",
        ),
        ("01:00 *-*-*", "unexpected '*-*-*' at column 7"),
        ("", "empty calendar expression"),
    ] {
        let msg = err(expr).to_string();
        assert!(msg.starts_with(shown), "{expr}: {msg}");
        let doc_line = errors.lines().find(|l| l.starts_with(shown)).unwrap();
        let doc_line = doc_line.trim_end_matches('…');
        assert!(msg.starts_with(doc_line), "{expr}: {msg} vs {doc_line}");
    }
}
