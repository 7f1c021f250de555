//! The voyandz daemon: parse the command line, start logging, load the configuration, take
//! the listening sockets, build the runtime and call [`voyandz::app::run`]; nothing else.

use std::process::ExitCode;

use clap::Parser;
use voyandz::cli::Cli;
use voyandz::config;
use voyandz::systemd::listen;

/// sysexits.h EX_CONFIG: the configuration is bad.
const EXIT_CONFIG: u8 = 78;
/// sysexits.h EX_OSERR: no socket, no runtime.
const EXIT_OSERR: u8 = 71;
/// Tasks a worker runs before it checks for new socket events. With a thousand clients woken
/// by one published chunk, tokio's default (61) spends much of a busy worker's time in
/// epoll_wait; 256 cut p99 at 1600 clients from ~56 ms to ~49 ms on the benchmark, and an idle
/// worker still checks at once (it parks on epoll).
const EVENT_INTERVAL_TASKS: u32 = 256;
/// How long blocking reads (a `file:` device) may hold up the exit after every task stopped.
const RUNTIME_SHUTDOWN_MAX: std::time::Duration = std::time::Duration::from_millis(200);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = config::resolve_path(cli.config.as_deref());
    if cli.check {
        return check(&path);
    }
    // Before any thread exists: it reads and clears LISTEN_* from the environment.
    let inherited = listen::inherited();
    voyandz::logging::init(cli.log_level, cli.log);
    voyandz::app::log_panics();
    raise_open_files_limit();
    tracing::info!(config = %path.display(), "loading the configuration");
    let loaded = match config::load_file(&path) {
        Ok(loaded) => loaded,
        Err(error) => {
            for line in error.to_string().lines() {
                tracing::error!("{line}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let config = loaded.config;
    if let Some(logdir) = &config.logdir
        && let Err(error) = std::fs::create_dir_all(logdir)
    {
        tracing::error!(logdir = %logdir.display(), %error, "cannot create logdir");
        return ExitCode::from(EXIT_CONFIG);
    }
    let addresses: Vec<std::net::SocketAddr> = (config.listen_ips.iter())
        .map(|ip| std::net::SocketAddr::new(*ip, config.listen_port))
        .collect();
    let activated = inherited.as_ref().is_ok_and(|sockets| !sockets.is_empty());
    if activated {
        tracing::info!(
            listenaddr = %config.listen_addr,
            listenport = config.listen_port,
            "serving the sockets systemd passed: listenaddr and listenport are not used"
        );
    }
    let listeners = match inherited.and_then(|inherited| listen::listeners(inherited, &addresses)) {
        Ok(listeners) => listeners,
        Err(error) => {
            tracing::error!(%error, "cannot listen");
            return ExitCode::from(EXIT_OSERR);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(EVENT_INTERVAL_TASKS)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return ExitCode::from(EXIT_OSERR);
        }
    };
    let result = runtime.block_on(voyandz::app::run(
        config,
        listeners,
        activated,
        cli.bus.resolve(),
    ));
    // A read blocked on a device in the blocking pool must not keep the process alive.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_MAX);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Every client is a socket: lift the soft limit on open files to the hard one, as servers do
/// (the default soft limit of 1024 would cap the fan-out far below what the machine can serve).
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(%error, "cannot raise the open files limit");
        }
    }
}

/// `--check`: the final configuration on stdout (exit 0), or the problems on stderr (exit 1).
fn check(path: &std::path::Path) -> ExitCode {
    match config::load_file(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            print!("{}", config::render_yaml(&loaded.config));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
