//! Calendar expressions: when a schedule fires.
//!
//! A subset of systemd's `OnCalendar` syntax, specified with its exact
//! grammar in `docs/calendar.md`:
//!
//! ```text
//! [WEEKDAYS] [DATE] [TIME] [TIMEZONE]        e.g. Mon..Fri 01:00, *-*-01 03:30 Europe/Berlin
//! ```
//!
//! plus the shorthands `minutely`, `hourly`, `daily`, `weekly`, `monthly`,
//! `yearly`. [`Calendar::parse`] checks an expression and
//! [`Calendar::next_after`] finds its next occurrence as an instant. Civil
//! time and time zones come from `jiff` (the system's tz database).
//!
//! Daylight saving time: a local time that does not exist (it falls in the
//! spring-forward gap) fires at the instant the gap ends; a local time that
//! occurs twice (the fall-back fold) fires once, at the earlier instant.
//! Searches look at most [`SEARCH_YEARS`] years ahead (or back), so an
//! expression that can never match, such as `*-02-30`, yields `None`.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};

/// How far [`Calendar::next_after`] and [`Calendar::last_at_or_before`]
/// search before giving up.
pub const SEARCH_YEARS: i64 = 10;

/// Days searched: [`SEARCH_YEARS`] years, leap days included, plus one.
const SEARCH_DAYS: i64 = SEARCH_YEARS * 366 + 1;

/// Seconds in a day.
const DAY_SECS: u32 = 86_400;

/// Why a calendar expression was refused. Columns count characters from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// Nothing but blanks.
    #[error("empty calendar expression (e.g. 'daily', 'Mon..Fri 01:00', '*-*-01 03:30')")]
    Empty,

    /// A weekday name that is not one of Mon..Sun.
    #[error(
        "unknown weekday '{token}' at column {column} \
         (expected Mon, Tue, Wed, Thu, Fri, Sat or Sun)"
    )]
    UnknownWeekday {
        /// The name as written.
        token: String,
        /// Where it starts.
        column: usize,
    },

    /// A number outside its component's range.
    #[error("{field} {value} out of range {min}..{max} at column {column}")]
    OutOfRange {
        /// `year`, `month`, `day`, `hour`, `minute` or `second`.
        field: &'static str,
        /// The number as written.
        value: String,
        /// Smallest allowed.
        min: u16,
        /// Largest allowed.
        max: u16,
        /// Where it starts.
        column: usize,
    },

    /// A component value that is not a number.
    #[error(
        "{field} '{token}' at column {column} is not a number \
         (expected *, N, a list N,M, a range N..M or a repetition N/STEP)"
    )]
    NotANumber {
        /// The component.
        field: &'static str,
        /// The text as written.
        token: String,
        /// Where it starts.
        column: usize,
    },

    /// A range whose end comes before its start.
    #[error("{field} range {start}..{end} at column {column} runs backwards")]
    Backwards {
        /// The component (or `weekday`).
        field: &'static str,
        /// Start as written.
        start: String,
        /// End as written.
        end: String,
        /// Where the range starts.
        column: usize,
    },

    /// A repetition with step 0.
    #[error("{field} step 0 at column {column}: a repetition needs a step of at least 1")]
    ZeroStep {
        /// The component.
        field: &'static str,
        /// Where the step starts.
        column: usize,
    },

    /// A time zone name the tz database does not know.
    #[error("unknown time zone '{name}' at column {column}: {reason}")]
    UnknownZone {
        /// The name as written.
        name: String,
        /// Where it starts.
        column: usize,
        /// The tz database's reason.
        reason: String,
    },

    /// A token in a place where it cannot be.
    #[error("unexpected '{token}' at column {column}: {expected}")]
    Unexpected {
        /// The token as written.
        token: String,
        /// Where it starts.
        column: usize,
        /// What could have been there.
        expected: &'static str,
    },
}

/// A component's name, range and printed width.
#[derive(Debug, Clone, Copy)]
struct Spec {
    name: &'static str,
    min: u16,
    max: u16,
    width: usize,
}

