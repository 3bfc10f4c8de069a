//! The front panel's screens: a pure function from the appliance's state
//! (and where the person at the rack has navigated to) to four lines of
//! twenty characters and the four LEDs, plus what a button press does.
//! No I/O: the panel thread (`panel`) gathers [`PanelState`], and tests
//! check the screens as data.
//!
//! Pages, in order: identity (name, address, health), health (the state
//! and its first reason), jobs (the running job and its progress, or the
//! next run), system (CPU, memory, disk, temperature), then one page per
//! open alert (or one saying there are none). `up`/`down` move between
//! pages, wrapping; `back` returns to the identity page; on an alert page
//! `ok` asks for confirmation and a second `ok` acknowledges the alert.

use coffer_panel::{Button, LedStates};
use coffer_types::api::HealthState;
use coffer_types::{JobKind, Level};

/// Characters per line.
pub const WIDTH: usize = 20;

/// What the panel shows, gathered from the daemon.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PanelState {
    /// Host name.
    pub host: String,
    /// The first non-loopback address.
    pub address: Option<String>,
    /// `cofferd` version.
    pub version: String,
    /// Local time of day and zone, e.g. `14:05 UTC`.
    pub clock: String,
    /// The appliance's health.
    pub health: Health,
    /// Running jobs, oldest first.
    pub running: Vec<RunningJob>,
    /// Jobs waiting.
    pub queued: u32,
    /// The next scheduled run.
    pub next_run: Option<NextRun>,
    /// CPU, memory, disk and temperature figures.
    pub figures: Option<Figures>,
    /// Open alerts, newest first.
    pub alerts: Vec<PanelAlert>,
    /// Whether `ok` may acknowledge an alert.
    pub ack_allowed: bool,
    /// 3-2-1-1-0: the assets that meet it, of all, and the first that does
    /// not with what it misses.
    pub compliance: Option<Compliance>,
}

/// The 3-2-1-1-0 page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Compliance {
    /// Assets meeting the rule.
    pub met: usize,
    /// Assets in the register.
    pub assets: usize,
    /// The first asset not meeting it, and what it misses first.
    pub first_unmet: Option<(String, String)>,
}

/// The health line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Health {
    /// OK, DEGRADED or FAULT.
    pub state: Option<HealthState>,
    /// Why, worst first.
    pub reasons: Vec<String>,
}

/// The next scheduled run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextRun {
    /// The asset.
    pub asset: String,
    /// The level that will run.
    pub level: Level,
    /// When, local time, e.g. `Tue 01:00`.
    pub when: String,
}

/// A running job.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningJob {
    /// Job id.
    pub id: i64,
    /// What kind.
    pub kind: JobKind,
    /// The asset.
    pub asset: String,
    /// The level of a backup.
    pub level: Option<Level>,
    /// Files done.
    pub files: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Seconds since it started.
    pub elapsed_secs: u64,
}

/// System figures for the system page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures {
    /// CPU busy, percent.
    pub cpu_percent: f32,
    /// One-minute load average.
    pub load1: f64,
    /// Memory used, percent.
    pub memory_percent: f64,
    /// Memory in all, bytes.
    pub memory_total: u64,
    /// The fullest of Coffer's filesystems: role and percent.
    pub disk: Option<(String, f64)>,
    /// The hottest kernel sensor, °C.
    pub cpu_temp: Option<f32>,
    /// The panel's own sensor, °C.
    pub panel_temp: Option<f32>,
}

/// An open alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelAlert {
    /// Alert id.
    pub id: i64,
    /// Kind (`rpo`, `job-failed`, `health-disk`, …).
    pub kind: String,
    /// What it is about.
    pub subject: String,
    /// The sentence.
    pub message: String,
    /// Acknowledged by.
    pub acked_by: Option<String>,
}

/// A page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Page {
    /// Name, address, health.
    #[default]
    Identity,
    /// Health and its reason.
    Health,
    /// The running job.
    Jobs,
    /// CPU, memory, disk, temperature.
    System,
    /// 3-2-1-1-0 across the register.
    Compliance,
    /// An open alert (by id), or `None` for "no alerts".
    Alert(Option<i64>),
}

