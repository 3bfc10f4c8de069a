//! Doing what a command asks against the daemon: the prompts it needs, the
//! calls, and what the daemon's refusals lead to — a TOTP prompt and one
//! retry for `fresh_mfa_required`, an offer to log in again (and a retry)
//! for an ended session — then the result, rendered or as JSON, and an
//! exit code. The interactive shell and `coffer remote` share it.

use std::io::{self, IsTerminal, Write};
use std::time::Duration as StdDuration;

use coffer_types::JobStatus;
use coffer_types::api::{
    ApiError, AssetView, Call, Credential, DaemonStatus, ErrorCode, JobView, LoginResult, Profile,
    Secret,
};
use serde_json::{Value, json};
use zeroize::{Zeroize, Zeroizing};

use super::client::{CallError, Client};
use super::commands::{Action, UsageError};
use super::prompt::Prompt;
use super::render;
use super::sigint::Watching;
use crate::cli::{EXIT_FAILED, EXIT_OK};

/// Exit code: the command line was wrong.
pub const EXIT_USAGE: u8 = 2;

/// How often `job watch` asks for the job.
const WATCH_INTERVAL: StdDuration = StdDuration::from_millis(500);

/// Why a command did not complete.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The daemon refused, or could not be reached.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The line was wrong.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// An answer could not be read (end of input, no terminal).
    #[error("{0}")]
    Input(#[from] io::Error),
    /// Anything else, said in a sentence.
    #[error("{0}")]
    Other(String),
}

impl Failure {
    fn code(&self) -> Option<ErrorCode> {
        match self {
            Failure::Call(e) => e.code(),
            _ => None,
        }
    }
}

/// A connection to the daemon with who is logged in, and where prompts,
/// results and errors go.
pub struct Session {
    /// The connection.
    pub client: Client,
    /// Who to ask.
    pub prompt: Box<dyn Prompt>,
    /// Results.
    pub out: Box<dyn Write>,
    /// Errors, notes, progress.
    pub err: Box<dyn Write>,
    /// Raw JSON results.
    pub json: bool,
    /// Terminal colors allowed on `out`.
    pub color: bool,
    /// Whether the interactive shell runs this (hints name shell commands;
    /// an ended session is offered a new login).
    pub interactive: bool,
    /// The logged-in user.
    pub user: Option<String>,
    /// The daemon's host name.
    pub host: String,
    /// A TOTP code to answer `fresh_mfa_required` with when nobody can be
    /// asked (`COFFER_MFA_CODE`).
    pub mfa_code: Option<String>,
    /// A live progress line on standard error (a terminal).
    pub progress: bool,
}

impl Session {
    /// A session writing to standard output and error.
    pub fn new(client: Client, prompt: Box<dyn Prompt>, json: bool, interactive: bool) -> Session {
        Session {
            client,
            prompt,
            out: Box::new(io::stdout()),
            err: Box::new(io::stderr()),
            json,
            color: io::stdout().is_terminal(),
            interactive,
            user: None,
            host: String::new(),
            mfa_code: None,
            progress: io::stderr().is_terminal(),
        }
    }

    /// `coffer(alice@coffer1)> `, or `coffer(coffer1)> ` before a login.
    pub fn prompt_text(&self) -> String {
        match &self.user {
            Some(u) => format!("coffer({u}@{})> ", self.host),
            None => format!("coffer({})> ", self.host),
        }
    }

    fn note(&mut self, s: &str) {
        let _ = writeln!(self.err, "{s}");
    }