const YEAR: Spec = Spec {
    name: "year",
    min: 1970,
    max: 2199,
    width: 4,
};
const MONTH: Spec = Spec {
    name: "month",
    min: 1,
    max: 12,
    width: 2,
};
const DAY: Spec = Spec {
    name: "day",
    min: 1,
    max: 31,
    width: 2,
};
const HOUR: Spec = Spec {
    name: "hour",
    min: 0,
    max: 23,
    width: 2,
};
const MINUTE: Spec = Spec {
    name: "minute",
    min: 0,
    max: 59,
    width: 2,
};
const SECOND: Spec = Spec {
    name: "second",
    min: 0,
    max: 59,
    width: 2,
};

/// One comma-separated item of a component: `*/S`, `N`, `N..M`, `N/S`,
/// `N..M/S`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    /// `None` for `*` (only written with a step).
    start: Option<u16>,
    /// The end of a range.
    end: Option<u16>,
    /// The step of a repetition.
    step: Option<u16>,
}

/// The set of values one component matches, and how it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    min: u16,
    max: u16,
    width: usize,
    /// As written; empty means `*`.
    items: Vec<Item>,
    /// Bit `v - min` is set when `v` matches.
    bits: [u64; 4],
}

impl Field {
    fn new(spec: Spec, items: Vec<Item>) -> Field {
        let mut f = Field {
            min: spec.min,
            max: spec.max,
            width: spec.width,
            items: Vec::new(),
            bits: [0; 4],
        };
        if items.is_empty() {
            for v in spec.min..=spec.max {
                f.set(v);
            }
        }
        for item in &items {
            let from = item.start.unwrap_or(spec.min);
            let to = match (item.end, item.step) {
                (Some(e), _) => e,
                (None, Some(_)) => spec.max,
                (None, None) => from,
            };
            let step = usize::from(item.step.unwrap_or(1).max(1));
            for v in (from..=to).step_by(step) {
                f.set(v);
            }
        }
        f.items = items;
        f
    }

    fn any(spec: Spec) -> Field {
        Field::new(spec, Vec::new())
    }

    fn single(spec: Spec, v: u16) -> Field {
        Field::new(
            spec,
            vec![Item {
                start: Some(v),
                end: None,
                step: None,
            }],
        )
    }

    fn set(&mut self, v: u16) {
        let i = usize::from(v - self.min);
        self.bits[i / 64] |= 1 << (i % 64);
    }

    fn contains(&self, v: i64) -> bool {
        if v < i64::from(self.min) || v > i64::from(self.max) {
            return false;
        }
        let Ok(i) = usize::try_from(v - i64::from(self.min)) else {
            return false;
        };
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// The smallest matching value ≥ `v`.
    fn next_from(&self, v: u32) -> Option<u32> {
        (v.max(u32::from(self.min))..=u32::from(self.max)).find(|&x| self.contains(i64::from(x)))
    }

    /// The largest matching value ≤ `v`.
    fn prev_from(&self, v: u32) -> Option<u32> {
        if v < u32::from(self.min) {
            return None;
        }
        (u32::from(self.min)..=v.min(u32::from(self.max)))
            .rev()
            .find(|&x| self.contains(i64::from(x)))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.items.is_empty() {
            return f.write_str("*");
        }
        let w = self.width;
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match item.start {
                Some(s) => write!(f, "{s:0w$}")?,
                None => f.write_str("*")?,
            }
            if let Some(e) = item.end {
                write!(f, "..{e:0w$}")?;
            }
            if let Some(s) = item.step {
                write!(f, "/{s}")?;
            }
        }
        Ok(())
    }
}

/// A time zone named in an expression.
#[derive(Debug, Clone)]
struct Zone {
    name: String,
    tz: TimeZone,
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name == other.name
    }
}

impl Eq for Zone {}

/// Weekday names, Monday first (bit 0 of the weekday set).
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const FULL_WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const ALL_WEEKDAYS: u8 = 0x7f;

