//! The interactive shell: `coffer shell` (or `coffer` alone).
//!
//! On a terminal it is a line editor (rustyline) with history in
//! `~/.coffer_history` (mode 0600; `login`, `passwd` and `mfa` lines are
//! never kept) and completion of command words, subcommands, flags, fixed
//! values (roles, levels, …) and the names of assets, profiles, users,
//! jobs, tokens and alerts, which are fetched from the daemon after every
//! command. When standard input is not a terminal, it reads one command per
//! line from it, with no prompt, and exits with the last command's code.
//!
//! It starts by asking the daemon's status: an appliance with no
//! administrator yet goes through the first-run setup (create the
//! administrator, enroll TOTP, log in); otherwise it logs in (or uses the
//! API token in `COFFER_TOKEN`).

use std::borrow::Cow;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Result;
use coffer_types::api::{
    AssetView, Call, Credential, Enrollment, ErrorCode, JobView, Profile, Role, TokenInfo,
    UserInfo, Whoami,
};
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};
use serde::de::DeserializeOwned;

use super::client::Client;
use super::commands::{
    self, ArgKind, Ctx, GROUPS, PRIVATE_COMMANDS, find, has_subcommands, parse_line,
};
use super::prompt::Terminal;
use super::session::{EXIT_USAGE, Failure, Session};
use super::words::{quote, split, split_partial};
use super::{Opts, sigint};
use crate::cli::{EXIT_FAILED, EXIT_OK};

/// The names completion offers, as last fetched from the daemon.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Asset names.
    pub assets: Vec<String>,
    /// Profile names.
    pub profiles: Vec<String>,
    /// User names.
    pub users: Vec<String>,
    /// Recent job ids.
    pub jobs: Vec<String>,
    /// Token ids.
    pub tokens: Vec<String>,
    /// Alert ids.
    pub alerts: Vec<String>,
}

fn fetch<T: DeserializeOwned>(c: &mut Client, call: &Call) -> Vec<T> {
    c.call(call, None)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

impl Names {
    /// Fetches what the caller may list; what it may not stays empty.
    pub fn fetch(c: &mut Client) -> Names {
        Names {
            assets: fetch::<AssetView>(c, &Call::AssetList)
                .into_iter()
                .map(|a| a.asset.name)
                .collect(),
            profiles: fetch::<Profile>(c, &Call::ProfileList)
                .into_iter()
                .map(|p| p.name)
                .collect(),
            users: fetch::<UserInfo>(c, &Call::UserList)
                .into_iter()
                .map(|u| u.name)
                .collect(),
            jobs: fetch::<JobView>(
                c,
                &Call::JobList {
                    asset: None,
                    status: None,
                    kind: None,
                    limit: Some(30),
                },
            )
            .into_iter()
            .map(|j| j.record.id.to_string())
            .collect(),
            tokens: fetch::<TokenInfo>(c, &Call::TokenList)
                .into_iter()
                .map(|t| t.id)
                .collect(),
            alerts: fetch::<coffer_types::api::Alert>(c, &Call::AlertList { all: false })
                .into_iter()
                .map(|a| a.id.to_string())
                .collect(),
        }
    }

    fn of(&self, kind: ArgKind) -> Vec<String> {
        let fixed = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        match kind {
            ArgKind::Asset => self.assets.clone(),
            ArgKind::Profile => self.profiles.clone(),
            ArgKind::User => self.users.clone(),
            ArgKind::Job => self.jobs.clone(),
            ArgKind::Token => self.tokens.clone(),
            ArgKind::Alert => self.alerts.clone(),
            ArgKind::Roles => Role::ALL.iter().map(|r| r.as_str().to_string()).collect(),
            ArgKind::Level => fixed(&["full", "incremental", "differential"]),
            ArgKind::Button => fixed(&["up", "down", "ok", "back"]),
            ArgKind::Criticality => fixed(&["low", "medium", "high", "critical"]),
            ArgKind::JobStatus => fixed(&[
                "queued",
                "running",
                "success",
                "warning",
                "failed",
                "interrupted",
                "cancelled",
            ]),
            ArgKind::JobKind => fixed(&[
                "backup",
                "restore",
                "verify",
                "media-write",
                "media-restore",
                "media-recover",
            ]),
            ArgKind::Command => command_words(),
            ArgKind::Free | ArgKind::File => Vec::new(),
        }
    }
}

fn command_words() -> Vec<String> {
    let mut v: Vec<String> = GROUPS.iter().map(|g| g.name.to_string()).collect();
    v.push("quit".into());
    v
}

/// What to offer at the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Replace from this byte offset with one of these words.
    Words(usize, Vec<String>),
    /// A file name (the line editor's own completer).
    File,
}

