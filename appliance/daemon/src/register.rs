//! The asset register as operators keep it: a CSV import, and the checks
//! every asset and profile passes before the catalog stores it.
//!
//! The CSV has a header row naming its columns, in any order and any case:
//! `name`, `owner`, `criticality`, `sources`, `rpo`, `rto` are required,
//! `profile` and `excludes` optional. Several sources or excludes go in one
//! field separated by `;`. Durations are written `90s`, `15m`, `4h`, `1d`,
//! `2w`, `1h30m`. Lines starting with `#` and rows with every field empty
//! are skipped. `docs/examples/asset-register.csv` is a sample.

use std::collections::HashMap;
use std::path::Path;

use coffer_types::ParseError;
use coffer_types::api::{Asset, Criticality, Duration, Profile};

use crate::calendar::Calendar;
use crate::plan::LEVELS_BY_STRENGTH;

/// Columns every register must have.
pub const REQUIRED_COLUMNS: [&str; 6] = ["name", "owner", "criticality", "sources", "rpo", "rto"];

/// Columns a register may have.
pub const OPTIONAL_COLUMNS: [&str; 2] = ["profile", "excludes"];

/// The longest asset or profile name.
pub const MAX_NAME_LEN: usize = 64;

/// Why a CSV register was refused. Lines count from 1, the header included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The text is empty (or only comments).
    #[error(
        "the CSV has no header row (expected the columns name, owner, criticality, sources, \
         rpo, rto and optionally profile, excludes)"
    )]
    NoHeader,

    /// The text is not well-formed CSV (unequal field counts, bad UTF-8).
    #[error("line {line}: cannot read the CSV: {reason}")]
    Csv {
        /// Where.
        line: u64,
        /// The CSV reader's reason.
        reason: String,
    },

    /// A required column is absent from the header.
    #[error(
        "line {line}: the header has no '{column}' column \
         (required: name, owner, criticality, sources, rpo, rto)"
    )]
    MissingColumn {
        /// The header's line.
        line: u64,
        /// The column.
        column: &'static str,
    },

    /// The header names a column this importer does not know (a typo would
    /// otherwise lose data silently).
    #[error(
        "line {line}: unknown column '{column}' \
         (known: name, owner, criticality, sources, rpo, rto, profile, excludes)"
    )]
    UnknownColumn {
        /// The header's line.
        line: u64,
        /// The column as written.
        column: String,
    },

    /// The header names a column twice.
    #[error("line {line}: the header names column '{column}' twice")]
    DuplicateColumn {
        /// The header's line.
        line: u64,
        /// The column.
        column: String,
    },

    /// A field's value is wrong.
    #[error("line {line}, column {column}: {problem}")]
    Field {
        /// The row's line.
        line: u64,
        /// The column.
        column: &'static str,
        /// What is wrong with it.
        problem: String,
    },

    /// Two rows name the same asset.
    #[error("line {line}: asset '{name}' is already on line {first_line}")]
    DuplicateName {
        /// The second row's line.
        line: u64,
        /// The name.
        name: String,
        /// The first row's line.
        first_line: u64,
    },
}

/// Why an asset or a profile is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} '{name}': {field}: {problem}")]
pub struct Invalid {
    /// `asset` or `profile`.
    pub what: &'static str,
    /// Its name, as given.
    pub name: String,
    /// The field at fault (for an asset, also its CSV column).
    pub field: &'static str,
    /// What is wrong.
    pub problem: String,
}

/// The problem with a name, if any: 1 to [`MAX_NAME_LEN`] characters from
/// `[A-Za-z0-9._-]`, not starting with `-` (it would read as an option)
/// or `.` (hidden files, `.` and `..`).
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".to_string());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Some(format!("is longer than {MAX_NAME_LEN} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "'{c}' is not allowed (letters, digits, '.', '_' and '-' only)"
        ));
    }
    if name.starts_with(['-', '.']) {
        return Some("may not start with '-' or '.'".to_string());
    }
    None
}

