//! The front panel at run time: a thread that ticks the panel every
//! [`TICK`] — draws the page [`screens`] renders, sets the LEDs, reads the
//! buttons and the panel's sensor — and turns what it finds into the
//! daemon's actions: a page change, an alert acknowledged at the rack
//! (audited as `front-panel`), a panel fault raised as a `panel` alert
//! through the same path as the RPO monitor (logged once, cleared when the
//! device answers again).
//!
//! The backend comes from `[panel] backend`: the simulated panel (shipped
//! code in `coffer-panel`, the same drivers over a simulated I2C bus and
//! GPIO pins; `coffer panel show` draws it), the Linux I2C and GPIO
//! character devices (feature `linux-panel`), or none.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use coffer_catalog::{Catalog, JobViewFilter};
use coffer_panel::{Button, LedStates, PanelDevice, SimPanel};
use coffer_types::JobStatus;
use coffer_types::api::{PanelLeds, PanelView, Source};

use crate::config::{PanelBackend, PanelConfig};
use crate::screens::{self, Nav, PanelState};
use crate::{Inner, health, scheduler};

/// How often the panel is ticked (buttons sampled, LCD refreshed).
pub const TICK: Duration = Duration::from_millis(20);
/// Ticks between gathering the appliance's state for the screens.
const GATHER_EVERY: u64 = 25;
/// Ticks per LED blink phase.
const BLINK: u64 = 25;
/// The identity a panel action is audited under.
pub const FRONT_PANEL: &str = "front-panel";
/// The alert kind of panel faults.
pub const ALERT_KIND: &str = "panel";

/// What the API reads and the simulated panel's handle.
pub(crate) struct PanelShared {
    backend: PanelBackend,
    sim: Option<SimPanel>,
    view: Mutex<View>,
}

#[derive(Default, Clone)]
struct View {
    lines: [String; 4],
    screen: &'static str,
    leds: LedStates,
    temperature: Option<f32>,
    faults: Vec<String>,
}

impl PanelShared {
    /// The simulated panel's hardware, if that is the backend.
    pub(crate) fn simulated(&self) -> Option<SimPanel> {
        self.sim.clone()
    }

    /// The panel's sensor reading, if it answers, and whether it is the
    /// simulated panel's.
    pub(crate) fn temperature(&self) -> Option<(f32, bool)> {
        self.view().temperature.map(|t| (t, self.sim.is_some()))
    }

    fn view(&self) -> View {
        match self.view.lock() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_view(&self, v: View) {
        match self.view.lock() {
            Ok(mut g) => *g = v,
            Err(p) => *p.into_inner() = v,
        }
    }

    /// What the panel shows. For the simulated panel, the lines and LEDs
    /// are read back from the simulated hardware: what the drivers actually
    /// put on the bus and the pins.
    pub(crate) fn show(&self) -> PanelView {
        let v = self.view();
        let (lines, leds, backlight) = match &self.sim {
            Some(sim) => {
                let s = sim.snapshot();
                (s.lines.to_vec(), s.leds, s.backlight)
            }
            None => (v.lines.to_vec(), v.leds, true),
        };
        PanelView {
            backend: backend_name(self.backend).into(),
            lines,
            screen: if v.screen.is_empty() {
                "starting".into()
            } else {
                v.screen.into()
            },
            leds: PanelLeds {
                power: leds.power,
                activity: leds.activity,
                fault: leds.fault,
                tape: leds.tape,
            },
            backlight,
            temperature: v.temperature,
            faults: v.faults,
        }
    }

    /// Presses a button of the simulated panel.
    pub(crate) fn press(&self, button: Button) -> Result<()> {
        match &self.sim {
            Some(sim) => {
                sim.press(button);
                Ok(())
            }
            None if self.backend == PanelBackend::None => {
                bail!("this appliance has no front panel ([panel] backend = \"none\")")
            }
            None => bail!(
                "the front panel is real hardware: its buttons are pressed at the rack, not over the API"
            ),
        }
    }
}

fn backend_name(b: PanelBackend) -> &'static str {
    match b {
        PanelBackend::Simulated => "simulated",
        PanelBackend::Linux => "linux",
        PanelBackend::None => "none",
    }
}

/// The panel thread, stopped by [`PanelThread::stop`].
pub(crate) struct PanelThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl PanelThread {
    /// Stops the thread; the panel is left showing that the service stopped.
    pub(crate) fn stop(self) {
        drop(self);
    }
}

impl Drop for PanelThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The shared part of an opened panel, and its device (none for `none`).
pub(crate) type Opened = (Arc<PanelShared>, Option<Box<dyn PanelDevice>>);