/// Completion candidates for `line` with the cursor at `pos`.
pub fn complete(line: &str, pos: usize, names: &Names) -> Completion {
    let pos = pos.min(line.len());
    let head = line.get(..pos).unwrap_or(line);
    let p = split_partial(head);
    let words: Vec<String> = p.words.iter().filter(|w| *w != "--json").cloned().collect();
    let cur = p.current.as_str();
    let none = Completion::Words(p.start, Vec::new());
    let candidates: Vec<String> = if words.is_empty() {
        command_words()
    } else if words[0] == "help" {
        match words.len() {
            1 => command_words(),
            2 if has_subcommands(&words[1]) => commands::group(&words[1])
                .map(|e| e.words[1].to_string())
                .collect(),
            _ => return none,
        }
    } else if words.len() == 1 && has_subcommands(&words[0]) {
        commands::group(&words[0])
            .map(|e| e.words[1].to_string())
            .collect()
    } else {
        let Ok(entry) = find(&words) else {
            return none;
        };
        let rest = &words[entry.words.len()..];
        // A flag waiting for its value?
        let waiting = rest.last().and_then(|w| {
            w.strip_prefix("--")
                .filter(|n| !n.contains('='))
                .and_then(|n| entry.flag(n))
                .and_then(|f| f.value)
        });
        if let Some((_, kind)) = waiting {
            if kind == ArgKind::File {
                return Completion::File;
            }
            names.of(kind)
        } else if cur.starts_with('-') {
            entry
                .flags
                .iter()
                .filter(|f| f.repeat || !rest.iter().any(|w| *w == format!("--{}", f.name)))
                .map(|f| format!("--{}", f.name))
                .chain(std::iter::once("--json".to_string()))
                .collect()
        } else {
            // Which positional is being typed?
            let mut n = 0;
            let mut i = 0;
            while i < rest.len() {
                let w = &rest[i];
                if let Some(name) = w.strip_prefix("--") {
                    if !name.contains('=') && entry.flag(name).is_some_and(|f| f.value.is_some()) {
                        i += 1;
                    }
                } else {
                    n += 1;
                }
                i += 1;
            }
            let arg = entry
                .args
                .get(n)
                .or_else(|| entry.args.last().filter(|a| a.rest));
            match arg {
                Some(a) if a.kind == ArgKind::File => return Completion::File,
                Some(a) => names.of(a.kind),
                None => Vec::new(),
            }
        }
    };
    // Roles complete after the last comma.
    let (keep, partial) = match cur.rfind(',') {
        Some(i) if !cur.starts_with('-') => (&cur[..=i], &cur[i + 1..]),
        _ => ("", cur),
    };
    let mut out: Vec<String> = candidates
        .into_iter()
        .filter(|c| c.starts_with(partial))
        .map(|c| format!("{keep}{c}"))
        .collect();
    out.dedup();
    Completion::Words(p.start, out)
}

/// The line editor's helper: completion from the table and the names.
pub struct ShellHelper {
    /// Names fetched from the daemon.
    pub names: Names,
    files: FilenameCompleter,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        match complete(line, pos, &self.names) {
            Completion::File => self.files.complete(line, pos, ctx),
            Completion::Words(start, words) => Ok((
                start,
                words
                    .into_iter()
                    .map(|w| Pair {
                        replacement: format!("{} ", quote(&w)),
                        display: w,
                    })
                    .collect(),
            )),
        }
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

/// Whether a line may be written to the history file.
pub fn keep_in_history(line: &str) -> bool {
    let first = split(line)
        .ok()
        .and_then(|w| w.into_iter().next())
        .or_else(|| line.split_whitespace().next().map(str::to_string));
    match first {
        Some(w) => !PRIVATE_COMMANDS.contains(&w.as_str()),
        None => false,
    }
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".coffer_history"))
}