/// A parsed calendar expression. `Display` writes its normalized form
/// (`Mon..Fri *-*-* 01:00:00`), which parses back to an equal calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Bit 0 = Monday … bit 6 = Sunday.
    weekdays: u8,
    year: Field,
    month: Field,
    day: Field,
    hour: Field,
    minute: Field,
    second: Field,
    zone: Option<Zone>,
}

/// The shorthands and what each stands for.
const SHORTHANDS: [(&str, &str); 7] = [
    ("minutely", "*-*-* *:*:00"),
    ("hourly", "*-*-* *:00:00"),
    ("daily", "*-*-* 00:00:00"),
    ("weekly", "Mon *-*-* 00:00:00"),
    ("monthly", "*-*-01 00:00:00"),
    ("yearly", "*-01-01 00:00:00"),
    ("annually", "*-01-01 00:00:00"),
];

/// A whitespace-separated token and the byte offset where it starts.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    at: usize,
}

/// The parser keeps the whole input to turn byte offsets into columns.
struct Parser<'a> {
    input: &'a str,
}

const EXPECT_SHORTHAND: &str = "a shorthand (daily, …) can only be followed by a time zone";
const EXPECT_ORDER: &str =
    "expected [WEEKDAYS] [YEAR-MONTH-DAY] [HOUR:MINUTE[:SECOND]] [TIMEZONE], in that order";
const EXPECT_DATE: &str = "a date is YEAR-MONTH-DAY (or MONTH-DAY), e.g. *-*-01";
const EXPECT_TIME: &str = "a time is HOUR:MINUTE or HOUR:MINUTE:SECOND, e.g. 00/4:30";

impl<'a> Parser<'a> {
    fn column(&self, at: usize) -> usize {
        self.input
            .get(..at)
            .map_or(at, |prefix| prefix.chars().count())
            + 1
    }

    fn unexpected(&self, tok: Token<'_>, expected: &'static str) -> CalendarError {
        CalendarError::Unexpected {
            token: tok.text.to_string(),
            column: self.column(tok.at),
            expected,
        }
    }

    fn tokens(&self) -> Vec<Token<'a>> {
        let mut out = Vec::new();
        let mut start: Option<usize> = None;
        for (i, c) in self.input.char_indices() {
            match (c.is_whitespace(), start) {
                (true, Some(s)) => {
                    out.push(Token {
                        text: &self.input[s..i],
                        at: s,
                    });
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push(Token {
                text: &self.input[s..],
                at: s,
            });
        }
        out
    }

    fn parse(&self) -> Result<Calendar, CalendarError> {
        let tokens = self.tokens();
        let Some(&first) = tokens.first() else {
            return Err(CalendarError::Empty);
        };
        let last = tokens.len() - 1;

        // A shorthand, optionally followed by a zone.
        if let Some((_, expansion)) = SHORTHANDS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(first.text))
        {
            let mut cal = Parser { input: expansion }.parse()?;
            match &tokens[1..] {
                [] => {}
                [zone] if zone.text.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                    cal.zone = Some(self.zone(*zone)?);
                }
                [extra] | [_, extra, ..] => {
                    return Err(self.unexpected(*extra, EXPECT_SHORTHAND));
                }
            }
            return Ok(cal);
        }

