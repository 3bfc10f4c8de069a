//! `cofferd`: runs the appliance service until SIGTERM or SIGINT; SIGHUP
//! re-reads the configuration.
//!
//! ```text
//! cofferd [--config FILE]      production: /etc/coffer/cofferd.toml by default
//! cofferd --dev DIR            development defaults: everything under DIR
//! cofferd --check-config FILE  parse and check a configuration, then exit
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use cofferd::{Config, Options, SystemClock, config};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cofferd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

enum Mode {
    Config(PathBuf),
    Dev(PathBuf),
    Check(PathBuf),
}

fn parse_args() -> Result<Mode> {
    let mut args = std::env::args_os().skip(1);
    let mut mode = Mode::Config(PathBuf::from(config::DEFAULT_PATH));
    while let Some(a) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .map(PathBuf::from)
                .with_context(|| format!("{flag} needs a value"))
        };
        match a.to_str() {
            Some("--config") => mode = Mode::Config(value("--config")?),
            Some("--dev") => mode = Mode::Dev(value("--dev")?),
            Some("--check-config") => mode = Mode::Check(value("--check-config")?),
            Some("--help" | "-h") => {
                println!(
                    "usage: cofferd [--config FILE | --dev DIR | --check-config FILE]\n\
                     The Coffer appliance service. Configuration keys: docs/cofferd.toml.\n\
                     SIGHUP reloads the configuration; SIGTERM/SIGINT stop after checkpointing running jobs."
                );
                std::process::exit(0);
            }
            Some("--version" | "-V") => {
                println!("cofferd {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            _ => bail!("unknown argument {a:?} (try --help)"),
        }
    }
    Ok(mode)
}

fn run() -> Result<()> {
    let (config, path) = match parse_args()? {
        Mode::Check(p) => {
            Config::load(&p)?;
            println!("{}: ok", p.display());
            return Ok(());
        }
        Mode::Config(p) => (Config::load(&p)?, Some(p)),
        Mode::Dev(dir) => {
            let (c, p) = cofferd::development_config(&dir)?;
            (c, Some(p))
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.daemon.log))
        .context("daemon.log is not a valid log filter")?;
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let shutdown = async {
            use tokio::signal::unix::{SignalKind, signal};
            match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        };
        cofferd::run_until(
            Options {
                config,
                config_path: path,
                clock: Arc::new(SystemClock),
                password_cost: None,
            },
            shutdown,
        )
        .await
    })
}
