//! Asking the operator: user names and TOTP codes with echo, passwords
//! without.
//!
//! On a terminal, secrets are read by rpassword from `/dev/tty` (the
//! controlling terminal: the console, an SSH session, a test's
//! pseudo-terminal), or from the terminal standard input names when the
//! process has no controlling terminal. When standard input is a pipe,
//! every answer is the next line of it, so the shell can be scripted.
//! Prompts go to standard error, keeping standard output for results.

use std::io::{self, BufRead, Write};

use zeroize::Zeroizing;

/// Something that can ask the operator.
pub trait Prompt {
    /// Asks for a line, shown as typed.
    fn line(&mut self, prompt: &str) -> io::Result<String>;
    /// Asks for a secret, not shown.
    fn secret(&mut self, prompt: &str) -> io::Result<Zeroizing<String>>;
    /// Whether anyone can be asked at all.
    fn can_ask(&self) -> bool;
    /// Asks a yes/no question; an empty answer is yes.
    fn confirm(&mut self, prompt: &str) -> io::Result<bool> {
        let a = self.line(prompt)?;
        Ok(matches!(
            a.trim().to_ascii_lowercase().as_str(),
            "" | "y" | "yes"
        ))
    }
}

/// Reads one line of standard input without its line ending; the end of
/// input is an error.
fn stdin_line() -> io::Result<String> {
    let mut s = String::new();
    if io::stdin().lock().read_line(&mut s)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "standard input ended",
        ));
    }
    while s.ends_with('\n') || s.ends_with('\r') {
        s.pop();
    }
    Ok(s)
}

/// The operator at this process's terminal, or standard input's lines.
pub struct Terminal {
    tty: bool,
}

impl Terminal {
    /// `tty`: standard input is a terminal.
    pub fn new(tty: bool) -> Terminal {
        Terminal { tty }
    }
}

impl Prompt for Terminal {
    fn line(&mut self, prompt: &str) -> io::Result<String> {
        let mut e = io::stderr().lock();
        e.write_all(prompt.as_bytes())?;
        e.flush()?;
        drop(e);
        stdin_line()
    }

    fn secret(&mut self, prompt: &str) -> io::Result<Zeroizing<String>> {
        if !self.tty {
            let mut e = io::stderr().lock();
            e.write_all(prompt.as_bytes())?;
            e.flush()?;
            drop(e);
            return stdin_line().map(Zeroizing::new);
        }
        // The controlling terminal when there is one; else the terminal on
        // standard input (a pseudo-terminal that is not this process's
        // controlling one).
        let have_tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .is_ok();
        let secret = if have_tty {
            rpassword::prompt_password(prompt)?
        } else {
            let dev = std::fs::read_link("/proc/self/fd/0")?;
            let dev = dev.to_string_lossy().into_owned();
            let config = rpassword::ConfigBuilder::new()
                .input_file_path(dev.clone())
                .output_file_path(dev)
                .build();
            rpassword::prompt_password_with_config(prompt, config)?
        };
        Ok(Zeroizing::new(secret))
    }

    fn can_ask(&self) -> bool {
        true
    }
}

/// Nobody to ask: a script without a terminal.
pub struct Nobody;

impl Nobody {
    fn refuse(prompt: &str) -> io::Error {
        io::Error::other(format!(
            "cannot ask for the {}: standard input is not a terminal",
            prompt.trim().trim_end_matches(':').trim_end_matches('?')
        ))
    }
}

impl Prompt for Nobody {
    fn line(&mut self, prompt: &str) -> io::Result<String> {
        Err(Nobody::refuse(prompt))
    }
    fn secret(&mut self, prompt: &str) -> io::Result<Zeroizing<String>> {
        Err(Nobody::refuse(prompt))
    }
    fn can_ask(&self) -> bool {
        false
    }
}

/// Scripted answers, for tests.
#[cfg(test)]
pub struct Script {
    /// The answers still to give, in order.
    pub answers: std::collections::VecDeque<String>,
    /// The prompts asked, in order.
    pub asked: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
}

#[cfg(test)]
impl Script {
    /// Answers these, in order.
    pub fn new(answers: &[&str]) -> Script {
        Script {
            answers: answers.iter().map(|s| s.to_string()).collect(),
            asked: Default::default(),
        }
    }
}

#[cfg(test)]
impl Prompt for Script {
    fn line(&mut self, prompt: &str) -> io::Result<String> {
        self.asked.borrow_mut().push(prompt.to_string());
        self.answers
            .pop_front()
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "script ended"))
    }
    fn secret(&mut self, prompt: &str) -> io::Result<Zeroizing<String>> {
        self.line(prompt).map(Zeroizing::new)
    }
    fn can_ask(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_defaults_to_yes() {
        let mut s = Script::new(&["", "y", "No", "whatever"]);
        assert!(s.confirm("? ").unwrap());
        assert!(s.confirm("? ").unwrap());
        assert!(!s.confirm("? ").unwrap());
        assert!(!s.confirm("? ").unwrap());
        assert!(s.confirm("? ").is_err());
    }

    #[test]
    fn nobody_says_what_it_could_not_ask() {
        let e = Nobody.secret("password: ").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot ask for the password: standard input is not a terminal"
        );
        assert!(!Nobody.can_ask());
    }
}
