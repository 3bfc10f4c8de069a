//! Media rotation as pure planners: media pools with a rotation scheme, the
//! state and place of every cartridge, and
//! [`plan`]`(day, pool, inventory) -> Plan`, the day's procedure: which
//! sets expire, what tonight's tape job writes and onto which cartridges,
//! which cartridges go to the export slots and to the vault, which come
//! back (and by when they are needed), which scratch cartridges to load,
//! whether cleaning is due, and what is wrong with the pool.
//!
//! Nothing here touches a drive or the catalog: the service and the shell
//! turn a [`Plan`] into requests and record what the operator did
//! ([`apply`] is the procedure followed exactly, used to size pools and by
//! the tests that run years of rotation).
//!
//! The schemes:
//! * **GFS**: a full on the full day of each week (weekly), the last one of
//!   each month monthly, the last of the yearly month yearly; incremental
//!   or differential dailies on the other backup days, in a daily set per
//!   week (or per day, or per N days: the allocation). Each tier has its
//!   own retention.
//! * **Tower of Hanoi** with `k` sets: the n-th backup day uses set
//!   `min(trailing zeros of n, k - 1)`; a set is kept until its next turn.
//! * **Continuous**: append to the open set until its cartridges are full
//!   (or a new set on a calendar), keep each set for a duration after its
//!   last write.
//!
//! Retention knows the restore chain: a set is kept as long as any kept set
//! that builds on it ([`MediaSet::base`]).

pub mod barcode;
mod book;
mod checklist;
mod plan;
pub use checklist::{checklist, custody_text, manifest_text, manifests_table};
pub mod shred;
mod sim;
pub mod tonight;

use serde::{Deserialize, Serialize};

pub use barcode::{BarcodeError, MediaKind, classify, matches_rule};
pub use book::{Book, Recorded, state_label};
pub use coffer_types::Level;
pub use plan::{Export, JobPlan, Plan, Recall, SetChoice, plan, retained_until};
pub use sim::{Outcome, apply, required_cartridges, sizing_days};

/// A calendar day (UTC), as days since 1970-01-01.
///
/// In JSON (the plan, the catalog's rotation rows) a day is `"YYYY-MM-DD"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i32);

impl Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Day, D::Error> {
        let s = String::deserialize(d)?;
        Day::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not a date (YYYY-MM-DD)")))
    }
}

/// Day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// Monday to Friday.
    pub const WORKING: [Weekday; 5] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ];
    pub(crate) const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
}

impl Day {
    /// The day of `y-m-d` (proleptic Gregorian).
    pub fn ymd(y: i32, m: u32, d: u32) -> Day {
        // Howard Hinnant's days_from_civil.
        let y = if m <= 2 { y - 1 } else { y };
        let era = if y >= 0 { y } else { y - 399 } / 400;
        let yoe = y - era * 400;
        let m = m as i32;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i32 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Day(era * 146_097 + doe - 719_468)
    }

    /// (year, month 1–12, day 1–31).
    pub fn to_ymd(self) -> (i32, u32, u32) {
        let z = self.0 + 719_468;
        let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        (if m <= 2 { y + 1 } else { y }, m, d)
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Day> {
        let mut it = s.split('-');
        let y: i32 = it.next()?.parse().ok()?;
        let m: u32 = it.next()?.parse().ok()?;
        let d: u32 = it.next()?.parse().ok()?;
        if it.next().is_some() || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return None;
        }
        Some(Day::ymd(y, m, d))
    }

    /// The day from a time in milliseconds since the epoch (UTC).
    pub fn from_ms(ms: i64) -> Day {
        Day(ms.div_euclid(86_400_000) as i32)
    }

    /// The weekday.
    pub fn weekday(self) -> Weekday {
        // 1970-01-01 was a Thursday.
        Weekday::ALL[(self.0 + 3).rem_euclid(7) as usize]
    }

    /// `n` days later (earlier if negative).
    pub fn plus(self, n: i32) -> Day {
        Day(self.0 + n)
    }

    /// `n` months later, on the same day of the month (or the month's last).
    pub fn plus_months(self, n: i32) -> Day {
        let (y, m, d) = self.to_ymd();
        let idx = y * 12 + m as i32 - 1 + n;
        let (y, m) = (idx.div_euclid(12), idx.rem_euclid(12) as u32 + 1);
        Day::ymd(y, m, d.min(days_in_month(y, m)))
    }