    /// Sends `call`; answers `fresh_mfa_required` with a TOTP code and an
    /// ended session with a new login, retrying once each.
    pub fn request(&mut self, call: &Call) -> Result<Value, Failure> {
        let mut mfa: Option<Zeroizing<String>> = None;
        let mut mfa_asked = false;
        let mut relogged = false;
        loop {
            let r = self.client.call(call, mfa.as_deref().map(String::as_str));
            let e = match r {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            match e.code() {
                Some(ErrorCode::FreshMfaRequired) if !mfa_asked => {
                    mfa_asked = true;
                    if self.prompt.can_ask() {
                        self.note(&format!("{e}: a current TOTP code confirms it"));
                        mfa = Some(Zeroizing::new(self.prompt.line("TOTP code: ")?));
                    } else if let Some(c) = self.mfa_code.clone() {
                        mfa = Some(Zeroizing::new(c));
                    } else {
                        return Err(e.into());
                    }
                }
                Some(ErrorCode::SessionExpired | ErrorCode::Unauthenticated)
                    if self.interactive && !relogged && self.prompt.can_ask() =>
                {
                    relogged = true;
                    self.note(if e.code() == Some(ErrorCode::SessionExpired) {
                        "your session has expired"
                    } else {
                        "you are not logged in"
                    });
                    if !self.prompt.confirm("log in again? [Y/n] ")? {
                        return Err(e.into());
                    }
                    let user = self.user.clone();
                    self.login(user)?;
                    mfa = None;
                    mfa_asked = false;
                }
                _ => return Err(e.into()),
            }
        }
    }

    /// Asks for what is missing and logs in; the session credential then
    /// goes with every request.
    pub fn login(&mut self, user: Option<String>) -> Result<LoginResult, Failure> {
        let user = match user {
            Some(u) => u,
            None => self.prompt.line("login: ")?.trim().to_string(),
        };
        if user.is_empty() {
            return Err(Failure::Other("no user name given".into()));
        }
        let password = self.prompt.secret("password: ")?;
        let code = self.prompt.line("TOTP code: ")?.trim().to_string();
        self.login_with(&user, &password, &code)
    }

    /// Logs in with these.
    pub fn login_with(
        &mut self,
        user: &str,
        password: &str,
        code: &str,
    ) -> Result<LoginResult, Failure> {
        let mut call = Call::Login {
            user: user.to_string(),
            password: password.to_string(),
            code: code.to_string(),
        };
        let r = self.client.call(&call, None);
        if let Call::Login { password, .. } = &mut call {
            password.zeroize();
        }
        let l: LoginResult = serde_json::from_value(r?)
            .map_err(|e| Failure::Other(format!("unexpected login result from cofferd: {e}")))?;
        self.client.credential = Some(Credential::Session(l.session.clone()));
        self.user = Some(l.user.clone());
        if let Some(left) = l.recovery_codes_left {
            self.note(&format!(
                "warning: you logged in with a recovery code; {left} left. Enroll a new \
                 authenticator soon (an administrator runs 'user reset-mfa {}').",
                l.user
            ));
        }
        Ok(l)
    }

    /// Runs an action and reports its outcome; returns the exit code.
    pub fn execute(&mut self, action: Action, json: bool) -> u8 {
        let json = json || self.json;
        match self.run(action, json) {
            Ok(code) => code,
            Err(f) => {
                self.report(&f, json);
                match f {
                    Failure::Usage(_) => EXIT_USAGE,
                    _ => EXIT_FAILED,
                }
            }
        }
    }

    /// Prints a failure as `error: …` with a hint for codes the operator
    /// can act on; with `json`, also as a JSON object on standard output.
    pub fn report(&mut self, f: &Failure, json: bool) {
        if json {
            let (code, message) = match f {
                Failure::Call(CallError::Api(ApiError { code, message })) => (
                    serde_json::to_value(code).unwrap_or(Value::Null),
                    message.clone(),
                ),
                Failure::Usage(u) => (json!("usage"), u.message.clone()),
                other => (json!("client"), other.to_string()),
            };
            let _ = writeln!(
                self.out,
                "{}",
                serde_json::to_string_pretty(&json!({"error": {"code": code, "message": message}}))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(self.err, "error: {f}");
        if let Some(h) = self.hint(f) {
            let _ = writeln!(self.err, "hint: {h}");
        }
    }

    fn hint(&self, f: &Failure) -> Option<String> {
        let shell = self.interactive;
        Some(match f.code()? {
            ErrorCode::SessionExpired => if shell {
                "your session ended (idle timeout or logout): 'login' starts a new one"
            } else {
                "log in again, or give scripts an API token in COFFER_TOKEN"
            }
            .into(),
            ErrorCode::Unauthenticated => if shell {
                "'login' to log in"
            } else {
                "set COFFER_TOKEN to an API token ('token create'), or run on a terminal to log in"
            }
            .into(),
            ErrorCode::FreshMfaRequired => if shell {
                "this action needs a TOTP code from the last few minutes: run 'mfa', then try again"
            } else {
                "this action needs a current TOTP code: run on a terminal, or set COFFER_MFA_CODE"
            }
            .into(),
            ErrorCode::LockedOut => {
                "too many failed logins: wait, or ask an administrator to run 'user unlock NAME'"
                    .into()
            }
            ErrorCode::Forbidden => "your roles do not allow this ('whoami' shows them)".into(),
            ErrorCode::LoginFailed => {
                "the user, the password or the code is wrong (which one is not said, on purpose)"
                    .into()
            }
            _ => return None,
        })
    }

    /// Shows a call's result: JSON, or rendered; returns the exit code the
    /// result implies.
    fn show(&mut self, call: &Call, v: &Value, json: bool) -> Result<u8, Failure> {
        if json {
            writeln!(
                self.out,
                "{}",
                serde_json::to_string_pretty(v).map_err(|e| Failure::Other(e.to_string()))?
            )?;
            // A damaged audit log is damage, in JSON too.
            if matches!(call, Call::AuditVerify)
                && v.get("ok").and_then(Value::as_bool) == Some(false)
            {
                return Ok(crate::cli::EXIT_DAMAGED);
            }
            return Ok(EXIT_OK);
        }
        match render::render(call, v, self.color) {
            Ok(r) => {
                self.out.write_all(r.text.as_bytes())?;
                Ok(r.code)
            }
            Err(e) => {
                self.note(&format!("note: {e}; the result as JSON:"));
                writeln!(
                    self.out,
                    "{}",
                    serde_json::to_string_pretty(v).unwrap_or_default()
                )?;
                Ok(EXIT_OK)
            }
        }
    }

    fn call_and_show(&mut self, call: &Call, json: bool) -> Result<u8, Failure> {
        let v = self.request(call)?;
        self.show(call, &v, json)
    }

    fn new_password(&mut self, what: &str) -> Result<Zeroizing<String>, Failure> {
        let p = self.prompt.secret(&format!("{what}: "))?;
        let again = self.prompt.secret(&format!("repeat {what}: "))?;
        if *p != *again {
            return Err(Failure::Other(
                "the passwords differ; nothing changed".into(),
            ));
        }
        if p.is_empty() {
            return Err(Failure::Other("an empty password; nothing changed".into()));
        }
        Ok(p)
    }

    fn run(&mut self, action: Action, json: bool) -> Result<u8, Failure> {
        match action {
            Action::Call(call) => self.call_and_show(&call, json),
            Action::Help(topic) => {
                let h = super::commands::help(&topic)?;
                self.out.write_all(h.as_bytes())?;
                Ok(EXIT_OK)
            }
            Action::Exit => Ok(EXIT_OK),
            Action::Login { user } => {
                let l = self.login(user)?;
                if json {
                    writeln!(
                        self.out,
                        "{}",
                        serde_json::to_string_pretty(&json!({
                            "user": l.user, "roles": l.roles,
                            "idle_timeout_secs": l.idle_timeout_secs,
                            "recovery_codes_left": l.recovery_codes_left,
                        }))
                        .unwrap_or_default()
                    )?;
                } else {
                    writeln!(
                        self.out,
                        "logged in as {} ({}); the session ends after {} idle",
                        l.user,
                        render::roles(&l.roles),
                        coffer_types::api::Duration(l.idle_timeout_secs)
                    )?;
                }
                Ok(EXIT_OK)
            }
            Action::Logout => {
                let r = self.request(&Call::Logout);
                self.client.credential = None;
                self.user = None;
                let v = r?;
                self.show(&Call::Logout, &v, json)
            }
            Action::Passwd => {
                let old = self.prompt.secret("current password: ")?;
                let new = self.new_password("new password")?;
                let mut call = Call::Passwd {
                    old: old.to_string(),
                    new: new.to_string(),
                };
                let r = self.request(&call);
                if let Call::Passwd { old, new } = &mut call {
                    old.zeroize();
                    new.zeroize();
                }
                let v = r?;
                self.show(&call, &v, json)
            }
            Action::MfaVerify => {
                let code = self.prompt.line("TOTP code: ")?.trim().to_string();
                self.call_and_show(&Call::MfaVerify { code }, json)
            }
            Action::UserAdd { name, roles } => {
                let password = self.new_password(&format!("initial password for '{name}'"))?;
                let mut call = Call::UserAdd {
                    name,
                    password: password.to_string(),
                    roles,
                };
                let r = self.request(&call);
                if let Call::UserAdd { password, .. } = &mut call {
                    password.zeroize();
                }
                let v = r?;
                self.show(&call, &v, json)
            }
            Action::AssetEdit { name, edit } => {
                let v = self.request(&Call::AssetGet { name: name.clone() })?;
                let view: AssetView = serde_json::from_value(v)
                    .map_err(|e| Failure::Other(format!("unexpected asset from cofferd: {e}")))?;
                let mut asset = view.asset;
                edit.apply(&mut asset);
                self.call_and_show(&Call::AssetUpdate { asset }, json)
            }
            Action::ProfileEdit { name, edit } => {
                let v = self.request(&Call::ProfileGet { name: name.clone() })?;
                let mut profile: Profile = serde_json::from_value(v)
                    .map_err(|e| Failure::Other(format!("unexpected profile from cofferd: {e}")))?;
                edit.apply(&mut profile);
                self.call_and_show(&Call::ProfileUpdate { profile }, json)
            }
            Action::AssetImport { file, replace } => {
                let csv = std::fs::read_to_string(&file).map_err(|e| {
                    Failure::Other(format!("cannot read '{}': {e}", file.display()))
                })?;
                self.call_and_show(&Call::AssetImport { csv, replace }, json)
            }
            Action::JobRun {
                asset,
                level,
                watch,
            } => {
                let call = Call::JobRun { asset, level };
                let v = self.request(&call)?;
                if !watch {
                    return self.show(&call, &v, json);
                }
                let id = v.get("job").and_then(Value::as_i64).ok_or_else(|| {
                    Failure::Other("unexpected result from cofferd: no job id".into())
                })?;
                if !json {
                    self.show(&call, &v, false)?;
                }
                self.watch(id, json)
            }
            Action::JobWatch { id } => self.watch(id, json),
            Action::PanelPress { button } => {
                self.request(&Call::PanelPress { button })?;
                // The panel thread samples the buttons every 20 ms and
                // debounces over a few samples: give it a moment.
                std::thread::sleep(StdDuration::from_millis(300));
                self.call_and_show(&Call::PanelShow, json)
            }
            Action::PanelWatch => self.panel_watch(json),
            Action::RemoteAdd {
                mut spec,
                secret_file,
            } => {
                if let Some(s3) = &mut spec.s3
                    && s3.access_key_id.is_some()
                {
                    let secret = self.secret(secret_file.as_deref(), "secret access key: ")?;
                    s3.secret_access_key = Some(Secret(secret.to_string()));
                }
                self.call_and_show(&Call::RemoteAdd { remote: spec }, json)
            }
            Action::RemotePair { name, fingerprint } => {
                let first = Call::RemotePair {
                    name: name.clone(),
                    fingerprint: fingerprint.clone(),
                };
                let v = self.request(&first)?;
                let theirs = v.get("theirs").and_then(Value::as_str).map(str::to_string);
                let paired = v.get("paired").and_then(Value::as_bool).unwrap_or(false);
                if fingerprint.is_some() || paired || json || !self.prompt.can_ask() {
                    return self.show(&first, &v, json);
                }
                let Some(theirs) = theirs else {
                    return self.show(&first, &v, json);
                };
                let ours = v.get("ours").and_then(Value::as_str).unwrap_or_default();
                writeln!(
                    self.out,
                    "this appliance: {ours}\n'{name}' presents: {theirs}"
                )?;
                let answer = self.prompt.line(&format!(
                    "does '{name}''s console ('remote list' there) show {theirs}? [y/N] "
                ))?;
                if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                    writeln!(self.out, "not paired")?;
                    return Ok(EXIT_FAILED);
                }
                self.call_and_show(
                    &Call::RemotePair {
                        name,
                        fingerprint: Some(theirs),
                    },
                    json,
                )
            }
            Action::ReplicateRun { remote, watch } => {
                self.queue(&Call::ReplicateRun { remote }, watch, json)
            }
            Action::RemoteRestore {
                remote,
                store,
                snapshot,
                target,
                passphrase_file,
                watch,
            } => {
                let pass = self.secret(passphrase_file.as_deref(), "the copy's passphrase: ")?;
                let call = Call::RemoteRestore {
                    remote,
                    store,
                    snapshot,
                    target,
                    passphrase: Secret(pass.to_string()),
                };
                self.queue(&call, watch, json)
            }
        }
    }

    /// A secret from a file (its first line) or, without one, a prompt
    /// that does not echo.
    fn secret(
        &mut self,
        file: Option<&std::path::Path>,
        prompt: &str,
    ) -> Result<Zeroizing<String>, Failure> {
        match file {
            Some(f) => {
                let text =
                    Zeroizing::new(std::fs::read_to_string(f).map_err(|e| {
                        Failure::Other(format!("cannot read '{}': {e}", f.display()))
                    })?);
                Ok(Zeroizing::new(
                    text.trim_end_matches(['\n', '\r']).to_string(),
                ))
            }
            None => Ok(self.prompt.secret(prompt)?),
        }
    }

    /// Sends a call that queues a job; with `watch`, follows the job.
    fn queue(&mut self, call: &Call, watch: bool, json: bool) -> Result<u8, Failure> {
        let v = self.request(call)?;
        match v.get("job").and_then(Value::as_i64) {
            Some(id) if watch => {
                if !json {
                    self.show(call, &v, false)?;
                }
                self.watch(id, json)
            }
            _ => self.show(call, &v, json),
        }
    }

    /// Redraws the front panel every half second until Ctrl-C (on a
    /// terminal in place; otherwise each frame that differs is printed).
    fn panel_watch(&mut self, json: bool) -> Result<u8, Failure> {
        let guard = Watching::start();
        let mut last = String::new();
        let mut drawn_lines = 0usize;
        loop {
            let v = self.request(&Call::PanelShow)?;
            let frame = if json {
                format!(
                    "{}\n",
                    serde_json::to_string(&v).map_err(|e| Failure::Other(e.to_string()))?
                )
            } else {
                render::render(&Call::PanelShow, &v, self.color)
                    .map(|r| r.text)
                    .map_err(Failure::Other)?
            };
            if frame != last {
                if self.progress && drawn_lines > 0 {
                    // Move up over the previous frame and clear to the end.
                    write!(self.out, "\x1b[{drawn_lines}A\x1b[J")?;
                }
                self.out.write_all(frame.as_bytes())?;
                self.out.flush()?;
                drawn_lines = frame.lines().count();
                last = frame;
            }
            let mut slept = StdDuration::ZERO;
            while slept < WATCH_INTERVAL && !guard.interrupted() {
                std::thread::sleep(StdDuration::from_millis(50));
                slept += StdDuration::from_millis(50);
            }
            if guard.interrupted() {
                return Ok(EXIT_OK);
            }
        }
    }

    /// Follows a job every half second until it ends, with a live line on
    /// a terminal (status changes otherwise); then shows it in full.
    fn watch(&mut self, id: i64, json: bool) -> Result<u8, Failure> {
        let guard = Watching::start();
        let bar = (!json && self.progress).then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            {
                b.set_style(style);
            }
            b.enable_steady_tick(StdDuration::from_millis(100));
            b
        });
        let mut last_status: Option<JobStatus> = None;
        let result = loop {
            let call = Call::JobGet { id };
            let v = match self.request(&call) {
                Ok(v) => v,
                Err(e) => break Err(e),
            };
            let j: JobView = match serde_json::from_value(v.clone()) {
                Ok(j) => j,
                Err(e) => break Err(Failure::Other(format!("unexpected job from cofferd: {e}"))),
            };
            let r = &j.record;
            let running = matches!(r.status, JobStatus::Queued | JobStatus::Running);
            if !running {
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                self.show(&call, &v, json)?;
                break Ok(render::job_exit_code(r.status));
            }
            let what = format!(
                "job {id}: {} {}{}",
                r.kind.as_str(),
                r.asset.as_deref().unwrap_or(""),
                r.level.map(|l| format!(" ({l})")).unwrap_or_default()
            );
            let progress = j
                .progress
                .map(|p| {
                    format!(
                        " — {} entries, {} files, {}",
                        p.entries,
                        p.files,
                        crate::output::size(p.bytes)
                    )
                })
                .unwrap_or_default();
            match &bar {
                Some(b) => b.set_message(format!("{what}: {}{progress}", r.status.as_str())),
                None => {
                    if last_status != Some(r.status) && !json {
                        self.note(&format!("{what}: {}", r.status.as_str()));
                    }
                }
            }
            last_status = Some(r.status);
            // Sleep in slices so Ctrl-C is noticed at once.
            let mut slept = StdDuration::ZERO;
            while slept < WATCH_INTERVAL && !guard.interrupted() {
                std::thread::sleep(StdDuration::from_millis(50));
                slept += StdDuration::from_millis(50);
            }
            if guard.interrupted() {
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                self.note(&format!(
                    "stopped watching job {id}; it goes on ('job cancel {id}' cancels it)"
                ));
                break Ok(EXIT_FAILED);
            }
        };
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        result
    }