        let mut weekdays = None;
        let mut date = None;
        let mut time = None;
        let mut zone = None;
        for (i, &tok) in tokens.iter().enumerate() {
            let lead = tok.text.chars().next().unwrap_or(' ');
            let letter = lead.is_ascii_alphabetic();
            let is_zone = letter
                && i == last
                && (i > 0 || tok.text.contains('/') || tok.text.eq_ignore_ascii_case("UTC"));
            if is_zone {
                match self.zone(tok) {
                    Ok(z) => zone = Some(z),
                    // `*-*-* Mon`: weekdays out of place, not a zone.
                    Err(_) if i > 0 && self.weekdays(tok).is_ok() => {
                        return Err(self.unexpected(tok, EXPECT_ORDER));
                    }
                    Err(e) => return Err(e),
                }
            } else if letter {
                if i > 0 {
                    return Err(self.unexpected(tok, EXPECT_ORDER));
                }
                weekdays = Some(self.weekdays(tok)?);
            } else if tok.text.contains(':') {
                if time.is_some() {
                    return Err(self.unexpected(tok, EXPECT_ORDER));
                }
                time = Some(self.time(tok)?);
            } else if tok.text.contains('-') {
                if date.is_some() || time.is_some() {
                    return Err(self.unexpected(tok, EXPECT_ORDER));
                }
                date = Some(self.date(tok)?);
            } else {
                return Err(self.unexpected(tok, EXPECT_ORDER));
            }
        }
        let (year, month, day) =
            date.unwrap_or_else(|| (Field::any(YEAR), Field::any(MONTH), Field::any(DAY)));
        let (hour, minute, second) = time.unwrap_or_else(|| {
            (
                Field::single(HOUR, 0),
                Field::single(MINUTE, 0),
                Field::single(SECOND, 0),
            )
        });
        Ok(Calendar {
            weekdays: weekdays.unwrap_or(ALL_WEEKDAYS),
            year,
            month,
            day,
            hour,
            minute,
            second,
            zone,
        })
    }

    fn zone(&self, tok: Token<'_>) -> Result<Zone, CalendarError> {
        if tok.text.eq_ignore_ascii_case("UTC") {
            return Ok(Zone {
                name: "UTC".to_string(),
                tz: TimeZone::UTC,
            });
        }
        let tz = TimeZone::get(tok.text).map_err(|e| CalendarError::UnknownZone {
            name: tok.text.to_string(),
            column: self.column(tok.at),
            reason: e.to_string(),
        })?;
        let name = tz.iana_name().unwrap_or(tok.text).to_string();
        Ok(Zone { name, tz })
    }

    fn weekday(&self, text: &str, at: usize) -> Result<u8, CalendarError> {
        let lower = text.to_ascii_lowercase();
        (0u8..7)
            .find(|&i| {
                let i = usize::from(i);
                WEEKDAYS[i].eq_ignore_ascii_case(&lower) || FULL_WEEKDAYS[i] == lower
            })
            .ok_or_else(|| CalendarError::UnknownWeekday {
                token: text.to_string(),
                column: self.column(at),
            })
    }

    fn weekdays(&self, tok: Token<'_>) -> Result<u8, CalendarError> {
        let mut bits = 0u8;
        let mut at = tok.at;
        for part in tok.text.split(',') {
            if let Some((a, b)) = part.split_once("..") {
                let from = self.weekday(a, at)?;
                let to = self.weekday(b, at + a.len() + 2)?;
                if to < from {
                    return Err(CalendarError::Backwards {
                        field: "weekday",
                        start: a.to_string(),
                        end: b.to_string(),
                        column: self.column(at),
                    });
                }
                for d in from..=to {
                    bits |= 1 << d;
                }
            } else {
                bits |= 1 << self.weekday(part, at)?;
            }
            at += part.len() + 1;
        }
        Ok(bits)
    }

    fn date(&self, tok: Token<'_>) -> Result<(Field, Field, Field), CalendarError> {
        let parts: Vec<&str> = tok.text.split('-').collect();
        let offsets = offsets(&parts, tok.at);
        match (parts.as_slice(), offsets.as_slice()) {
            ([y, m, d], [ya, ma, da]) => Ok((
                self.field(YEAR, y, *ya)?,
                self.field(MONTH, m, *ma)?,
                self.field(DAY, d, *da)?,
            )),
            ([m, d], [ma, da]) => Ok((
                Field::any(YEAR),
                self.field(MONTH, m, *ma)?,
                self.field(DAY, d, *da)?,
            )),
            _ => Err(self.unexpected(tok, EXPECT_DATE)),
        }
    }

    fn time(&self, tok: Token<'_>) -> Result<(Field, Field, Field), CalendarError> {
        let parts: Vec<&str> = tok.text.split(':').collect();
        let offsets = offsets(&parts, tok.at);
        match (parts.as_slice(), offsets.as_slice()) {
            ([h, m, s], [ha, ma, sa]) => Ok((
                self.field(HOUR, h, *ha)?,
                self.field(MINUTE, m, *ma)?,
                self.field(SECOND, s, *sa)?,
            )),
            ([h, m], [ha, ma]) => Ok((
                self.field(HOUR, h, *ha)?,
                self.field(MINUTE, m, *ma)?,
                Field::single(SECOND, 0),
            )),
            _ => Err(self.unexpected(tok, EXPECT_TIME)),
        }
    }

    fn number(&self, spec: Spec, text: &str, at: usize) -> Result<u16, CalendarError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CalendarError::NotANumber {
                field: spec.name,
                token: text.to_string(),
                column: self.column(at),
            });
        }
        let out_of_range = || CalendarError::OutOfRange {
            field: spec.name,
            value: text.to_string(),
            min: spec.min,
            max: spec.max,
            column: self.column(at),
        };
        let v: u16 = text.parse().map_err(|_| out_of_range())?;
        if v < spec.min || v > spec.max {
            return Err(out_of_range());
        }
        Ok(v)
    }

    fn step(&self, spec: Spec, text: &str, at: usize) -> Result<u16, CalendarError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CalendarError::NotANumber {
                field: spec.name,
                token: text.to_string(),
                column: self.column(at),
            });
        }
        // A step larger than the range still means "just the start".
        let v: u16 = text.parse().unwrap_or(u16::MAX);
        if v == 0 {
            return Err(CalendarError::ZeroStep {
                field: spec.name,
                column: self.column(at),
            });
        }
        Ok(v)
    }

    fn field(&self, spec: Spec, text: &str, at: usize) -> Result<Field, CalendarError> {
        if text == "*" {
            return Ok(Field::any(spec));
        }
        let mut items = Vec::new();
        let mut item_at = at;
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(self.step(spec, s, item_at + r.len() + 1)?)),
                None => (part, None),
            };
            let item = if range == "*" {
                if step.is_none() {
                    return Err(CalendarError::NotANumber {
                        field: spec.name,
                        token: part.to_string(),
                        column: self.column(item_at),
                    });
                }
                Item {
                    start: None,
                    end: None,
                    step,
                }
            } else if let Some((a, b)) = range.split_once("..") {
                let start = self.number(spec, a, item_at)?;
                let end = self.number(spec, b, item_at + a.len() + 2)?;
                if end < start {
                    return Err(CalendarError::Backwards {
                        field: spec.name,
                        start: a.to_string(),
                        end: b.to_string(),
                        column: self.column(item_at),
                    });
                }
                Item {
                    start: Some(start),
                    end: Some(end),
                    step,
                }
            } else {
                Item {
                    start: Some(self.number(spec, range, item_at)?),
                    end: None,
                    step,
                }
            };
            items.push(item);
            item_at += part.len() + 1;
        }
        Ok(Field::new(spec, items))
    }
}