    /// Whether no later day of this month is the same weekday.
    pub fn last_of_its_weekday_in_month(self) -> bool {
        self.plus(7).to_ymd().1 != self.to_ymd().1
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, m, d) = self.to_ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// What a media set is in its scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// GFS daily (incremental or differential) set.
    Daily,
    /// GFS weekly full.
    Weekly,
    /// GFS monthly full.
    Monthly,
    /// GFS yearly full.
    Yearly,
    /// Tower of Hanoi set (0 is used every other backup day).
    Hanoi(u8),
    /// A continuous set.
    Continuous,
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tier::Daily => f.write_str("daily"),
            Tier::Weekly => f.write_str("weekly"),
            Tier::Monthly => f.write_str("monthly"),
            Tier::Yearly => f.write_str("yearly"),
            Tier::Hanoi(s) => write!(f, "hanoi-{}", (b'A' + s) as char),
            Tier::Continuous => f.write_str("continuous"),
        }
    }
}

/// Grandfather-father-son.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gfs {
    /// Days with a backup.
    pub backup_days: Vec<Weekday>,
    /// The day of the weekly full (one of the backup days).
    pub full_day: Weekday,
    /// Level of the other days: incremental or differential.
    pub daily_level: Level,
    /// Weeks a daily set is kept.
    pub keep_daily_weeks: u32,
    /// Weeks a weekly full is kept.
    pub keep_weekly_weeks: u32,
    /// Months a monthly full is kept.
    pub keep_monthly_months: u32,
    /// Years a yearly full is kept (0: no yearly tier).
    pub keep_yearly_years: u32,
    /// The month (1–12) whose monthly full is the yearly one.
    pub yearly_month: u32,
}

impl Default for Gfs {
    fn default() -> Gfs {
        Gfs {
            backup_days: Weekday::WORKING.to_vec(),
            full_day: Weekday::Fri,
            daily_level: Level::Incremental,
            keep_daily_weeks: 2,
            keep_weekly_weeks: 5,
            keep_monthly_months: 12,
            keep_yearly_years: 0,
            yearly_month: 12,
        }
    }
}

/// Tower of Hanoi.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hanoi {
    /// Number of sets (2 to 8).
    pub sets: u8,
    /// Days with a backup.
    pub backup_days: Vec<Weekday>,
}

/// Append until full, keep for a duration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Continuous {
    /// Days with a backup.
    pub backup_days: Vec<Weekday>,
    /// Days a set is kept after its last write.
    pub keep_days: u32,
}

/// A rotation scheme.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "scheme")]
pub enum Scheme {
    /// See [`Gfs`].
    Gfs(Gfs),
    /// See [`Hanoi`].
    Hanoi(Hanoi),
    /// See [`Continuous`].
    Continuous(Continuous),
}

impl Scheme {
    fn backup_days(&self) -> &[Weekday] {
        match self {
            Scheme::Gfs(g) => &g.backup_days,
            Scheme::Hanoi(h) => &h.backup_days,
            Scheme::Continuous(c) => &c.backup_days,
        }
    }
}

/// When a job starts a new media set instead of continuing the open one
/// (GFS dailies and continuous sets; fulls always start one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "allocation")]
pub enum Allocation {
    /// Continue the open set (a GFS daily set runs from one full to the
    /// next; a continuous set until its cartridges are full).
    Continue,
    /// Every job starts a set.
    AlwaysNew,
    /// A new set every `days` days.
    Every {
        /// Days.
        days: u32,
    },
}

