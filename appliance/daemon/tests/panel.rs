//! The front panel and the health monitor, end to end: the daemon drives
//! the simulated panel (the real drivers over the simulated I2C bus and
//! GPIO pins), the health monitor raises its alerts through the catalog,
//! and a person at the rack acknowledges one with the buttons.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use coffer_panel::SimDevice;
use common::{Client, TestDaemon};
use serde_json::{Value, json};

fn panel(c: &mut Client) -> Value {
    c.ok("panel_show", Value::Null)
}

fn lines(c: &mut Client) -> Vec<String> {
    panel(c)["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// Presses a button as a person would: down for a few samples, then up
/// long enough to be seen released before the next press.
fn press(c: &mut Client, button: &str) {
    c.ok("panel_press", json!({ "button": button }));
    std::thread::sleep(std::time::Duration::from_millis(250));
}

fn open_alerts(c: &mut Client) -> Vec<Value> {
    c.ok("alert_list", json!({})).as_array().unwrap().clone()
}

#[test]
fn the_panel_shows_the_appliance_and_its_buttons_move_between_pages() {
    let d = TestDaemon::start();
    let (mut c, _) = d.admin();
    d.wait_for("the panel's first page", || {
        lines(&mut c)[0].starts_with("COFFER ")
    });
    let p = panel(&mut c);
    assert_eq!(p["backend"], json!("simulated"));
    assert_eq!(p["screen"], json!("identity"));
    assert_eq!(p["leds"]["power"], json!(true));
    assert_eq!(p["backlight"], json!(true));
    for l in p["lines"].as_array().unwrap() {
        assert_eq!(l.as_str().unwrap().chars().count(), 20, "{p}");
    }
    d.wait_for("the health reading on the panel", || {
        lines(&mut c)[2].starts_with("HEALTH ") && !lines(&mut c)[2].contains("...")
    });
    // The simulated sensor answers; its figure reaches status.
    d.wait_for("the panel's temperature", || {
        panel(&mut c)["temperature"].is_number()
    });
    press(&mut c, "down");
    d.wait_for("the health page", || {
        panel(&mut c)["screen"] == json!("health")
    });
    assert!(
        lines(&mut c)[0].starts_with("HEALTH: "),
        "{:?}",
        lines(&mut c)
    );
    press(&mut c, "down");
    d.wait_for("the jobs page", || panel(&mut c)["screen"] == json!("jobs"));
    // Past the system page: 3-2-1-1-0 across the register (the sample
    // asset, never backed up, does not meet it).
    press(&mut c, "down");
    d.wait_for("the system page", || {
        panel(&mut c)["screen"] == json!("system")
    });
    press(&mut c, "down");
    d.wait_for("the compliance page", || {
        panel(&mut c)["screen"] == json!("compliance") && lines(&mut c)[0].contains("met")
    });
    let l = lines(&mut c);
    assert!(l[0].starts_with("3-2-1-1-0: 0/1 met"), "{l:?}");
    assert!(l[1].starts_with("sample-docs: no"), "{l:?}");
    press(&mut c, "back");
    d.wait_for("back home", || panel(&mut c)["screen"] == json!("identity"));
    let e = c.fails("panel_press", json!({"button": "left"}), "invalid");
    assert!(e.contains("up, down, ok or back"), "{e}");
    // Status carries the health figures.
    let s = c.ok("status", Value::Null);
    let h = &s["health"];
    assert!(h["cores"].as_u64().unwrap() >= 1, "{s}");
    assert!(h["memory_total"].as_u64().unwrap() > 0, "{s}");
    assert!(
        h["filesystems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["role"].as_str().unwrap().contains("store")),
        "{s}"
    );
    assert!(
        h["temperatures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["label"] == json!("front panel")),
        "{s}"
    );
}

#[test]
fn a_health_threshold_raises_an_alert_the_panel_shows_and_acknowledges() {
    // The store and state live on a 64 MiB tmpfs of their own: the
    // machine's disk may be nearly full (a CI machine's was, past the
    // clearing threshold below). Its catalog alone fills more than 0.02%
    // of it: the store's filesystem is a FAULT.
    let Some(mut d) = TestDaemon::start_on_tmpfs_with("64m", |c| {
        c.auth.session_idle = coffer_types::api::Duration(7 * 86_400);
        c.health.disk_warn_percent = 0.01;
        c.health.disk_crit_percent = 0.02;
        c.health.check_every = coffer_types::api::Duration(1);
    }) else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the disk threshold is untested"
        );
        return;
    };
    let (mut c, secret) = d.admin();
    d.wait_for("the disk alert", || {
        open_alerts(&mut c)
            .iter()
            .any(|a| a["kind"] == json!("health-disk"))
    });
    let s = c.ok("status", Value::Null);
    assert_eq!(s["health"]["state"], json!("fault"), "{s}");
    assert!(
        s["health"]["reasons"][0].as_str().unwrap().contains("full"),
        "{s}"
    );
    // Without a login, status says FAULT but not why (the reasons quote
    // alert messages).
    let anon = d.client().ok("status", Value::Null);
    assert_eq!(anon["health"]["state"], json!("fault"), "{anon}");
    assert_eq!(anon["health"]["reasons"], json!([]), "{anon}");
    assert_eq!(anon["health"]["findings"], json!([]), "{anon}");
    d.wait_for("FAULT on the panel", || {
        lines(&mut c)[2] == "HEALTH FAULT        "
    });
    assert_eq!(panel(&mut c)["leds"]["fault"], json!(true));

    // Up from the first page wraps to the last alert page; OK twice acks.
    let id = open_alerts(&mut c)
        .iter()
        .find(|a| a["kind"] == json!("health-disk"))
        .unwrap()["id"]
        .clone();
    let mut found = false;
    for _ in 0..8 {
        press(&mut c, "up");
        let l = lines(&mut c);
        if l[0].starts_with("ALERT") && l[0].ends_with("HEALTH-DISK") {
            found = true;
            break;
        }
    }
    assert!(found, "no page for the disk alert: {:?}", lines(&mut c));
    press(&mut c, "ok");
    d.wait_for("the confirmation", || {
        lines(&mut c)[3] == "OK again to ack     "
    });
    press(&mut c, "ok");
    d.wait_for("the acknowledgement", || {
        open_alerts(&mut c)
            .iter()
            .any(|a| a["id"] == id && a["acked_by"] == json!("front-panel"))
    });
    d.wait_for("acked on the panel", || {
        lines(&mut c)[3] == "acked by front-panel"
    });
    let audit = c.ok("audit_list", json!({"filter": {}}));
    let rows = audit.as_array().unwrap();
    assert!(
        rows.iter().any(|e| e["identity"] == json!("front-panel")
            && e["source"] == json!("panel")
            && e["action"] == json!("alert.ack")
            && e["result"] == json!("ok")),
        "{audit}"
    );
    assert!(
        rows.iter().any(|e| e["identity"] == json!("admin")
            && e["action"] == json!("panel.press")
            && e["target"] == json!("button ok")),
        "{audit}"
    );

    // Thresholds the test's tmpfs is far below: the next reading clears
    // the alert.
    let path = d.dir.path().join("cofferd.toml");
    let mut cfg = cofferd::Config::load(&path).unwrap();
    cfg.health = cofferd::config::HealthConfig {
        check_every: coffer_types::api::Duration(1),
        disk_warn_percent: 99.9,
        disk_crit_percent: 100.0,
        ..Default::default()
    };
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    d.next_step();
    c.mfa = Some(d.code(&secret));
    c.ok("reload", Value::Null);
    d.wait_for("the alert to clear", || {
        !open_alerts(&mut c)
            .iter()
            .any(|a| a["kind"] == json!("health-disk"))
    });
    d.stop();
}

#[test]
fn an_absent_lcd_is_a_fault_alert_and_coming_back_clears_it() {
    let d = TestDaemon::start();
    let (mut c, _) = d.admin();
    let sim = d.running.as_ref().unwrap().simulated_panel().unwrap();
    d.wait_for("the first page", || lines(&mut c)[0].starts_with("COFFER "));
    sim.set_present(SimDevice::Lcd, false);
    d.wait_for("the panel alert", || {
        open_alerts(&mut c)
            .iter()
            .any(|a| a["kind"] == json!("panel") && a["subject"] == json!("lcd"))
    });
    let p = panel(&mut c);
    assert!(p["faults"][0].as_str().unwrap().starts_with("lcd: "), "{p}");
    // The daemon goes on: the API answers, the panel thread did not die.
    c.ok("status", Value::Null);
    // And it does not hammer the bus: the absent LCD is retried every 5 s
    // (250 ticks), the sensor read once a second; the LEDs and buttons are
    // on GPIO. 50 ticks of a busy retry would be 50+ transfers a second.
    let before = sim.transfers();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let per_second = sim.transfers() - before;
    assert!(per_second <= 6, "{per_second} I2C transfers in a second");
    sim.set_present(SimDevice::Sensor, false);
    d.wait_for("the sensor fault", || {
        open_alerts(&mut c)
            .iter()
            .any(|a| a["kind"] == json!("panel") && a["subject"] == json!("sensor"))
    });
    sim.set_present(SimDevice::Lcd, true);
    sim.set_present(SimDevice::Sensor, true);
    // The LCD is retried every few seconds, not in a busy loop.
    d.wait_for("the panel alerts to clear", || {
        !open_alerts(&mut c)
            .iter()
            .any(|a| a["kind"] == json!("panel"))
    });
    d.wait_for("the lines back", || lines(&mut c)[0].starts_with("COFFER "));
}

#[test]
fn a_throughput_target_tunes_every_backup_from_the_cached_benchmark() {
    let d = TestDaemon::start_with(|c| {
        c.auth.session_idle = coffer_types::api::Duration(7 * 86_400);
        c.store.target_throughput_mb_s = 20;
        // The measurement this machine's first start would make, taken
        // short: the daemon finds it cached and does not measure again.
        std::fs::create_dir_all(&c.daemon.state_dir).unwrap();
        cofferd::tuning::load_or_measure(&c.daemon.state_dir, 20.0, c.store.threads, 0.01).unwrap();
    });
    let (mut c, _) = d.admin();
    let (_, expected, fresh) =
        cofferd::tuning::load_or_measure(&d.dir.path().join("state"), 20.0, 2, 0.01).unwrap();
    assert!(!fresh);
    d.wait_for("the tuning", || {
        c.ok("status", Value::Null)["codec"]
            .as_str()
            .unwrap()
            .contains("MB/s target")
    });
    let codec = c.ok("status", Value::Null)["codec"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        codec.starts_with(&format!(
            "zstd {} with {} thread(s)",
            expected.zstd_level, expected.threads
        )),
        "{codec}"
    );
    let src = common::sample_tree(d.dir.path());
    c.ok(
        "asset_add",
        json!({"asset": common::asset("fin-01", &src, None)}),
    );
    let id = c.ok("job_run", json!({"asset": "fin-01", "level": "full"}))["job"].clone();
    d.wait_for("the backup", || {
        c.ok("job_get", json!({"id": id}))["status"] == "success"
    });
    let log = c.ok("job_log", json!({"id": id}));
    let want = format!(
        "codec: zstd level {} with {} thread(s), tuned for 20 MB/s",
        expected.zstd_level, expected.threads
    );
    assert!(
        log["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains(&want)),
        "{log}"
    );
}

#[test]
fn a_panel_that_cannot_be_opened_is_an_alert_and_the_service_runs_on() {
    // This build has no Linux panel backend (feature `linux-panel`): the
    // configured panel cannot open, and backups must not care.
    let d = TestDaemon::start_with(|c| {
        c.auth.session_idle = coffer_types::api::Duration(7 * 86_400);
        c.panel.backend = cofferd::config::PanelBackend::Linux;
    });
    let (mut c, _) = d.admin();
    let alert = open_alerts(&mut c)
        .into_iter()
        .find(|a| a["kind"] == json!("panel") && a["subject"] == json!("open"))
        .expect("a panel/open alert");
    assert!(
        alert["message"].as_str().unwrap().contains("linux-panel"),
        "{alert}"
    );
    let p = panel(&mut c);
    assert_eq!(p["backend"], json!("linux"), "{p}");
    let e = c.fails("panel_press", json!({"button": "ok"}), "state");
    assert!(e.contains("real hardware"), "{e}");
    assert!(d.running.as_ref().unwrap().simulated_panel().is_none());
    let src = common::sample_tree(d.dir.path());
    c.ok(
        "asset_add",
        json!({"asset": common::asset("fin-01", &src, None)}),
    );
    let id = c.ok("job_run", json!({"asset": "fin-01", "level": "full"}))["job"].clone();
    d.wait_for("the backup", || {
        c.ok("job_get", json!({"id": id}))["status"] == "success"
    });
}