/// Opens the configured panel: the shared part (for `Inner`) and the device
/// (for [`spawn`]). `None` for `backend = "none"`.
pub(crate) fn open(cfg: &PanelConfig) -> Result<Opened> {
    let pc = coffer_panel::PanelConfig {
        lcd_address: cfg.lcd_address,
        sensor_address: cfg.sensor_address,
        leds_active_low: cfg.leds_active_low,
        buttons_active_low: cfg.buttons_active_low,
        ..coffer_panel::PanelConfig::default()
    };
    let (sim, device): (Option<SimPanel>, Option<Box<dyn PanelDevice>>) = match cfg.backend {
        PanelBackend::None => (None, None),
        PanelBackend::Simulated => {
            // The simulated devices are wired the default way whatever the
            // configuration says about the real panel's addresses and
            // polarities.
            let sim = SimPanel::new();
            let dev = coffer_panel::simulated(&sim, coffer_panel::PanelConfig::default());
            (Some(sim), Some(Box::new(dev)))
        }
        PanelBackend::Linux => (None, Some(open_linux(cfg, pc)?)),
    };
    Ok((shared(cfg.backend, sim), device))
}

/// The API's side of a panel with no device behind it: `backend = "none"`,
/// or a configured panel that could not be opened (its backend is still
/// reported; the `panel`/`open` alert says why it is dark).
pub(crate) fn without_device(backend: PanelBackend) -> Arc<PanelShared> {
    shared(backend, None)
}

fn shared(backend: PanelBackend, sim: Option<SimPanel>) -> Arc<PanelShared> {
    Arc::new(PanelShared {
        backend,
        sim,
        view: Mutex::new(View::default()),
    })
}

#[cfg(feature = "linux-panel")]
fn open_linux(cfg: &PanelConfig, pc: coffer_panel::PanelConfig) -> Result<Box<dyn PanelDevice>> {
    let l = coffer_panel::linux::LinuxPanelConfig {
        i2c_bus: cfg.i2c_bus.clone(),
        gpio_chip: cfg.gpio_chip.clone(),
        led_lines: cfg.led_lines,
        button_lines: cfg.button_lines,
        panel: pc,
    };
    coffer_panel::linux::open(&l).map_err(|e| anyhow::anyhow!("opening the front panel: {e}"))
}

#[cfg(not(feature = "linux-panel"))]
fn open_linux(_: &PanelConfig, _: coffer_panel::PanelConfig) -> Result<Box<dyn PanelDevice>> {
    bail!(
        "[panel] backend = \"linux\" needs cofferd built with the `linux-panel` feature; \
         use \"simulated\" or \"none\""
    )
}

/// Starts the panel thread.
pub(crate) fn spawn(inner: Arc<Inner>, device: Box<dyn PanelDevice>) -> Result<PanelThread> {
    let stop = Arc::new(AtomicBool::new(false));
    let handle = std::thread::Builder::new().name("panel".into()).spawn({
        let stop = stop.clone();
        move || run(&inner, device, &stop)
    })?;
    Ok(PanelThread {
        stop,
        handle: Some(handle),
    })
}

fn run(inner: &Inner, mut device: Box<dyn PanelDevice>, stop: &AtomicBool) {
    let mut nav = Nav::default();
    let mut state = PanelState::default();
    let mut tick: u64 = 0;
    let mut last_press = Instant::now();
    let mut faults = open_faults(inner);
    let mut temperature = None;
    let mut gather_failed = false;
    let mut dirty = true;
    let mut next_run = NextRunCache::default();
    let mut idle = Duration::from_secs(inner.config().panel.idle_return.secs());
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        if dirty || tick.is_multiple_of(GATHER_EVERY) {
            idle = Duration::from_secs(inner.config().panel.idle_return.secs());
            match gather(inner, temperature, &mut next_run) {
                Ok(s) => {
                    state = s;
                    if gather_failed {
                        tracing::info!("the panel reads the appliance's state again");
                    }
                    gather_failed = false;
                }
                Err(e) => {
                    if !gather_failed {
                        tracing::error!(error = %format!("{e:#}"), "the panel cannot read the appliance's state");
                    }
                    gather_failed = true;
                }
            }
            dirty = false;
        }
        if nav != Nav::default() && last_press.elapsed() >= idle {
            nav = Nav::default();
        }
        let lines = screens::render(&state, &nav);
        let screen = screens::page_name(&state, &nav);
        let leds = screens::leds(&state, tick, BLINK);
        let t = device.tick(&lines, leds);
        for b in t.events {
            last_press = Instant::now();
            if let screens::Action::Ack(id) = screens::press(&mut nav, &state, b) {
                acknowledge(inner, id);
                dirty = true;
            }
        }
        temperature = t.temperature;
        // What was drawn this tick (a press shows from the next one),
        // before its faults become alerts: whoever sees the alert sees the
        // fault on the panel's view too.
        inner.panel.set_view(View {
            lines,
            screen,
            leds,
            temperature,
            faults: t
                .faults
                .iter()
                .map(|f| format!("{}: {}", f.component.name(), f.message))
                .collect(),
        });
        note_faults(inner, &mut faults, &t.faults);
        tick = tick.wrapping_add(1);
        if let Some(rest) = TICK.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let stopped = [
        format!("COFFER {}", inner.host),
        "service stopped".to_string(),
        String::new(),
        String::new(),
    ]
    .map(|l| screens::fit(&l));
    let _ = device.tick(&stopped, LedStates::default());
}