/// A media pool's policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolPolicy {
    /// Name.
    pub name: String,
    /// The rotation scheme.
    pub scheme: Scheme,
    /// When a job starts a new set.
    pub allocation: Allocation,
    /// The first day of the rotation (Hanoi counts backup days from it).
    pub start: Day,
    /// Barcodes of the pool's cartridges (`?` one character, `*` any run).
    pub barcode_rule: String,
    /// Media sets are encrypted.
    pub encrypt: bool,
    /// The pool writes WORM cartridges (and only those); otherwise a WORM
    /// cartridge is refused.
    pub worm: bool,
    /// The vault its sets go to (`None`: they stay onsite).
    pub vault: Option<String>,
    /// GFS daily sets go to the vault too.
    pub offsite_dailies: bool,
    /// Days from handing a cartridge to the courier to its arrival (either
    /// way).
    pub courier_days: u32,
    /// Days the courier calls.
    pub pickup_days: Vec<Weekday>,
    /// Cartridges a media set needs (a full's size over a cartridge's
    /// capacity, rounded up).
    pub cartridges_per_set: u32,
    /// Clean the drives every this many days (0: never).
    pub clean_every_days: u32,
    /// Expired sets are crypto-shredded: each set's key is held in escrow
    /// (the catalog and the store, which replicates), never on its labels,
    /// and destroyed when the set expires, so its cartridges are unreadable
    /// wherever they are. Restoring from the pool then needs the store or
    /// its replica, not only the passphrase.
    #[serde(default)]
    pub shred: bool,
}

impl PoolPolicy {
    /// A GFS pool with the usual settings: fulls on Friday, dailies Monday
    /// to Thursday, vault `offsite`, the courier calling every working day
    /// and taking a day.
    pub fn gfs(name: &str, start: Day) -> PoolPolicy {
        PoolPolicy {
            name: name.into(),
            scheme: Scheme::Gfs(Gfs::default()),
            allocation: Allocation::Continue,
            start,
            barcode_rule: String::new(),
            encrypt: true,
            worm: false,
            vault: Some("offsite".into()),
            offsite_dailies: false,
            courier_days: 1,
            pickup_days: Weekday::WORKING.to_vec(),
            cartridges_per_set: 1,
            clean_every_days: 30,
            shred: false,
        }
    }

    /// Checks that the policy can work, with the reason when not.
    pub fn validate(&self) -> Result<(), String> {
        let days = self.scheme.backup_days();
        if days.is_empty() {
            return Err(format!("pool {}: the scheme has no backup day", self.name));
        }
        if self.cartridges_per_set == 0 {
            return Err(format!(
                "pool {}: a media set needs at least one cartridge",
                self.name
            ));
        }
        if self.shred && !self.encrypt {
            return Err(format!(
                "pool {}: only encrypted sets can be crypto-shredded (leave out --no-encrypt)",
                self.name
            ));
        }
        if self.shred && self.worm {
            return Err(format!(
                "pool {}: a WORM pool keeps its sets readable for good; it does not crypto-shred",
                self.name
            ));
        }
        if self.vault.is_some() && self.pickup_days.is_empty() {
            return Err(format!(
                "pool {}: cartridges go to vault {} but the courier never calls (no pickup day)",
                self.name,
                self.vault.as_deref().unwrap_or_default()
            ));
        }
        match &self.scheme {
            Scheme::Gfs(g) => {
                if !g.backup_days.contains(&g.full_day) {
                    return Err(format!(
                        "pool {}: the full day {:?} is not a backup day",
                        self.name, g.full_day
                    ));
                }
                if g.daily_level == Level::Full {
                    return Err(format!(
                        "pool {}: GFS dailies are incremental or differential",
                        self.name
                    ));
                }
                if g.keep_weekly_weeks == 0 || g.keep_monthly_months == 0 || g.keep_daily_weeks == 0
                {
                    return Err(format!(
                        "pool {}: GFS keeps dailies, weeklies and monthlies at least one week, week and month",
                        self.name
                    ));
                }
                if !(1..=12).contains(&g.yearly_month) {
                    return Err(format!(
                        "pool {}: the yearly month is 1 to 12, not {}",
                        self.name, g.yearly_month
                    ));
                }
            }
            Scheme::Hanoi(h) => {
                if !(2..=8).contains(&h.sets) {
                    return Err(format!(
                        "pool {}: Tower of Hanoi uses 2 to 8 sets, not {}",
                        self.name, h.sets
                    ));
                }
            }
            Scheme::Continuous(c) => {
                if c.keep_days == 0 {
                    return Err(format!(
                        "pool {}: a continuous pool keeps its sets at least a day",
                        self.name
                    ));
                }
            }
        }
        if let Allocation::Every { days: 0 } = self.allocation {
            return Err(format!(
                "pool {}: a new set every 0 days is not a calendar",
                self.name
            ));
        }
        Ok(())
    }