/// Creates the history file with mode 0600 (rustyline keeps that mode when
/// it writes) and tightens an existing one.
fn prepare_history(path: &std::path::Path) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path);
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

/// Runs the interactive shell; returns the exit code.
pub fn run(opts: &Opts) -> Result<u8> {
    sigint::install();
    let tty = io::stdin().is_terminal();
    let client = match Client::connect(&opts.socket) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_FAILED);
        }
    };
    let mut s = Session::new(client, Box::new(Terminal::new(tty)), opts.json, true);
    let status = match s.status() {
        Ok(st) => st,
        Err(f) => {
            s.report(&f, false);
            return Ok(EXIT_FAILED);
        }
    };
    s.host = status.host.clone();
    if tty {
        println!(
            "Coffer shell — cofferd {} on {}{}. Type 'help' for the commands.",
            status.version,
            status.host,
            if status.development {
                " (DEVELOPMENT mode)"
            } else {
                ""
            }
        );
    }
    let started = if status.needs_bootstrap {
        first_run(&mut s)
    } else if let Some(token) = std::env::var("COFFER_TOKEN").ok().filter(|t| !t.is_empty()) {
        use_token(&mut s, token)
    } else {
        login_at_start(&mut s)
    };
    if let Err(f) = started {
        s.report(&f, false);
        return Ok(EXIT_FAILED);
    }
    if tty {
        editor_loop(&mut s)
    } else {
        Ok(pipe_loop(&mut s))
    }
}

/// Authenticates with an API token and learns whose it is.
pub(crate) fn use_token(s: &mut Session, token: String) -> Result<(), Failure> {
    s.client.credential = Some(Credential::Token(token));
    let v = s.request(&Call::Whoami)?;
    let w: Whoami = serde_json::from_value(v)
        .map_err(|e| Failure::Other(format!("unexpected whoami result from cofferd: {e}")))?;
    s.user = Some(w.user);
    Ok(())
}

/// Up to three login attempts.
fn login_at_start(s: &mut Session) -> Result<(), Failure> {
    let mut tries = 0;
    loop {
        tries += 1;
        match s.login(None) {
            Ok(l) => {
                let _ = writeln!(
                    s.err,
                    "logged in as {} ({})",
                    l.user,
                    super::render::roles(&l.roles)
                );
                return Ok(());
            }
            Err(f @ Failure::Call(_))
                if tries < 3 && f_code(&f) == Some(ErrorCode::LoginFailed) =>
            {
                s.report(&f, false);
            }
            Err(f) => return Err(f),
        }
    }
}

fn f_code(f: &Failure) -> Option<ErrorCode> {
    match f {
        Failure::Call(e) => e.code(),
        _ => None,
    }
}

/// The first run: creates the administrator, shows the TOTP enrollment,
/// and logs in with a code from the new authenticator (which confirms the
/// enrollment).
pub(crate) fn first_run(s: &mut Session) -> Result<(), Failure> {
    let _ = writeln!(
        s.err,
        "\nThis appliance has no administrator yet. Create the first one now: choose a user\n\
         name and a password, then enroll an authenticator app (TOTP) for two-factor login.\n"
    );
    let user = {
        let u = s.prompt.line("administrator's user name [admin]: ")?;
        let u = u.trim();
        if u.is_empty() {
            "admin".to_string()
        } else {
            u.to_string()
        }
    };
    let password = loop {
        let p = s.prompt.secret("password: ")?;
        let again = s.prompt.secret("repeat password: ")?;
        if p.is_empty() {
            let _ = writeln!(s.err, "the password cannot be empty; again");
        } else if *p != *again {
            let _ = writeln!(s.err, "the passwords differ; again");
        } else {
            break p;
        }
    };
    let call = Call::Bootstrap {
        user: user.clone(),
        password: password.to_string(),
    };
    let v = s.client.call(&call, None)?;
    let e: Enrollment = serde_json::from_value(v)
        .map_err(|e| Failure::Other(format!("unexpected enrollment from cofferd: {e}")))?;
    let text = super::render::enrollment(&e, s.color);
    s.out.write_all(text.as_bytes())?;
    s.out.flush()?;
    let _ = writeln!(
        s.err,
        "\nAdd the account to your authenticator app (scan the code or type the secret), store\n\
         the recovery codes offline, then enter the app's current code to confirm."
    );
    let mut tries = 0;
    loop {
        tries += 1;
        let code = s.prompt.line("TOTP code: ")?.trim().to_string();
        match s.login_with(&user, &password, &code) {
            Ok(l) => {
                let _ = writeln!(
                    s.err,
                    "enrollment confirmed; logged in as {} ({})",
                    l.user,
                    super::render::roles(&l.roles)
                );
                return Ok(());
            }
            Err(f) if tries < 5 && f_code(&f) == Some(ErrorCode::LoginFailed) => {
                let _ = writeln!(
                    s.err,
                    "that code was not accepted (is the phone's clock right?); try the next one"
                );
            }
            Err(f) => return Err(f),
        }
    }
}