/// Acknowledges an alert from the panel's OK button.
fn acknowledge(inner: &Inner, id: i64) {
    let now = inner.now_ms();
    let cat = match inner.catalog() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, alert = id, "cannot acknowledge an alert from the panel");
            return;
        }
    };
    let r = cat.ack_alert(id, FRONT_PANEL, now);
    let (result, detail) = match &r {
        Ok(()) => ("ok", "acknowledged on the front panel".to_string()),
        Err(e) => ("failed", e.to_string()),
    };
    inner.audit(
        &cat,
        FRONT_PANEL,
        Source::Panel,
        "alert.ack",
        &format!("alert {id}"),
        result,
        &detail,
    );
    match r {
        Ok(()) => tracing::info!(alert = id, "alert acknowledged on the front panel"),
        Err(e) => {
            tracing::warn!(alert = id, error = %e, "the panel could not acknowledge an alert")
        }
    }
}

/// The panel faults a previous run left open as alerts (so one that ended
/// while the daemon was down is cleared at the first tick). The alert for
/// a panel that could not be opened (`open`) is the start's to manage.
fn open_faults(inner: &Inner) -> BTreeMap<String, String> {
    let Ok(cat) = inner.catalog() else {
        return BTreeMap::new();
    };
    cat.alerts(false)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.kind == ALERT_KIND && a.subject != "open")
        .map(|a| (a.subject, a.message))
        .collect()
}

/// Logs a panel fault once when it appears and once when it clears, and
/// raises and clears its `panel` alert (subject: the component).
fn note_faults(
    inner: &Inner,
    known: &mut BTreeMap<String, String>,
    now_faults: &[coffer_panel::Fault],
) {
    let current: BTreeMap<String, String> = now_faults
        .iter()
        .map(|f| (f.component.name().to_string(), f.message.clone()))
        .collect();
    if current.keys().eq(known.keys()) {
        return;
    }
    let Ok(cat) = inner.catalog() else {
        return;
    };
    let now = inner.now_ms();
    // `known` changes one entry at a time, only when its alert was written:
    // a catalog error is tried again at the next tick.
    for (c, msg) in &current {
        if !known.contains_key(c) && raise(inner, &cat, c, &format!("front panel {c}: {msg}"), now)
        {
            tracing::warn!(component = %c, "front panel fault: {msg}");
            known.insert(c.clone(), msg.clone());
        }
    }
    let ended: Vec<String> = known
        .keys()
        .filter(|c| !current.contains_key(*c))
        .cloned()
        .collect();
    for c in ended {
        match cat.clear_alert(ALERT_KIND, &c, now) {
            Ok(cleared) => {
                if cleared {
                    inner.audit(
                        &cat,
                        "system",
                        Source::System,
                        "alert.clear",
                        &c,
                        ALERT_KIND,
                        "the panel component answers again",
                    );
                }
                tracing::info!(component = %c, "front panel fault cleared");
                known.remove(&c);
            }
            Err(e) => tracing::error!(error = %e, "cannot clear a panel alert"),
        }
    }
}