    /// The daemon's state (no login needed).
    pub fn status(&mut self) -> Result<DaemonStatus, Failure> {
        let v = self.client.call(&Call::Status, None)?;
        serde_json::from_value(v)
            .map_err(|e| Failure::Other(format!("unexpected status from cofferd: {e}")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::remote::commands::{Ctx, parse_line};
    use crate::remote::prompt::Script;
    use std::cell::RefCell;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;
    use std::path::{Path, PathBuf};
    use std::rc::Rc;
    use std::thread::JoinHandle;

    /// A writer tests can read back.
    #[derive(Clone, Default)]
    pub struct Buf(pub Rc<RefCell<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.borrow()).into_owned()
        }
    }

    /// A fake daemon that answers by a function of the request, and
    /// returns the requests.
    pub fn daemon(
        dir: &Path,
        answer: impl Fn(usize, &Value) -> Value + Send + 'static,
    ) -> (PathBuf, JoinHandle<Vec<Value>>) {
        let path = dir.join("control.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let h = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            let mut got = Vec::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let req: Value = serde_json::from_str(&line).unwrap();
                let mut resp = answer(got.len(), &req);
                resp["id"] = req["id"].clone();
                got.push(req);
                writeln!(w, "{resp}").unwrap();
            }
            got
        });
        (path, h)
    }

    pub fn okv(v: Value) -> Value {
        json!({"ok": true, "result": v})
    }

    pub fn errv(code: &str, msg: &str) -> Value {
        json!({"ok": false, "error": {"code": code, "message": msg}})
    }

    fn session(path: &Path, answers: &[&str], interactive: bool) -> (Session, Buf, Buf) {
        let out = Buf::default();
        let err = Buf::default();
        let s = Session {
            client: Client::connect(path).unwrap(),
            prompt: Box::new(Script::new(answers)),
            out: Box::new(out.clone()),
            err: Box::new(err.clone()),
            json: false,
            color: false,
            interactive,
            user: None,
            host: "coffer1".into(),
            mfa_code: None,
            progress: false,
        };
        (s, out, err)
    }

    fn run(s: &mut Session, line: &str) -> u8 {
        let (a, json) = parse_line(line, &Ctx { now_ms: 0 }).unwrap();
        s.execute(a, json)
    }

    fn login_ok() -> Value {
        okv(
            json!({"session": "S2", "user": "alice", "roles": ["administrator"],
                   "idle_timeout_secs": 900, "recovery_codes_left": null}),
        )
    }

    #[test]
    fn fresh_mfa_is_asked_for_and_the_request_retried() {
        let dir = tempfile::tempdir().unwrap();
        let (path, h) = daemon(dir.path(), |i, _| match i {
            0 => errv("fresh_mfa_required", "removing an asset needs fresh MFA"),
            _ => okv(Value::Null),
        });
        let (mut s, out, err) = session(&path, &["123456"], true);
        s.client.credential = Some(Credential::Session("S1".into()));
        assert_eq!(run(&mut s, "asset remove web-01"), 0);
        drop(s);
        let reqs = h.join().unwrap();
        assert_eq!(reqs.len(), 2);
        assert!(reqs[0].get("mfa").is_none());
        assert_eq!(reqs[1]["mfa"], "123456");
        assert_eq!(reqs[1]["op"], "asset_remove");
        assert_eq!(reqs[1]["auth"], json!({"session": "S1"}));
        assert!(err.text().contains("removing an asset needs fresh MFA"));
        assert_eq!(out.text(), "asset 'web-01' removed (its snapshots stay)\n");
    }

    #[test]
    fn an_expired_session_offers_a_login_and_retries() {
        let dir = tempfile::tempdir().unwrap();
        let (path, h) = daemon(dir.path(), |i, _| match i {
            0 => errv("session_expired", "the session has expired"),
            1 => login_ok(),
            _ => okv(json!([])),
        });
        let (mut s, out, err) = session(&path, &["", "pw", "654321"], true);
        s.user = Some("alice".into());
        s.client.credential = Some(Credential::Session("S1".into()));
        assert_eq!(run(&mut s, "asset list"), 0);
        drop(s);
        let reqs = h.join().unwrap();
        assert_eq!(reqs[1]["op"], "login");
        assert_eq!(
            reqs[1]["args"],
            json!({"user": "alice", "password": "pw", "code": "654321"})
        );
        assert!(reqs[1].get("auth").is_none());
        assert_eq!(reqs[2]["auth"], json!({"session": "S2"}));
        assert!(err.text().contains("your session has expired"));
        assert!(out.text().contains("the asset register is empty"));
    }

    #[test]
    fn scripts_get_the_error_and_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let (path, h) = daemon(dir.path(), |_, _| {
            errv("session_expired", "the session has expired")
        });
        let (mut s, out, err) = session(&path, &[], false);
        assert_eq!(run(&mut s, "asset list --json"), 1);
        drop(s);
        assert_eq!(h.join().unwrap().len(), 1);
        assert_eq!(
            err.text(),
            "error: the session has expired\nhint: log in again, or give scripts an API token in COFFER_TOKEN\n"
        );
        let v: Value = serde_json::from_str(&out.text()).unwrap();
        assert_eq!(v["error"]["code"], "session_expired");
    }

    #[test]
    fn edit_fetches_changes_and_updates() {
        let dir = tempfile::tempdir().unwrap();
        let (path, h) = daemon(dir.path(), |i, _| match i {
            0 => okv(
                json!({"name": "web-01", "owner": "web", "criticality": "high",
                "sources": ["/srv"], "excludes": ["*.tmp"], "rpo": "1d", "rto": "4h",
                "profile": "standard", "unprotected": false, "last_good_backup": null,
                "rpo_breached": false}),
            ),
            _ => okv(Value::Null),
        });
        let (mut s, out, _) = session(&path, &[], true);
        assert_eq!(
            run(&mut s, "asset edit web-01 --rto 2h --owner 'Web team'"),
            0
        );
        drop(s);
        let reqs = h.join().unwrap();
        assert_eq!(reqs[0]["op"], "asset_get");
        assert_eq!(
            reqs[1],
            json!({"id": 2, "op": "asset_update", "args": {"asset": {
                "name": "web-01", "owner": "Web team", "criticality": "high",
                "sources": ["/srv"], "excludes": ["*.tmp"], "rpo": "1d", "rto": "2h",
                "profile": "standard"}}})
        );
        assert_eq!(out.text(), "asset 'web-01' updated\n");
    }

    #[test]
    fn user_add_asks_for_the_password_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (path, h) = daemon(dir.path(), |_, _| {
            okv(
                json!({"user": "bob", "secret_base32": "JBSWY3DP", "otpauth_uri": "otpauth://totp/x",
                       "recovery_codes": ["r1"]}),
            )
        });
        let (mut s, out, err) = session(&path, &["pw1", "pw2", "pw1", "pw1"], true);
        assert_eq!(run(&mut s, "user add bob --role auditor"), 1);
        assert!(err.text().contains("the passwords differ"));
        assert_eq!(run(&mut s, "user add bob --role auditor"), 0);
        drop(s);
        let reqs = h.join().unwrap();
        assert_eq!(reqs.len(), 1);
        assert_eq!(
            reqs[0]["args"],
            json!({"name": "bob", "password": "pw1", "roles": ["auditor"]})
        );
        assert!(out.text().contains("TOTP enrollment for 'bob'"));
    }

    #[test]
    fn import_reads_the_file_here() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("r.csv");
        std::fs::write(&csv, "name,owner\nweb,ops\n").unwrap();
        let (path, h) = daemon(dir.path(), |_, _| {
            okv(json!({"added": ["web"], "replaced": [], "skipped": [], "unprotected": ["web"]}))
        });
        let (mut s, _, err) = session(&path, &[], true);
        let line = format!("asset import {} --replace", csv.display());
        assert_eq!(run(&mut s, &line), 0);
        assert_eq!(run(&mut s, "asset import /nonexistent/x.csv"), 1);
        drop(s);
        let reqs = h.join().unwrap();
        assert_eq!(reqs.len(), 1);
        assert_eq!(
            reqs[0]["args"],
            json!({"csv": "name,owner\nweb,ops\n", "replace": true})
        );
        assert!(err.text().contains("cannot read '/nonexistent/x.csv'"));
    }

    #[test]
    fn watch_polls_until_the_job_ends() {
        let dir = tempfile::tempdir().unwrap();
        let job = |status: &str| {
            json!({"id": 4, "kind": "backup", "asset": "db", "level": "full",
                "scope": {"paths": [], "excludes": [], "one_file_system": false},
                "started": "2026-11-26T03:00:00Z", "ended": null, "status": status,
                "stats": {"files_read": 0, "bytes_read": 0, "files_unchanged": 0, "bytes_unchanged": 0,
                          "entries": 0, "chunks_new": 0, "bytes_new": 0, "bytes_stored": 0, "warnings": 0},
                "messages": [], "identity": "alice", "host": "h", "snapshot": null,
                "source": "console", "profile": null, "attempt": 1,
                "progress": if status == "running" { json!({"entries": 1, "files": 1, "bytes": 1}) } else { Value::Null }})
        };
        let (path, h) = daemon(dir.path(), move |i, _| match i {
            0 => okv(json!({"job": 4})),
            1 => okv(job("queued")),
            2 => okv(job("running")),
            _ => okv(job("warning")),
        });
        let (mut s, out, err) = session(&path, &[], true);
        assert_eq!(run(&mut s, "job run db --watch"), 3);
        drop(s);
        let reqs = h.join().unwrap();
        assert_eq!(reqs.len(), 4);
        assert!(
            reqs[1..]
                .iter()
                .all(|r| r["op"] == "job_get" && r["args"]["id"] == 4)
        );
        assert!(out.text().starts_with("job 4 queued: full backup of 'db'"));
        assert!(out.text().contains("status:   warning"), "{}", out.text());
        assert!(err.text().contains("job 4: backup db (full): queued"));
        assert!(err.text().contains("job 4: backup db (full): running"));
    }

    #[test]
    fn usage_errors_exit_2_and_help_needs_no_daemon_call() {
        let dir = tempfile::tempdir().unwrap();
        let (path, h) = daemon(dir.path(), |_, _| okv(Value::Null));
        let (mut s, out, _) = session(&path, &[], true);
        assert_eq!(run(&mut s, "help job"), 0);
        assert!(out.text().contains("job watch ID"));
        drop(s);
        assert!(h.join().unwrap().is_empty());
    }
}