/// Checks an asset before it enters the register: its name (see
/// [`MAX_NAME_LEN`]; letters, digits, `.`, `_`, `-`), an owner, at least one
/// source and every source an absolute path, no empty exclude, an RPO and an
/// RTO longer than zero.
pub fn validate_asset(asset: &Asset) -> Result<(), Invalid> {
    let invalid = |field, problem: String| Invalid {
        what: "asset",
        name: asset.name.clone(),
        field,
        problem,
    };
    if let Some(p) = name_problem(&asset.name) {
        return Err(invalid("name", p));
    }
    if asset.owner.trim().is_empty() {
        return Err(invalid(
            "owner",
            "is empty: every asset needs someone accountable for it".to_string(),
        ));
    }
    if asset.owner.chars().any(char::is_control) {
        return Err(invalid("owner", "holds a control character".to_string()));
    }
    if asset.sources.is_empty() {
        return Err(invalid(
            "sources",
            "none given: at least one absolute path".to_string(),
        ));
    }
    for s in &asset.sources {
        if s.contains('\0') || !Path::new(s).is_absolute() {
            return Err(invalid(
                "sources",
                format!("'{s}' is not an absolute path (it must start with '/')"),
            ));
        }
    }
    if asset.excludes.iter().any(|e| e.trim().is_empty()) {
        return Err(invalid("excludes", "holds an empty pattern".to_string()));
    }
    if asset.rpo.secs() == 0 {
        return Err(invalid("rpo", "must be longer than 0s".to_string()));
    }
    if asset.rto.secs() == 0 {
        return Err(invalid("rto", "must be longer than 0s".to_string()));
    }
    Ok(())
}

/// Checks a profile before it is stored: its name (as for assets), at least
/// one schedule, every schedule a valid calendar expression, a target, and
/// a backoff longer than zero when it retries.
pub fn validate_profile(profile: &Profile) -> Result<(), Invalid> {
    let invalid = |field, problem: String| Invalid {
        what: "profile",
        name: profile.name.clone(),
        field,
        problem,
    };
    if let Some(p) = name_problem(&profile.name) {
        return Err(invalid("name", p));
    }
    let mut any = false;
    for level in LEVELS_BY_STRENGTH {
        let Some(expr) = profile.schedules.get(level) else {
            continue;
        };
        any = true;
        let field = match level {
            coffer_types::Level::Full => "schedules.full",
            coffer_types::Level::Differential => "schedules.differential",
            coffer_types::Level::Incremental => "schedules.incremental",
        };
        Calendar::parse(expr).map_err(|e| invalid(field, format!("'{expr}': {e}")))?;
    }
    if !any {
        return Err(invalid(
            "schedules",
            "none given: at least one of full, differential, incremental".to_string(),
        ));
    }
    if profile.target.trim().is_empty() {
        return Err(invalid("target", "is empty".to_string()));
    }
    if let Some(expr) = &profile.replicate_schedule {
        Calendar::parse(expr)
            .map_err(|e| invalid("replicate_schedule", format!("'{expr}': {e}")))?;
        if profile.replicate_to.is_empty() {
            return Err(invalid(
                "replicate_schedule",
                "set, but replicate_to names no remote".to_string(),
            ));
        }
    }
    if let Some(d) = &profile.drill {
        Calendar::parse(&d.schedule)
            .map_err(|e| invalid("drill.schedule", format!("'{}': {e}", d.schedule)))?;
        match (d.from, d.remote.as_deref()) {
            (coffer_types::api::DrillSource::Remote, None | Some("")) => {
                return Err(invalid(
                    "drill.remote",
                    "a drill from a remote names the remote".to_string(),
                ));
            }
            (coffer_types::api::DrillSource::Remote, Some(_)) | (_, None) => {}
            (_, Some(r)) => {
                return Err(invalid(
                    "drill.remote",
                    format!("'{r}' is set, but the drill is from {}", d.from.as_str()),
                ));
            }
        }
    }
    if profile.retries > 0 && profile.retry_backoff.secs() == 0 {
        return Err(invalid(
            "retry_backoff",
            "must be longer than 0s when the profile retries".to_string(),
        ));
    }
    Ok(())
}

/// A `ParseError` in the importer's words: `'4x' is not a duration (…)`.
fn not_a(e: &ParseError) -> String {
    format!("'{}' is not a {}", e.input, e.what)
}