/// Raises a panel alert; false if the catalog refused.
fn raise(inner: &Inner, cat: &Catalog, subject: &str, message: &str, now: i64) -> bool {
    match cat.raise_alert(ALERT_KIND, subject, message, now) {
        Ok(r) => {
            if r.new {
                inner.audit(
                    cat,
                    "system",
                    Source::System,
                    "alert.raise",
                    subject,
                    ALERT_KIND,
                    message,
                );
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot raise a panel alert");
            false
        }
    }
}

/// The next scheduled run, planned over the whole register: computed every
/// [`NEXT_RUN_EVERY`], not at every gathering.
#[derive(Default)]
struct NextRunCache {
    run: Option<coffer_types::api::NextRun>,
    planned: Option<(Instant, i64)>,
    /// The 3-2-1-1-0 page, worked out at the same pace.
    compliance: Option<screens::Compliance>,
}

/// How often the jobs page's "next run" is planned again.
const NEXT_RUN_EVERY: Duration = Duration::from_secs(10);

/// Gathers what the screens show.
fn gather(
    inner: &Inner,
    panel_temp: Option<f32>,
    next_run: &mut NextRunCache,
) -> Result<PanelState> {
    let config = inner.config();
    let tz = config.time_zone();
    let now = inner.now_ms();
    let report = match inner.health.read() {
        Ok(h) => h.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let cat = inner.catalog()?;
    let alerts = cat.alerts(false)?;
    let running = cat.job_views(&JobViewFilter {
        status: Some(JobStatus::Running),
        ..Default::default()
    })?;
    let queued = cat
        .job_views(&JobViewFilter {
            status: Some(JobStatus::Queued),
            ..Default::default()
        })?
        .len();
    // Again when it is old, when the clock moved backwards or past the
    // planned run.
    let stale = match next_run.planned {
        None => true,
        Some((at, planned_now)) => {
            at.elapsed() >= NEXT_RUN_EVERY
                || now < planned_now
                || next_run.run.as_ref().is_some_and(|r| r.at_ms <= now)
        }
    };
    if stale {
        next_run.run = scheduler::next_runs(&cat, now, &tz, 1)?.into_iter().next();
        next_run.compliance = crate::compliance::all(inner, &cat, now).ok().map(|c| {
            let unmet = c.iter().find(|a| !a.met);
            screens::Compliance {
                met: c.iter().filter(|a| a.met).count(),
                assets: c.len(),
                first_unmet: unmet.map(|a| {
                    (
                        a.asset.clone(),
                        a.missing.first().cloned().unwrap_or_default(),
                    )
                }),
            }
        });
        next_run.planned = Some((Instant::now(), now));
    }
    drop(cat);
    let local = |ms: i64, fmt: &str| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_zoned(tz.clone()).strftime(fmt).to_string())
            .unwrap_or_default()
    };
    let health = match &report {
        Some(r) => {
            let (state, reasons) = health::overall(&r.findings, &alerts);
            screens::Health {
                state: Some(state),
                reasons,
            }
        }
        None => screens::Health::default(),
    };
    let figures = report
        .as_ref()
        .map(|r| &r.figures)
        .map(|r| screens::Figures {
            cpu_percent: r.cpu_percent,
            load1: r.load[0],
            memory_percent: if r.memory_total == 0 {
                0.0
            } else {
                r.memory_used as f64 * 100.0 / r.memory_total as f64
            },
            memory_total: r.memory_total,
            disk: r
                .filesystems
                .iter()
                .max_by(|a, b| a.percent().total_cmp(&b.percent()))
                .map(|f| (f.role.clone(), f.percent())),
            cpu_temp: r
                .temperatures
                .iter()
                .filter(|t| t.label != health::PANEL_SENSOR)
                .map(|t| t.celsius)
                .max_by(f32::total_cmp),
            panel_temp,
        });
    Ok(PanelState {
        host: inner.host.clone(),
        address: report
            .as_ref()
            .and_then(|r| r.figures.addresses.first().cloned()),
        version: env!("CARGO_PKG_VERSION").into(),
        clock: local(now, "%H:%M %Z"),
        health,
        running: running
            .into_iter()
            .map(|j| {
                let p = inner.jobs.progress(j.record.id).unwrap_or_default();
                let started = j
                    .record
                    .started
                    .parse::<jiff::Timestamp>()
                    .map(|t| t.as_millisecond())
                    .unwrap_or(now);
                screens::RunningJob {
                    id: j.record.id,
                    kind: j.record.kind,
                    asset: j.record.asset.unwrap_or_default(),
                    level: j.record.level,
                    files: p.files,
                    bytes: p.bytes,
                    elapsed_secs: u64::try_from((now - started) / 1000).unwrap_or(0),
                }
            })
            .collect(),
        queued: u32::try_from(queued).unwrap_or(u32::MAX),
        next_run: next_run.run.as_ref().map(|n| screens::NextRun {
            asset: n.asset.clone(),
            level: n.level,
            when: local(n.at_ms, "%a %H:%M"),
        }),
        figures,
        alerts: alerts
            .into_iter()
            .map(|a| screens::PanelAlert {
                id: a.id,
                kind: a.kind,
                subject: a.subject,
                message: a.message,
                acked_by: a.acked_by,
            })
            .collect(),
        ack_allowed: config.panel.ack_alerts,
        compliance: next_run.compliance.clone(),
    })
}

/// Parses a button name for the API.
pub(crate) fn parse_button(s: &str) -> Result<Button> {
    s.parse::<Button>()
        .map_err(|_| anyhow::anyhow!("unknown button '{s}': up, down, ok or back"))
}