impl Page {
    /// The page's name (the API's `screen`).
    pub fn name(self) -> &'static str {
        match self {
            Page::Identity => "identity",
            Page::Health => "health",
            Page::Jobs => "jobs",
            Page::System => "system",
            Page::Compliance => "compliance",
            Page::Alert(_) => "alert",
        }
    }
}

/// Where the person at the rack is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Nav {
    /// The page shown.
    pub page: Page,
    /// `ok` was pressed once on this alert's page: the next `ok` there
    /// acknowledges it (and nothing else: if the page now shows another
    /// alert, the confirmation does not carry over).
    pub confirm: Option<i64>,
}

/// What a press asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond moving.
    None,
    /// Acknowledge this alert.
    Ack(i64),
}

/// The pages in order for this state.
pub fn pages(s: &PanelState) -> Vec<Page> {
    let mut p = vec![
        Page::Identity,
        Page::Health,
        Page::Jobs,
        Page::System,
        Page::Compliance,
    ];
    if s.alerts.is_empty() {
        p.push(Page::Alert(None));
    } else {
        p.extend(s.alerts.iter().map(|a| Page::Alert(Some(a.id))));
    }
    p
}

/// The page actually shown: an alert page whose alert went away falls back
/// to the alert that took its place (or "no alerts").
fn current(nav: &Nav, s: &PanelState) -> Page {
    match nav.page {
        Page::Alert(Some(id)) if !s.alerts.iter().any(|a| a.id == id) => {
            Page::Alert(s.alerts.first().map(|a| a.id))
        }
        Page::Alert(None) if !s.alerts.is_empty() => Page::Alert(s.alerts.first().map(|a| a.id)),
        p => p,
    }
}

/// Applies a button press.
pub fn press(nav: &mut Nav, s: &PanelState, b: Button) -> Action {
    let list = pages(s);
    let here = current(nav, s);
    let at = list.iter().position(|p| *p == here).unwrap_or(0);
    match b {
        Button::Up => {
            nav.page = list[(at + list.len() - 1) % list.len()];
            nav.confirm = None;
        }
        Button::Down => {
            nav.page = list[(at + 1) % list.len()];
            nav.confirm = None;
        }
        Button::Back => {
            if nav.confirm.is_some() {
                nav.confirm = None;
            } else {
                *nav = Nav::default();
            }
        }
        Button::Ok => {
            nav.page = here;
            let armed = nav.confirm.take();
            if let Page::Alert(Some(id)) = here
                && s.ack_allowed
                && s.alerts.iter().any(|a| a.id == id && a.acked_by.is_none())
            {
                if armed == Some(id) {
                    return Action::Ack(id);
                }
                nav.confirm = Some(id);
            }
        }
    }
    Action::None
}

/// The four lines for `nav` over `s`.
pub fn render(s: &PanelState, nav: &Nav) -> [String; 4] {
    let lines = match current(nav, s) {
        Page::Identity => identity(s),
        Page::Health => health(s),
        Page::Jobs => jobs(s),
        Page::System => system(s),
        Page::Compliance => compliance(s),
        Page::Alert(id) => alert(s, id, id.is_some() && nav.confirm == id),
    };
    lines.map(|l| fit(&l))
}

/// The page's name as shown to the API.
pub fn page_name(s: &PanelState, nav: &Nav) -> &'static str {
    current(nav, s).name()
}

/// The LEDs at tick `tick` (blinking alternates every `blink` ticks):
/// power always on; activity blinks while a job runs; fault on for FAULT,
/// blinking for DEGRADED; tape on while a media job runs.
pub fn leds(s: &PanelState, tick: u64, blink: u64) -> LedStates {
    let phase = (tick / blink.max(1)).is_multiple_of(2);
    LedStates {
        power: true,
        activity: !s.running.is_empty() && phase,
        fault: match s.health.state {
            Some(HealthState::Fault) => true,
            Some(HealthState::Degraded) => phase,
            _ => false,
        },
        tape: s.running.iter().any(|j| {
            matches!(
                j.kind,
                JobKind::MediaWrite | JobKind::MediaRestore | JobKind::MediaRecover
            )
        }),
    }
}