/// The byte offset of each of `parts` (split on a one-byte separator) in a
/// token that starts at `at`.
fn offsets(parts: &[&str], at: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(parts.len());
    let mut pos = at;
    for p in parts {
        out.push(pos);
        pos += p.len() + 1;
    }
    out
}

/// Splits seconds of the day into hour, minute, second.
fn hms(sod: u32) -> (u32, u32, u32) {
    (sod / 3600, sod / 60 % 60, sod % 60)
}

/// The instant, in ms since the epoch, at which local `date` + `sod` fires
/// in `tz`: a time in a gap fires when the gap ends, a time in a fold at
/// its earlier occurrence.
fn instant(tz: &TimeZone, date: Date, sod: u32) -> Option<i64> {
    let (h, m, s) = hms(sod);
    let time = Time::new(
        i8::try_from(h).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(s).ok()?,
        0,
    )
    .ok()?;
    let dt = DateTime::from_parts(date, time);
    let ts = match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok()?,
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok()?,
        AmbiguousOffset::Gap { before, after } => {
            // `dt` read with the later offset lands before the transition;
            // the transition that follows it is where the gap ends.
            let probe = after.to_timestamp(dt).ok()?;
            match tz.following(probe).next() {
                Some(t) => t.timestamp(),
                None => before.to_timestamp(dt).ok()?,
            }
        }
    };
    Some(ts.as_millisecond())
}

