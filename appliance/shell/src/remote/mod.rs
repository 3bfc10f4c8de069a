//! Remote mode: the shell as a client of `cofferd`'s control socket.
//!
//! - [`shell`]: the interactive shell (`coffer shell`, or `coffer` alone);
//! - [`one_shot`]: one command, non-interactively (`coffer remote job list
//!   --limit 5`), authenticated by the API token in `COFFER_TOKEN`, or by a
//!   login prompt when on a terminal.
//!
//! Both parse with the one command table in [`commands`], run with
//! [`session::Session`], and print with [`render`] (or raw JSON with
//! `--json`). Exit codes as in direct mode: 0 success, 1 failure, 2 usage
//! error, 3 a watched job ended with warnings, 4 the audit log is damaged.

pub mod client;
pub mod commands;
pub mod prompt;
pub mod qr;
pub mod render;
pub mod repl;
pub mod session;
pub mod sigint;
pub mod words;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use coffer_types::api::Call;

use self::client::Client;
use self::commands::{Action, Ctx, parse_words};
pub use self::prompt::Prompt;
use self::prompt::{Nobody, Terminal};
use self::session::{EXIT_USAGE, Failure, Session};
use crate::cli::{EXIT_FAILED, EXIT_OK};

/// What remote mode needs from the command line.
#[derive(Debug, Clone)]
pub struct Opts {
    /// The control socket.
    pub socket: PathBuf,
    /// Raw JSON results.
    pub json: bool,
}

/// A prompt on standard input (a terminal, or lines of a pipe).
pub fn console_prompt() -> Box<dyn Prompt> {
    use std::io::IsTerminal;
    Box::new(Terminal::new(std::io::stdin().is_terminal()))
}

/// The TOTP enrollment as the shell shows it (QR code, secret, recovery codes).
pub fn enrollment_text(e: &coffer_types::api::Enrollment) -> String {
    render::enrollment(e, false)
}

/// Runs the interactive shell.
pub fn shell(opts: &Opts) -> Result<u8> {
    repl::run(opts)
}

/// Runs one command of the table and returns its exit code.
pub fn one_shot(opts: &Opts, words: &[String]) -> Result<u8> {
    sigint::install();
    let (action, json) = match parse_words(words, &Ctx::now()) {
        Ok(a) => a,
        Err(u) => {
            eprintln!("error: {u}");
            return Ok(EXIT_USAGE);
        }
    };
    let json = json || opts.json;
    // Help needs no daemon.
    if let Action::Help(topic) = &action {
        return match commands::help(topic) {
            Ok(h) => {
                print!("{h}");
                Ok(EXIT_OK)
            }
            Err(u) => {
                eprintln!("error: {u}");
                Ok(EXIT_USAGE)
            }
        };
    }
    if matches!(action, Action::Exit) {
        return Ok(EXIT_OK);
    }
    let client = match Client::connect(&opts.socket) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_FAILED);
        }
    };
    let tty = std::io::stdin().is_terminal();
    let prompt: Box<dyn Prompt> = if tty {
        Box::new(Terminal::new(true))
    } else {
        Box::new(Nobody)
    };
    let mut s = Session::new(client, prompt, json, false);
    s.mfa_code = std::env::var("COFFER_MFA_CODE")
        .ok()
        .filter(|c| !c.is_empty());
    let anonymous = matches!(&action, Action::Call(Call::Status) | Action::Login { .. });
    let mut logged_in = false;
    // A token is sent with `status` too: with alert.read it shows why the
    // health is not OK.
    if anonymous
        && !matches!(&action, Action::Login { .. })
        && let Some(token) = std::env::var("COFFER_TOKEN").ok().filter(|t| !t.is_empty())
    {
        s.client.credential = Some(coffer_types::api::Credential::Token(token));
    }
    if !anonymous {
        if let Some(token) = std::env::var("COFFER_TOKEN").ok().filter(|t| !t.is_empty()) {
            s.client.credential = Some(coffer_types::api::Credential::Token(token));
        } else if tty {
            let started = s.status().and_then(|st| {
                if st.needs_bootstrap {
                    Err(Failure::Other(
                        "this appliance has no administrator yet: run 'coffer shell' on its \
                         console to create one"
                            .into(),
                    ))
                } else {
                    s.host = st.host;
                    s.login(None).map(|_| ())
                }
            });
            if let Err(f) = started {
                s.report(&f, false);
                return Ok(EXIT_FAILED);
            }
            logged_in = true;
        } else {
            let f = Failure::Other(
                "not logged in: set COFFER_TOKEN to an API token ('token create' makes one), \
                 or run on a terminal to log in"
                    .into(),
            );
            s.report(&f, json);
            return Ok(EXIT_FAILED);
        }
    }
    let code = s.execute(action, json);
    // A session opened for this one command ends with it.
    if logged_in && s.client.credential.is_some() {
        let _ = s.client.call(&Call::Logout, None);
    }
    Ok(code)
}