fn identity(s: &PanelState) -> [String; 4] {
    let state = s.health.state.map_or("...", HealthState::as_str);
    [
        format!("COFFER {}", s.host),
        match &s.address {
            Some(a) => format!("IP {a}"),
            None => "IP none (no network)".into(),
        },
        format!("HEALTH {state}"),
        spread(&format!("v{}", s.version), &s.clock),
    ]
}

fn health(s: &PanelState) -> [String; 4] {
    let Some(state) = s.health.state else {
        return [
            "HEALTH".into(),
            "checking...".into(),
            String::new(),
            String::new(),
        ];
    };
    let mut out = [
        format!("HEALTH: {}", state.as_str()),
        String::new(),
        String::new(),
        String::new(),
    ];
    match s.health.reasons.split_first() {
        None => out[1] = "all checks pass".into(),
        Some((first, rest)) => {
            let room = if rest.is_empty() { 3 } else { 2 };
            for (i, l) in wrap(first, room).into_iter().enumerate() {
                out[1 + i] = l;
            }
            if !rest.is_empty() {
                out[3] = format!("+{} more, see alerts", rest.len());
            }
        }
    }
    out
}

fn compliance(s: &PanelState) -> [String; 4] {
    let Some(c) = &s.compliance else {
        return [
            "3-2-1-1-0".into(),
            "checking...".into(),
            String::new(),
            String::new(),
        ];
    };
    let mut out = [
        format!("3-2-1-1-0: {}/{} met", c.met, c.assets),
        String::new(),
        String::new(),
        String::new(),
    ];
    match &c.first_unmet {
        None if c.assets == 0 => out[1] = "no assets yet".into(),
        None => out[1] = "every asset meets it".into(),
        Some((asset, why)) => {
            let unmet = c.assets - c.met;
            let room = if unmet > 1 { 2 } else { 3 };
            for (i, l) in wrap(&format!("{asset}: {why}"), room)
                .into_iter()
                .enumerate()
            {
                out[1 + i] = l;
            }
            if unmet > 1 {
                out[3] = format!("+{} more not met", unmet - 1);
            }
        }
    }
    out
}

fn jobs(s: &PanelState) -> [String; 4] {
    let queued = if s.queued > 0 {
        format!("{} queued", s.queued)
    } else {
        String::new()
    };
    let Some(j) = s.running.first() else {
        return match &s.next_run {
            Some(n) => [
                "NO JOB RUNNING".into(),
                queued,
                format!("next: {}", n.asset),
                spread(short_level(n.level), &n.when),
            ],
            None => [
                "NO JOB RUNNING".into(),
                queued,
                "next: none scheduled".into(),
                String::new(),
            ],
        };
    };
    let count = if s.running.len() > 1 {
        format!("1/{}", s.running.len())
    } else {
        String::new()
    };
    let what = match j.level {
        Some(l) => format!("{} {}", j.kind.as_str(), short_level(l)),
        None => j.kind.as_str().to_string(),
    };
    [
        spread(&format!("JOB {} RUNNING", j.id), &count),
        j.asset.clone(),
        spread(&what, &elapsed(j.elapsed_secs)),
        spread(
            &format!("{} {}f", short_bytes(j.bytes), short_count(j.files)),
            &queued,
        ),
    ]
}