/// Parses and runs one line; `None` when it asks to leave.
fn one_line(s: &mut Session, line: &str) -> Option<u8> {
    match parse_line(line, &Ctx::now()) {
        Ok((commands::Action::Exit, _)) => None,
        Ok((action, json)) => Some(s.execute(action, json)),
        Err(u) => {
            s.report(&Failure::Usage(u), false);
            Some(EXIT_USAGE)
        }
    }
}

fn editor_loop(s: &mut Session) -> Result<u8> {
    let config = Config::builder()
        .auto_add_history(false)
        .history_ignore_space(true)
        .history_ignore_dups(true)?
        .max_history_size(2000)?
        .completion_type(CompletionType::List)
        .build();
    let mut rl: Editor<ShellHelper, FileHistory> = Editor::with_config(config)?;
    rl.set_helper(Some(ShellHelper {
        names: Names::default(),
        files: FilenameCompleter::new(),
    }));
    let history = history_path();
    if let Some(h) = &history {
        prepare_history(h);
        let _ = rl.load_history(h);
    }
    let refresh = |s: &mut Session, rl: &mut Editor<ShellHelper, FileHistory>| {
        if s.client.credential.is_some() {
            let names = Names::fetch(&mut s.client);
            if let Some(h) = rl.helper_mut() {
                h.names = names;
            }
        }
    };
    refresh(s, &mut rl);
    loop {
        match rl.readline(&s.prompt_text()) {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                if keep_in_history(&line)
                    && rl.add_history_entry(line.as_str()).unwrap_or(false)
                    && let Some(h) = &history
                {
                    let _ = rl.append_history(h);
                }
                if one_line(s, &line).is_none() {
                    break;
                }
                let _ = s.out.flush();
                refresh(s, &mut rl);
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // Leaving the interactive shell is a success, whatever the last
    // command did (each command already showed its outcome).
    Ok(EXIT_OK)
}

/// Commands from a pipe: one per line, `#` comments and blank lines
/// skipped; the exit code is the last command's.
fn pipe_loop(s: &mut Session) -> u8 {
    let mut code = EXIT_OK;
    let stdin = io::stdin();
    loop {
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(s.err, "error: reading standard input: {e}");
                return EXIT_FAILED;
            }
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match one_line(s, line) {
            Some(c) => code = c,
            None => break,
        }
        let _ = s.out.flush();
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::commands::ENTRIES;

    fn names() -> Names {
        Names {
            assets: vec!["web-01".into(), "web-02".into(), "db".into()],
            profiles: vec!["standard".into(), "gold".into()],
            users: vec!["alice".into(), "bob".into()],
            jobs: vec!["12".into(), "11".into()],
            tokens: vec!["ct_ab12".into()],
            alerts: vec!["3".into()],
        }
    }

    fn words(line: &str) -> (usize, Vec<String>) {
        match complete(line, line.len(), &names()) {
            Completion::Words(s, w) => (s, w),
            Completion::File => panic!("{line}: file completion"),
        }
    }

    #[test]
    fn command_words_and_subcommands() {
        let (start, w) = words("");
        assert_eq!(start, 0);
        assert!(w.contains(&"asset".to_string()) && w.contains(&"quit".to_string()));
        assert_eq!(words("as"), (0, vec!["asset".to_string()]));
        assert_eq!(words("a").1, ["asset", "alert", "audit"]);
        assert_eq!(
            words("asset ").1,
            ["list", "show", "add", "edit", "remove", "import"]
        );
        assert_eq!(words("asset e"), (6, vec!["edit".to_string()]));
        assert_eq!(words("job w").1, ["watch"]);
        assert_eq!(words("help ").1.len(), command_words().len());
        assert_eq!(words("help user r").1, ["roles", "remove", "reset-mfa"]);
        assert!(words("status ").1.is_empty());
        assert!(words("nonsense ").1.is_empty());
    }

    #[test]
    fn object_names_by_position_and_flag() {
        assert_eq!(
            words("asset show w"),
            (11, vec!["web-01".into(), "web-02".into()])
        );
        assert_eq!(words("asset edit ").1, ["web-01", "web-02", "db"]);
        assert_eq!(words("job run d").1, ["db"]);
        assert_eq!(words("job show ").1, ["12", "11"]);
        assert_eq!(words("job watch 1").1, ["12", "11"]);
        assert_eq!(words("user remove b").1, ["bob"]);
        assert_eq!(words("user roles bob ").1.len(), 5);
        assert_eq!(words("token revoke ").1, ["ct_ab12"]);
        assert_eq!(words("alert ack ").1, ["3"]);
        assert_eq!(words("asset add x --profile ").1, ["standard", "gold"]);
        assert_eq!(words("asset add x --profile g").1, ["gold"]);
        assert_eq!(words("job list --asset ").1, ["web-01", "web-02", "db"]);
        assert_eq!(words("job list --status f").1, ["failed"]);
        assert_eq!(
            words("job run db --level ").1,
            ["full", "incremental", "differential"]
        );
        assert_eq!(words("asset add x --criticality c").1, ["critical"]);
        assert_eq!(words("audit list --user ").1, ["alice", "bob"]);
        // after a flag's value, the positional count is unchanged
        assert_eq!(words("asset edit --owner ops w").1, ["web-01", "web-02"]);
        // no second name
        assert!(words("asset show db ").1.is_empty());
        // free values get nothing
        assert!(words("asset add x --owner ").1.is_empty());
    }

    #[test]
    fn flags_and_roles() {
        assert_eq!(words("job list --l").1, ["--limit"]);
        let all = words("job list --").1;
        assert_eq!(all, ["--asset", "--status", "--kind", "--limit", "--json"]);
        // a flag given once is not offered again; a repeatable one is
        let w = words("asset add x --owner o --source /a --").1;
        assert!(!w.contains(&"--owner".to_string()));
        assert!(w.contains(&"--source".to_string()));
        assert_eq!(
            words("user add bob --role a").1,
            ["administrator", "auditor"]
        );
        assert_eq!(
            words("user add bob --role auditor,b").1,
            ["auditor,backup-operator"]
        );
        let (start, w) = words("token create x --role 'sec");
        assert_eq!(start, 22);
        assert_eq!(w, ["security-officer"]);
    }

    #[test]
    fn files_for_import() {
        assert_eq!(complete("asset import ", 13, &names()), Completion::File);
        assert_eq!(complete("asset import /tm", 16, &names()), Completion::File);
        // the cursor in the middle of the line counts
        assert_eq!(words("asset sh").1, ["show"]);
        assert_eq!(
            complete("asset sh web-01", 8, &names()),
            Completion::Words(6, vec!["show".into()])
        );
    }

    #[test]
    fn private_lines_stay_out_of_history() {
        assert!(!keep_in_history("login alice"));
        assert!(!keep_in_history("  passwd"));
        assert!(!keep_in_history("mfa"));
        assert!(!keep_in_history("login 'unterminated"));
        assert!(keep_in_history("asset list"));
        assert!(keep_in_history("user add bob --role auditor"));
        assert!(!keep_in_history("   "));
    }

    #[test]
    fn every_kind_in_the_table_completes_or_is_free() {
        for e in ENTRIES {
            for a in e.args {
                let _ = names().of(a.kind);
            }
        }
    }
}
