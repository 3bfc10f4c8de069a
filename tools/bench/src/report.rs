//! Medians, the printed table, and the JSON and Markdown reports.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::measure::Sample;
use crate::tools::Tool;

/// The steps of one run, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Init,
    Full,
    Unchanged,
    Change1pct,
    Upgrade,
    Restore,
    Verify,
    Retention,
}

impl Step {
    pub fn label(self) -> &'static str {
        match self {
            Step::Init => "init",
            Step::Full => "full backup",
            Step::Unchanged => "unchanged re-backup",
            Step::Change1pct => "1% change",
            Step::Upgrade => "upgrade",
            Step::Restore => "restore",
            Step::Verify => "verify (read all)",
            Step::Retention => "retention to 1",
        }
    }
}

/// One measured command of one run.
#[derive(Serialize, Clone, Debug)]
pub struct Record {
    pub run: u32,
    pub tool: Tool,
    pub step: Step,
    pub sample: Sample,
    /// Bytes the step covers, for MB/s (source bytes; repository bytes for verify).
    pub bytes: u64,
}

/// The median of each figure over the runs, taken figure by figure.
#[derive(Serialize, Clone, Copy, Debug)]
pub struct Median {
    pub tool: Tool,
    pub step: Step,
    pub runs: usize,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub max_rss_mib: f64,
    pub mb_per_s: f64,
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn medians(records: &[Record]) -> Vec<Median> {
    let mut groups: BTreeMap<(Step, Tool), Vec<&Record>> = BTreeMap::new();
    for r in records {
        groups.entry((r.step, r.tool)).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|((step, tool), rs)| {
            let wall = median(rs.iter().map(|r| r.sample.wall_s).collect());
            Median {
                tool,
                step,
                runs: rs.len(),
                wall_s: wall,
                cpu_s: median(rs.iter().map(|r| r.sample.cpu_s()).collect()),
                max_rss_mib: median(
                    rs.iter()
                        .map(|r| r.sample.max_rss_kib as f64 / 1024.0)
                        .collect(),
                ),
                mb_per_s: median(
                    rs.iter()
                        .map(|r| r.bytes as f64 / 1e6 / r.sample.wall_s.max(1e-9))
                        .collect(),
                ),
            }
        })
        .collect()
}

/// Repository sizes by tool and moment, medians over runs.
pub type Sizes = BTreeMap<(Tool, &'static str), Vec<u64>>;

/// The moments repository sizes are taken.
pub const AFTER_BACKUPS: &str = "after 4 backups";
pub const AFTER_RETENTION: &str = "after retention";

/// The comparison table: a row per step and tool; on each peer's row, how
/// many times faster Coffer was and Coffer's peak RSS as a fraction of the peer's.
pub fn table(meds: &[Median], sizes: &Sizes) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| step | tool | wall s | CPU s | peak RSS MiB | MB/s | Coffer speed × | Coffer RSS ÷ |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    let find = |step: Step, tool: Tool| meds.iter().find(|m| m.step == step && m.tool == tool);
    let mut steps: Vec<Step> = meds.iter().map(|m| m.step).collect();
    steps.sort();
    steps.dedup();
    for step in steps {
        let coffer = find(step, Tool::Coffer);
        for m in meds.iter().filter(|m| m.step == step) {
            let (speed, rss) = match (m.tool, coffer) {
                (Tool::Coffer, _) | (_, None) => (String::new(), String::new()),
                (_, Some(c)) => (
                    format!("{:.2}×", m.wall_s / c.wall_s),
                    format!("{:.2}", c.max_rss_mib / m.max_rss_mib),
                ),
            };
            let mbps = if m.mb_per_s > 0.0 {
                format!("{:.0}", m.mb_per_s)
            } else {
                "–".into()
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {:.2} | {:.0} | {} | {} | {} |",
                step.label(),
                m.tool.name(),
                m.wall_s,
                m.cpu_s,
                m.max_rss_mib,
                mbps,
                speed,
                rss
            );
        }
    }
    if !sizes.is_empty() {
        let _ = writeln!(out, "\n| repository size | tool | MB | Coffer ÷ |");
        let _ = writeln!(out, "|---|---|---:|---:|");
        for when in [AFTER_BACKUPS, AFTER_RETENTION] {
            let coffer = sizes
                .get(&(Tool::Coffer, when))
                .map(|v| median(v.iter().map(|&b| b as f64).collect()));
            for ((tool, w), v) in sizes.iter().filter(|((_, w), _)| *w == when) {
                let mb = median(v.iter().map(|&b| b as f64).collect());
                let ratio = match (tool, coffer) {
                    (Tool::Coffer, _) | (_, None) => String::new(),
                    (_, Some(c)) => format!("{:.2}", c / mb),
                };
                let _ = writeln!(out, "| {w} | {} | {:.1} | {ratio} |", tool.name(), mb / 1e6);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn table_puts_ratios_on_peer_rows() {
        let s = |wall_s, kib| Sample {
            wall_s,
            user_s: wall_s,
            sys_s: 0.0,
            max_rss_kib: kib,
        };
        let mut recs = Vec::new();
        for (run, (c, r)) in [(2.0, 6.0), (1.0, 7.0), (3.0, 5.0)].into_iter().enumerate() {
            recs.push(Record {
                run: run as u32,
                tool: Tool::Coffer,
                step: Step::Full,
                sample: s(c, 51200),
                bytes: 1_000_000_000,
            });
            recs.push(Record {
                run: run as u32,
                tool: Tool::Restic,
                step: Step::Full,
                sample: s(r, 102400),
                bytes: 1_000_000_000,
            });
        }
        let meds = medians(&recs);
        let c = meds.iter().find(|m| m.tool == Tool::Coffer).unwrap();
        assert_eq!(c.wall_s, 2.0);
        assert_eq!(c.mb_per_s, 500.0);
        let t = table(&meds, &Sizes::new());
        assert!(
            t.contains("| full backup | restic | 6.00 | 6.00 | 100 | 167 | 3.00× | 0.50 |"),
            "{t}"
        );
    }
}