fn system(s: &PanelState) -> [String; 4] {
    let Some(f) = &s.figures else {
        return [
            "SYSTEM".into(),
            "reading...".into(),
            String::new(),
            String::new(),
        ];
    };
    let temp = |t: Option<f32>| t.map_or("-".to_string(), |t| format!("{t:.0}C"));
    [
        format!("CPU {:>3.0}%  LOAD {:.2}", f.cpu_percent, f.load1),
        format!(
            "MEM {:>3.0}% of {}",
            f.memory_percent,
            short_bytes(f.memory_total)
        ),
        match &f.disk {
            Some((role, p)) => format!("DISK {role} {p:.0}%"),
            None => "DISK -".into(),
        },
        format!("TEMP {} PANEL {}", temp(f.cpu_temp), temp(f.panel_temp)),
    ]
}

fn alert(s: &PanelState, id: Option<i64>, confirm: bool) -> [String; 4] {
    let Some((n, a)) = id.and_then(|id| s.alerts.iter().enumerate().find(|(_, a)| a.id == id))
    else {
        return [
            "ALERTS".into(),
            "none open".into(),
            String::new(),
            String::new(),
        ];
    };
    let head = spread(
        &format!("ALERT {}/{}", n + 1, s.alerts.len()),
        &a.kind.to_uppercase(),
    );
    let body = wrap(&format!("{}: {}", a.subject, a.message), 2);
    let last = match (&a.acked_by, confirm, s.ack_allowed) {
        (Some(by), _, _) => format!("acked by {by}"),
        (None, true, _) => "OK again to ack".into(),
        (None, false, true) => "OK=ack BACK=home".into(),
        (None, false, false) => "ack from the shell".into(),
    };
    [
        head,
        body.first().cloned().unwrap_or_default(),
        body.get(1).cloned().unwrap_or_default(),
        last,
    ]
}

/// Left and right text on one line, the right one flush right (the left
/// one is cut first when both do not fit).
fn spread(left: &str, right: &str) -> String {
    let r = right.chars().count();
    if r == 0 {
        return left.to_string();
    }
    let room = WIDTH.saturating_sub(r + 1);
    let l: String = left.chars().take(room).collect();
    format!("{l:<room$} {right}")
}

/// Cuts or pads to exactly [`WIDTH`] characters; what the LCD cannot show
/// (outside printable ASCII) becomes `?`, and `\` and `~`, which the
/// HD44780's standard character ROM draws as ¥ and →, become `/` and `-`.
pub fn fit(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| match c {
            // The HD44780's standard ROM (A00) has ¥ at 0x5C and → at 0x7E.
            '\\' => '/',
            '~' => '-',
            ' '..='}' => c,
            _ => '?',
        })
        .take(WIDTH)
        .collect();
    while out.chars().count() < WIDTH {
        out.push(' ');
    }
    out
}

/// Word-wraps into at most `lines` lines of [`WIDTH`]; a cut text ends
/// with `...`.
pub fn wrap(text: &str, lines: usize) -> Vec<String> {
    let text = text.replace('°', "");
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut words = text.split_whitespace().peekable();
    let mut cut = false;
    while let Some(w) = words.next() {
        let mut w = w.to_string();
        loop {
            let need = if cur.is_empty() { 0 } else { 1 } + w.chars().count();
            if cur.chars().count() + need <= WIDTH {
                if !cur.is_empty() {
                    cur.push(' ');
                }
                cur.push_str(&w);
                break;
            }
            if cur.is_empty() {
                // A word longer than a line is split.
                let head: String = w.chars().take(WIDTH).collect();
                w = w.chars().skip(WIDTH).collect();
                out.push(head);
            } else {
                out.push(std::mem::take(&mut cur));
            }
            if out.len() == lines {
                cut = true;
                break;
            }
        }
        if cut {
            break;
        }
        if out.len() == lines {
            cut = words.peek().is_some() || !cur.is_empty();
            break;
        }
    }
    if !cut && !cur.is_empty() {
        if out.len() < lines {
            out.push(cur);
        } else {
            cut = true;
        }
    }
    if cut && let Some(last) = out.last_mut() {
        let keep: String = last.chars().take(WIDTH - 3).collect();
        *last = format!("{}...", keep.trim_end());
    }
    out
}