    /// The longest the courier takes to collect a cartridge that is ready,
    /// in days (the gap between pickup days).
    pub fn pickup_wait(&self) -> i32 {
        (0..7)
            .find(|k| {
                (0..7).all(|from| {
                    (0..=*k).any(|w| self.pickup_days.contains(&Day(from + w).weekday()))
                })
            })
            .unwrap_or(7)
    }
}

/// Where a cartridge is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "place")]
pub enum Place {
    /// In a storage slot or a drive of the library.
    Library,
    /// In an export (mail) slot, waiting for the courier: *export pending*.
    ExportSlot,
    /// With the courier, to the vault: *in transit*.
    ToVault {
        /// Expected at the vault.
        arrives: Day,
    },
    /// In the vault: *vaulted*.
    Vault,
    /// In the vault, asked back: *recall requested*.
    RecallRequested {
        /// The day it is needed onsite.
        needed_by: Day,
    },
    /// With the courier, back to the site: *in transit*.
    ToSite {
        /// Expected onsite.
        arrives: Day,
    },
    /// Onsite, out of the library (on a shelf): *onsite*.
    Onsite,
}

impl Place {
    /// Whether the cartridge is at the site (in the library or not).
    pub fn onsite(self) -> bool {
        matches!(self, Place::Library | Place::Onsite | Place::ExportSlot)
    }
}

/// What a cartridge holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Content {
    /// Labelled for the pool, never written (or recycled): *scratch*.
    Scratch,
    /// Its set is being written: *writing*.
    Writing,
    /// Its set's data, no more room or the set closed: *full*.
    Full,
    /// Its set's retention ended: *expired* (recyclable unless WORM).
    Expired,
    /// Destroyed, its certificate filed: *disposed*.
    Disposed,
    /// Found damaged: never written again.
    Damaged,
    /// A cleaning cartridge.
    Cleaning,
}

/// A cartridge as the planner sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    /// Barcode.
    pub barcode: String,
    /// What the barcode says it is.
    pub kind: MediaKind,
    /// What it holds.
    pub content: Content,
    /// Where it is.
    pub place: Place,
    /// Its media set, if it holds one.
    pub set: Option<String>,
}

/// A media set as the planner sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MediaSet {
    /// Id.
    pub id: String,
    /// Tier.
    pub tier: Tier,
    /// Level of the backups on it (the first one's, for a continuous set).
    pub level: Level,
    /// First write.
    pub first: Day,
    /// Last write.
    pub last: Day,
    /// No more writes.
    pub closed: bool,
    /// Its own retention ends (the restore chain may keep it longer: see
    /// [`retained_until`]).
    pub expires: Day,
    /// The set whose backups its own build on (restore chain).
    pub base: Option<String>,
    /// Its cartridges, in order.
    pub cartridges: Vec<String>,
    /// Expired (its cartridges were released).
    pub expired: bool,
}

impl MediaSet {
    /// A set begun on day `d`, open, with no cartridge yet.
    pub fn begun(
        id: String,
        tier: Tier,
        level: Level,
        d: Day,
        expires: Day,
        base: Option<String>,
    ) -> MediaSet {
        MediaSet {
            id,
            tier,
            level,
            first: d,
            last: d,
            closed: false,
            expires,
            base,
            cartridges: Vec::new(),
            expired: false,
        }
    }
}

/// A pool's cartridges and sets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Cartridges.
    pub carts: Vec<Cart>,
    /// Media sets.
    pub sets: Vec<MediaSet>,
    /// The last drive cleaning.
    pub last_cleaning: Option<Day>,
}

impl Inventory {
    /// The cartridge `barcode`.
    pub fn cart(&self, barcode: &str) -> Option<&Cart> {
        self.carts.iter().find(|c| c.barcode == barcode)
    }

    /// The set `id`.
    pub fn set(&self, id: &str) -> Option<&MediaSet> {
        self.sets.iter().find(|s| s.id == id)
    }

    /// Whether every cartridge of set `s` is in the vault.
    pub fn in_vault(&self, s: &MediaSet) -> bool {
        !s.cartridges.is_empty()
            && s.cartridges
                .iter()
                .all(|b| self.cart(b).is_some_and(|c| c.place == Place::Vault))
    }
}

#[cfg(test)]
mod tests;