impl Calendar {
    /// Parses an expression (see `docs/calendar.md`). A time zone named in
    /// it must be in the system's tz database.
    pub fn parse(expr: &str) -> Result<Calendar, CalendarError> {
        Parser { input: expr }.parse()
    }

    /// The time zone named in the expression, if any.
    pub fn zone_name(&self) -> Option<&str> {
        self.zone.as_ref().map(|z| z.name.as_str())
    }

    /// The zone the expression is evaluated in: its own, or `default_tz`.
    fn tz<'t>(&'t self, default_tz: &'t TimeZone) -> &'t TimeZone {
        self.zone.as_ref().map_or(default_tz, |z| &z.tz)
    }

    /// Whether the weekday and date components match `date`.
    pub fn matches_date(&self, date: Date) -> bool {
        let weekday = u32::try_from(date.weekday().to_monday_zero_offset()).unwrap_or(7);
        self.weekdays & (1u8.checked_shl(weekday).unwrap_or(0)) != 0
            && self.year.contains(i64::from(date.year()))
            && self.month.contains(i64::from(date.month()))
            && self.day.contains(i64::from(date.day()))
    }

    /// Whether every component matches the local date and time `dt`
    /// (sub-second parts must be zero).
    pub fn matches(&self, dt: DateTime) -> bool {
        dt.subsec_nanosecond() == 0
            && self.matches_date(dt.date())
            && self.hour.contains(i64::from(dt.hour()))
            && self.minute.contains(i64::from(dt.minute()))
            && self.second.contains(i64::from(dt.second()))
    }

    /// The first matching time of day ≥ `from` (seconds of the day).
    fn next_time(&self, from: u32) -> Option<u32> {
        let (fh, fm, fs) = hms(from);
        let mut h = self.hour.next_from(fh)?;
        loop {
            let mut m = self.minute.next_from(if h == fh { fm } else { 0 });
            while let Some(mm) = m {
                let s0 = if h == fh && mm == fm { fs } else { 0 };
                if let Some(s) = self.second.next_from(s0) {
                    return Some(h * 3600 + mm * 60 + s);
                }
                m = self.minute.next_from(mm + 1);
            }
            h = self.hour.next_from(h + 1)?;
        }
    }

    /// The last matching time of day ≤ `from` (seconds of the day).
    fn prev_time(&self, from: u32) -> Option<u32> {
        let (fh, fm, fs) = hms(from);
        let mut h = self.hour.prev_from(fh)?;
        loop {
            let mut m = self.minute.prev_from(if h == fh { fm } else { 59 });
            while let Some(mm) = m {
                let s0 = if h == fh && mm == fm { fs } else { 59 };
                if let Some(s) = self.second.prev_from(s0) {
                    return Some(h * 3600 + mm * 60 + s);
                }
                m = mm.checked_sub(1).and_then(|p| self.minute.prev_from(p));
            }
            h = h.checked_sub(1).and_then(|p| self.hour.prev_from(p))?;
        }
    }

    /// Scans `date` upwards from `from` (seconds of the day) and returns the
    /// last instant that is ≤ `limit_ms`; it stops at the first one past it
    /// (instants grow with local time).
    fn last_upwards(&self, tz: &TimeZone, date: Date, from: u32, limit_ms: i64) -> Option<i64> {
        if !self.matches_date(date) {
            return None;
        }
        let mut best = None;
        let mut t = from;
        while let Some(sod) = self.next_time(t) {
            match instant(tz, date, sod) {
                Some(ms) if ms <= limit_ms => best = Some(ms),
                _ => break,
            }
            t = sod + 1;
            if t >= DAY_SECS {
                break;
            }
        }
        best
    }