/// Splits a `;`-separated list, trimming items and dropping empty ones.
fn list(field: &str) -> Vec<String> {
    field
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The line (from 1) where the record at byte `at` of `text` starts.
/// The CSV reader's own positions point at whatever it skipped before the
/// record (a byte-order mark, blank lines, comments), so those are skipped
/// here before counting.
fn line_at(text: &str, at: u64) -> u64 {
    let bytes = text.as_bytes();
    let mut i = usize::try_from(at).unwrap_or(usize::MAX).min(bytes.len());
    if i == 0 && bytes.starts_with("\u{feff}".as_bytes()) {
        i = 3;
    }
    loop {
        match bytes.get(i) {
            Some(b'\r' | b'\n') => i += 1,
            Some(b'#') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |n| i + n + 1);
            }
            _ => break,
        }
    }
    let newlines = bytes[..i].iter().filter(|&&b| b == b'\n').count();
    u64::try_from(newlines)
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// Reads an asset register from CSV (see the module's documentation):
/// every row is parsed and checked with [`validate_asset`], and two rows
/// may not name the same asset. The first problem found is returned.
pub fn parse_register_csv(text: &str) -> Result<Vec<Asset>, ImportError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .flexible(false)
        .from_reader(text.as_bytes());
    let csv_error = |e: csv::Error| ImportError::Csv {
        line: e.position().map_or(1, |p| line_at(text, p.byte())),
        reason: e.to_string(),
    };
    let header = rdr.headers().map_err(csv_error)?;
    if header.iter().all(str::is_empty) {
        return Err(ImportError::NoHeader);
    }
    let header_line = header.position().map_or(1, |p| line_at(text, p.byte()));
    let known = REQUIRED_COLUMNS.iter().chain(OPTIONAL_COLUMNS.iter());
    let mut columns: HashMap<&'static str, usize> = HashMap::new();
    for (i, h) in header.iter().enumerate() {
        let lower = h.to_ascii_lowercase();
        let Some(&name) = known.clone().find(|k| **k == lower) else {
            return Err(ImportError::UnknownColumn {
                line: header_line,
                column: h.to_string(),
            });
        };
        if columns.insert(name, i).is_some() {
            return Err(ImportError::DuplicateColumn {
                line: header_line,
                column: name.to_string(),
            });
        }
    }
    if let Some(missing) = REQUIRED_COLUMNS.iter().find(|c| !columns.contains_key(*c)) {
        return Err(ImportError::MissingColumn {
            line: header_line,
            column: missing,
        });
    }

    let mut assets = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in rdr.records() {
        let record = record.map_err(csv_error)?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        let line = record.position().map_or(0, |p| line_at(text, p.byte()));
        let get = |column: &str| {
            columns
                .get(column)
                .and_then(|&i| record.get(i))
                .unwrap_or("")
        };
        let field = |column: &'static str, problem: String| ImportError::Field {
            line,
            column,
            problem,
        };
        let duration = |column: &'static str| -> Result<Duration, ImportError> {
            let v = get(column);
            if v.is_empty() {
                return Err(field(column, "is empty (e.g. 4h, 1d)".to_string()));
            }
            v.parse().map_err(|e| field(column, not_a(&e)))
        };
        let crit = get("criticality");
        if crit.is_empty() {
            return Err(field(
                "criticality",
                "is empty (low, medium, high, critical)".to_string(),
            ));
        }
        let criticality: Criticality = crit.parse().map_err(|e| field("criticality", not_a(&e)))?;
        let profile = get("profile");
        let asset = Asset {
            name: get("name").to_string(),
            owner: get("owner").to_string(),
            criticality,
            sources: list(get("sources")),
            excludes: list(get("excludes")),
            rpo: duration("rpo")?,
            rto: duration("rto")?,
            profile: (!profile.is_empty()).then(|| profile.to_string()),
        };
        validate_asset(&asset).map_err(|e| field(e.field, e.problem))?;
        if let Some(&first_line) = seen.get(&asset.name) {
            return Err(ImportError::DuplicateName {
                line,
                name: asset.name,
                first_line,
            });
        }
        seen.insert(asset.name.clone(), line);
        assets.push(asset);
    }
    Ok(assets)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