/// `full`, `incr`, `diff`: a level in a few characters.
fn short_level(l: Level) -> &'static str {
    match l {
        Level::Full => "full",
        Level::Incremental => "incr",
        Level::Differential => "diff",
    }
}

fn short_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else if v < 10.0 {
        format!("{v:.1}{}", UNITS[u])
    } else {
        format!("{v:.0}{}", UNITS[u])
    }
}

fn short_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{}k", n / 1000),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

fn elapsed(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else {
        format!("{m}m{s:02}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> PanelState {
        PanelState {
            host: "coffer-01".into(),
            address: Some("10.0.0.12".into()),
            version: "0.1.0".into(),
            clock: "14:05 UTC".into(),
            health: Health {
                state: Some(HealthState::Ok),
                reasons: vec![],
            },
            running: vec![],
            queued: 0,
            next_run: Some(NextRun {
                asset: "sample-docs".into(),
                level: Level::Differential,
                when: "Tue 01:00".into(),
            }),
            figures: Some(Figures {
                cpu_percent: 12.4,
                load1: 0.52,
                memory_percent: 13.2,
                memory_total: 24 << 30,
                disk: Some(("store".into(), 42.4)),
                cpu_temp: Some(48.0),
                panel_temp: Some(31.5),
            }),
            alerts: vec![],
            ack_allowed: true,
            compliance: Some(Compliance {
                met: 1,
                assets: 3,
                first_unmet: Some(("web".into(), "3 copies: 2 of the newest snapshot".into())),
            }),
        }
    }

    #[test]
    fn the_compliance_page_says_how_many_assets_meet_the_rule_and_why_not() {
        let s = state();
        let nav = Nav {
            page: Page::Compliance,
            confirm: None,
        };
        let l = render(&s, &nav);
        assert_eq!(l[0].trim_end(), "3-2-1-1-0: 1/3 met");
        assert!(l[1].starts_with("web: 3 copies: 2"), "{l:?}");
        assert_eq!(l[3].trim_end(), "+1 more not met");
        let all = PanelState {
            compliance: Some(Compliance {
                met: 2,
                assets: 2,
                first_unmet: None,
            }),
            ..s
        };
        assert_eq!(render(&all, &nav)[1].trim_end(), "every asset meets it");
    }

    fn alerts() -> Vec<PanelAlert> {
        vec![
            PanelAlert {
                id: 7,
                kind: "rpo".into(),
                subject: "mail".into(),
                message: "no good backup for 2d 3h (RPO 1d)".into(),
                acked_by: None,
            },
            PanelAlert {
                id: 3,
                kind: "job-failed".into(),
                subject: "erp".into(),
                message: "job 12 failed".into(),
                acked_by: Some("alice".into()),
            },
        ]
    }

    fn show(s: &PanelState, nav: &Nav) -> Vec<String> {
        render(s, nav).to_vec()
    }

    #[test]
    fn every_line_is_exactly_twenty_characters() {
        let mut s = state();
        s.host = "a-very-long-host-name-indeed".into();
        s.alerts = alerts();
        let mut nav = Nav::default();
        for _ in 0..pages(&s).len() {
            for l in render(&s, &nav) {
                assert_eq!(l.chars().count(), WIDTH, "{l:?}");
            }
            press(&mut nav, &s, Button::Down);
        }
    }

    #[test]
    fn the_identity_page_shows_name_address_and_health() {
        assert_eq!(
            show(&state(), &Nav::default()),
            vec![
                "COFFER coffer-01    ",
                "IP 10.0.0.12        ",
                "HEALTH OK           ",
                "v0.1.0     14:05 UTC",
            ]
        );
        let mut s = state();
        s.address = None;
        s.health.state = None;
        let l = show(&s, &Nav::default());
        assert_eq!(l[1], "IP none (no network)");
        assert_eq!(l[2], "HEALTH ...          ");
    }

    #[test]
    fn the_health_page_gives_the_worst_reason_and_counts_the_rest() {
        let mut s = state();
        s.health = Health {
            state: Some(HealthState::Fault),
            reasons: vec![
                "the store filesystem (/srv/coffer) is 96% full (limit 95%): 3.9 GiB free".into(),
                "rpo: no good backup".into(),
            ],
        };
        let nav = Nav {
            page: Page::Health,
            confirm: None,
        };
        assert_eq!(
            show(&s, &nav),
            vec![
                "HEALTH: FAULT       ",
                "the store filesystem",
                "(/srv/coffer) is... ",
                "+1 more, see alerts ",
            ]
        );
        s.health = Health {
            state: Some(HealthState::Ok),
            reasons: vec![],
        };
        assert_eq!(show(&s, &nav)[1], "all checks pass     ");
    }

    #[test]
    fn the_jobs_page_shows_the_running_job_and_its_progress() {
        let mut s = state();
        s.running = vec![
            RunningJob {
                id: 42,
                kind: JobKind::Backup,
                asset: "sample-docs".into(),
                level: Some(Level::Full),
                files: 12_345,
                bytes: 1_288_490_189,
                elapsed_secs: 754,
            },
            RunningJob {
                id: 43,
                kind: JobKind::Backup,
                asset: "mail".into(),
                level: Some(Level::Incremental),
                files: 1,
                bytes: 1,
                elapsed_secs: 1,
            },
        ];
        s.queued = 2;
        let nav = Nav {
            page: Page::Jobs,
            confirm: None,
        };
        assert_eq!(
            show(&s, &nav),
            vec![
                "JOB 42 RUNNING   1/2",
                "sample-docs         ",
                "backup full   12m34s",
                "1.2G 12kf   2 queued",
            ]
        );
        s.running.clear();
        s.queued = 0;
        assert_eq!(
            show(&s, &nav),
            vec![
                "NO JOB RUNNING      ",
                "                    ",
                "next: sample-docs   ",
                "diff       Tue 01:00",
            ]
        );
        s.next_run = None;
        assert_eq!(show(&s, &nav)[2], "next: none scheduled");
    }

    #[test]
    fn the_system_page_shows_the_figures() {
        let nav = Nav {
            page: Page::System,
            confirm: None,
        };
        assert_eq!(
            show(&state(), &nav),
            vec![
                "CPU  12%  LOAD 0.52 ",
                "MEM  13% of 24G     ",
                "DISK store 42%      ",
                "TEMP 48C PANEL 32C  ",
            ]
        );
        let mut s = state();
        s.figures = None;
        assert_eq!(show(&s, &nav)[1], "reading...          ");
    }

    #[test]
    fn buttons_move_between_pages_and_wrap() {
        let mut s = state();
        s.alerts = alerts();
        let mut nav = Nav::default();
        let mut seen = vec![nav.page];
        for _ in 0..7 {
            press(&mut nav, &s, Button::Down);
            seen.push(nav.page);
        }
        assert_eq!(
            seen,
            vec![
                Page::Identity,
                Page::Health,
                Page::Jobs,
                Page::System,
                Page::Compliance,
                Page::Alert(Some(7)),
                Page::Alert(Some(3)),
                Page::Identity,
            ]
        );
        press(&mut nav, &s, Button::Up);
        assert_eq!(nav.page, Page::Alert(Some(3)));
        press(&mut nav, &s, Button::Back);
        assert_eq!(nav.page, Page::Identity);
        s.alerts.clear();
        assert_eq!(pages(&s).last(), Some(&Page::Alert(None)));
    }

    #[test]
    fn ok_twice_on_an_alert_acknowledges_it_and_back_cancels() {
        let mut s = state();
        s.alerts = alerts();
        let mut nav = Nav {
            page: Page::Alert(Some(7)),
            confirm: None,
        };
        assert_eq!(
            show(&s, &nav),
            vec![
                "ALERT 1/2        RPO",
                "mail: no good backup",
                "for 2d 3h (RPO 1d)  ",
                "OK=ack BACK=home    ",
            ]
        );
        assert_eq!(press(&mut nav, &s, Button::Ok), Action::None);
        assert_eq!(nav.confirm, Some(7));
        assert_eq!(show(&s, &nav)[3], "OK again to ack     ");
        assert_eq!(press(&mut nav, &s, Button::Back), Action::None);
        assert_eq!(nav.confirm, None);
        assert_eq!(nav.page, Page::Alert(Some(7)));
        press(&mut nav, &s, Button::Ok);
        assert_eq!(press(&mut nav, &s, Button::Ok), Action::Ack(7));
        // An acknowledged alert cannot be acknowledged again.
        let mut on3 = Nav {
            page: Page::Alert(Some(3)),
            confirm: None,
        };
        assert_eq!(show(&s, &on3)[3], "acked by alice      ");
        assert_eq!(press(&mut on3, &s, Button::Ok), Action::None);
        assert_eq!(press(&mut on3, &s, Button::Ok), Action::None);
        // Nor from the panel at all when the configuration says no.
        s.ack_allowed = false;
        assert_eq!(show(&s, &nav)[3], "ack from the shell  ");
        press(&mut nav, &s, Button::Ok);
        assert_eq!(press(&mut nav, &s, Button::Ok), Action::None);
        // Ok elsewhere does nothing.
        let mut home = Nav::default();
        assert_eq!(press(&mut home, &s, Button::Ok), Action::None);
        assert_eq!(home, Nav::default());
    }

    #[test]
    fn an_alert_page_whose_alert_cleared_shows_the_next_one() {
        let mut s = state();
        s.alerts = alerts();
        let mut nav = Nav {
            page: Page::Alert(Some(7)),
            confirm: Some(7),
        };
        s.alerts[1].acked_by = None;
        s.alerts.remove(0);
        // The confirmation was for alert 7: alert 3, now shown in its place,
        // is not acknowledged by the next OK.
        assert_eq!(
            show(&s, &nav),
            vec![
                "ALERT 1/1 JOB-FAILED",
                "erp: job 12 failed  ",
                "                    ",
                "OK=ack BACK=home    ",
            ]
        );
        assert_eq!(press(&mut nav, &s, Button::Ok), Action::None);
        assert_eq!(nav.confirm, Some(3));
        assert_eq!(press(&mut nav, &s, Button::Ok), Action::Ack(3));
        s.alerts.clear();
        assert_eq!(
            show(&s, &nav)[0..2],
            ["ALERTS              ", "none open           "]
        );
    }

    #[test]
    fn leds_follow_health_jobs_and_media() {
        let mut s = state();
        let l = leds(&s, 0, 10);
        assert_eq!(
            l,
            LedStates {
                power: true,
                activity: false,
                fault: false,
                tape: false
            }
        );
        s.health.state = Some(HealthState::Fault);
        assert!(leds(&s, 0, 10).fault && leds(&s, 10, 10).fault);
        s.health.state = Some(HealthState::Degraded);
        assert!(leds(&s, 0, 10).fault && !leds(&s, 10, 10).fault);
        s.running.push(RunningJob {
            id: 1,
            kind: JobKind::MediaWrite,
            asset: "erp".into(),
            level: None,
            files: 0,
            bytes: 0,
            elapsed_secs: 0,
        });
        assert!(leds(&s, 0, 10).activity && !leds(&s, 10, 10).activity);
        assert!(leds(&s, 0, 10).tape && leds(&s, 10, 10).tape);
    }

    #[test]
    fn wrapping_cuts_on_words_and_marks_what_it_cut() {
        assert_eq!(wrap("short", 2), vec!["short"]);
        assert_eq!(
            wrap("a b c d e f g h i j k l m n o p q r s t u v w x y z", 1),
            vec!["a b c d e f g h i..."]
        );
        assert_eq!(
            wrap("averyveryverylongwordthatcannotfit here", 3),
            vec!["averyveryverylongwor", "dthatcannotfit here"]
        );
        assert_eq!(fit("85°C"), "85?C                ");
        assert_eq!(fit("C:\\x ~1"), "C:/x -1             ");
    }
}