    /// The first instant (ms since the Unix epoch) strictly after
    /// `after_ms` at which the expression matches, evaluated in its own
    /// zone or else `default_tz`; `None` if there is none within
    /// [`SEARCH_YEARS`] years.
    pub fn next_after(&self, after_ms: i64, default_tz: &TimeZone) -> Option<i64> {
        let tz = self.tz(default_tz);
        let local = Timestamp::from_millisecond(after_ms)
            .ok()?
            .to_zoned(tz.clone())
            .datetime();
        // Instants never decrease as local time grows (gaps fire at their
        // end, folds at their first pass), so nothing before the local date
        // of `after_ms` can be later than it.
        let mut date = local.date();
        let mut from = time_sod(local.time());
        for _ in 0..SEARCH_DAYS {
            if self.matches_date(date) {
                let mut t = from;
                while let Some(sod) = self.next_time(t) {
                    if let Some(ms) = instant(tz, date, sod)
                        && ms > after_ms
                    {
                        return Some(ms);
                    }
                    t = sod + 1;
                    if t >= DAY_SECS {
                        break;
                    }
                }
            }
            from = 0;
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The last instant (ms since the Unix epoch) at or before `at_ms` at
    /// which the expression matches; `None` if there is none within
    /// [`SEARCH_YEARS`] years. With [`Calendar::next_after`], the latest
    /// missed occurrence for a catch-up.
    pub fn last_at_or_before(&self, at_ms: i64, default_tz: &TimeZone) -> Option<i64> {
        let tz = self.tz(default_tz);
        let local = Timestamp::from_millisecond(at_ms)
            .ok()?
            .to_zoned(tz.clone())
            .datetime();
        let today = local.date();
        let now_sod = time_sod(local.time());
        // A fold can map local times later than `local` (even just after
        // midnight) to instants before `at_ms`: scan those upwards first.
        if let Ok(tomorrow) = today.tomorrow()
            && let Some(ms) = self.last_upwards(tz, tomorrow, 0, at_ms)
        {
            return Some(ms);
        }
        if now_sod + 1 < DAY_SECS
            && let Some(ms) = self.last_upwards(tz, today, now_sod + 1, at_ms)
        {
            return Some(ms);
        }
        let mut date = today;
        let mut from = now_sod;
        for _ in 0..SEARCH_DAYS {
            if self.matches_date(date) {
                let mut t = Some(from);
                while let Some(sod) = t.and_then(|t| self.prev_time(t)) {
                    if let Some(ms) = instant(tz, date, sod)
                        && ms <= at_ms
                    {
                        return Some(ms);
                    }
                    t = sod.checked_sub(1);
                }
            }
            from = DAY_SECS - 1;
            date = date.yesterday().ok()?;
        }
        None
    }
}

/// Seconds of the day of `t` (sub-seconds dropped).
fn time_sod(t: Time) -> u32 {
    let h = u32::try_from(t.hour()).unwrap_or(0);
    let m = u32::try_from(t.minute()).unwrap_or(0);
    let s = u32::try_from(t.second()).unwrap_or(0);
    h * 3600 + m * 60 + s
}

impl std::str::FromStr for Calendar {
    type Err = CalendarError;
    fn from_str(s: &str) -> Result<Calendar, CalendarError> {
        Calendar::parse(s)
    }
}

impl fmt::Display for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weekdays != ALL_WEEKDAYS {
            let mut first = true;
            let mut d = 0usize;
            while d < 7 {
                if self.weekdays & (1 << d) == 0 {
                    d += 1;
                    continue;
                }
                let mut end = d;
                while end + 1 < 7 && self.weekdays & (1 << (end + 1)) != 0 {
                    end += 1;
                }
                if !first {
                    f.write_str(",")?;
                }
                first = false;
                if end - d >= 2 {
                    write!(f, "{}..{}", WEEKDAYS[d], WEEKDAYS[end])?;
                } else if end > d {
                    write!(f, "{},{}", WEEKDAYS[d], WEEKDAYS[end])?;
                } else {
                    f.write_str(WEEKDAYS[d])?;
                }
                d = end + 1;
            }
            f.write_str(" ")?;
        }
        write!(
            f,
            "{}-{}-{} {}:{}:{}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if let Some(z) = &self.zone {
            write!(f, " {}", z.name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
