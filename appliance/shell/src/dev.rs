//! `coffer dev [DIR]`: the appliance on its development defaults, in one
//! command. Starts `cofferd` in this process with everything under `DIR`
//! (the store with a generated passphrase, the socket, job logs, a sample
//! asset and profile; simulated hardware), then opens the management shell
//! on its socket. The first run bootstraps the administrator with MFA
//! enrollment. Leaving the shell stops the daemon, checkpointing any job.
//! The daemon's log goes to `DIR/cofferd.log`, not the terminal.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

/// Runs the development appliance and its shell; returns the shell's exit code.
pub fn run(dir: &Path, json: bool) -> Result<u8> {
    ignore_sigpipe();
    let (config, path) = cofferd::development_config(dir)?;
    let socket = config.daemon.socket.clone();
    let log_path = dir.join("cofferd.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("open '{}'", log_path.display()))?;
    let _ = tracing_subscriber::fmt()
        .with_writer(Mutex::new(log))
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.daemon.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let running = rt.block_on(cofferd::start(cofferd::Options {
        config,
        config_path: Some(path.clone()),
        clock: Arc::new(cofferd::SystemClock),
        password_cost: None,
    }))?;
    eprintln!(
        "coffer: development appliance running in {} (configuration {}, log {}).\n\
         coffer: the shell opens on {}; `exit` stops the appliance.",
        dir.display(),
        path.display(),
        log_path.display(),
        socket.display()
    );
    let code = crate::remote::shell(&crate::remote::Opts { socket, json });
    rt.block_on(running.shutdown())?;
    code
}

/// A server in this process must not die when a client hangs up: `main`
/// restored SIGPIPE's default for the command line's sake.
#[allow(unsafe_code)]
fn ignore_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: sets the disposition to "ignore" (no handler runs); called
    // before the daemon's threads start.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}
