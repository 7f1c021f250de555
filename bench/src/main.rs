//! `voyandz-bench`: the one benchmark command (`make bench`). Builds the server, runs each
//! section (latency vs the pipe floor, fan-out beside Icecast 2.4, slow clients, on-demand
//! TTFB, crash loop and idle memory) against the real binary over loopback TCP, prints each
//! row as it is measured, then the whole table as markdown for the README.
//!
//! The load generator is this one process on one thread (tokio current_thread): its own CPU
//! and its scheduling lag are measured and printed beside the server's, since on this 2-core
//! machine they share the cores. See doc/BENCHMARK.md.

mod bus;
mod child;
mod client;
mod icecast;
mod plot;
mod procstat;
mod report;
mod sections;
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;

use report::Machine;
use sections::{Ctx, Opts, SECTIONS};

/// Command line of the benchmark.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Latency, fan-out and resource benchmark of voyandz (prints a table)"
)]
struct Cli {
    /// Short run (~1 min): shorter windows, fewer fan-out steps; not for the README.
    #[arg(long)]
    quick: bool,
    /// Sections to run, comma-separated: latency, fanout, slow, ttfb, crash, pictures,
    /// framing, status, reload, dbus (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Sections to leave out, comma-separated.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Fan-out client counts at 1 Mbit/s, comma-separated, each run on voyandz and on
    /// Icecast (default 100,200,400,800,1600,2400,3200).
    #[arg(long, value_delimiter = ',')]
    fanout_steps: Vec<usize>,
    /// Server binary to run (default: build it with cargo, in release, and use target/release/voyandz).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Do not run cargo build first.
    #[arg(long)]
    no_build: bool,
    /// Clients send HTTP/1.0 (close-delimited body) instead of HTTP/1.1 (chunked).
    #[arg(long)]
    http10: bool,
    /// Also write the markdown table to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Write the fan-out plot (p99 and server CPU against clients at 1 Mbit/s, voyandz and
    /// Icecast) to this SVG file (default: beside --markdown, FILE.svg for FILE.md).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Keep the scratch directory (configs and server logs).
    #[arg(long)]
    keep: bool,
    /// Run the bench, and so the server and its children, at this nice value (e.g. -10 on a
    /// machine shared with other work; needs root for < 0). Shown in the command line.
    #[arg(long, allow_hyphen_values = true)]
    nice: Option<i32>,
}

fn main() {
    let cli = Cli::parse();
    if cfg!(debug_assertions) {
        eprintln!(
            "bench: WARNING: this is a debug build of the load generator; run it with --release"
        );
    }
    raise_nofile();
    if let Some(n) = cli.nice {
        // SAFETY: setpriority on our own process; children (the server) inherit it.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) } != 0 {
            eprintln!(
                "bench: setpriority({n}): {}",
                std::io::Error::last_os_error()
            );
        }
    }
    let names: Vec<&str> = SECTIONS.iter().map(|(n, _)| *n).collect();
    for n in cli.only.iter().chain(&cli.skip) {
        if !names.contains(&n.as_str()) {
            eprintln!("bench: unknown section {n:?} (known: {})", names.join(", "));
            std::process::exit(64);
        }
    }
    let exe = std::env::current_exe().expect("own path");
    let exe_dir = exe.parent().expect("exe has a directory").to_path_buf();
    let server_bin = locate_server(&cli, &exe_dir);
    let stamp = exe_dir.join("voyandz-stamp");
    if !stamp.exists() {
        eprintln!(
            "bench: {} is missing: run `cargo build --release -p voyandz-bench`",
            stamp.display()
        );
        std::process::exit(69);
    }
    let dir = std::env::temp_dir().join(format!("voyandz-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");

    let quick = cli.quick;
    let opts = Opts {
        window: secs(if quick { 3 } else { 8 }),
        fanout_window: secs(if quick { 2 } else { 5 }),
        fanout_steps: if !cli.fanout_steps.is_empty() {
            cli.fanout_steps.clone()
        } else if quick {
            vec![100, 400]
        } else {
            vec![100, 200, 400, 800, 1600, 2400, 3200]
        },
        slow_window: secs(if quick { 8 } else { 20 }),
        crash_window: secs(if quick { 10 } else { 30 }),
        status_window: secs(if quick { 10 } else { 30 }),
        ttfb_tries: if quick { 7 } else { 20 },
        http10: cli.http10,
    };
    let machine = Machine {
        date: run_text("date", &["+%Y-%m-%d %H:%M %Z"]),
        uname: run_text("uname", &["-srm"]),
        cpu: cpu_model(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        server_version: match &server_bin {
            Ok(b) => run_text(&b.to_string_lossy(), &["-V"]),
            Err(e) => format!("not available: {}", e.lines().next().unwrap_or("")),
        },
        command: command_line(),
        load_at_start: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(String::from))
            .unwrap_or_else(|| "?".into()),
    };
    if machine.load_at_start.parse::<f64>().is_ok_and(|l| l > 0.5) {
        eprintln!(
            "bench: WARNING: load average {} at start: other work will disturb the figures",
            machine.load_at_start
        );
    }
    eprintln!(
        "bench: {} | {} | {} cores | scratch {}",
        machine.uname,
        machine.cpu,
        machine.cores,
        dir.display()
    );
    if let Err(e) = &server_bin {
        eprintln!("bench: no server binary, server rows will show ERROR:\n{e}");
    }

    let mut ctx = Ctx {
        server_bin,
        stamp,
        dir: dir.clone(),
        opts,
        rows: Vec::new(),
        notes: Vec::new(),
        floor_p99: Vec::new(),
        tcp_floor_p99: Vec::new(),
        icecast_bin: icecast::Icecast::locate().map_err(|e| e.to_string()),
        fanout_plot: Vec::new(),
        tables: Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        for (name, section) in SECTIONS {
            let selected = (cli.only.is_empty() || cli.only.iter().any(|o| o == name))
                && !cli.skip.iter().any(|s| s == name);
            if selected {
                eprintln!("bench: == {name} ==");
                section(&mut ctx).await;
            }
        }
    });
    // Let aborted client tasks drop their sockets before the runtime goes.
    drop(local);
    drop(rt);

    println!();
    for (i, r) in ctx.rows.iter().enumerate() {
        println!("{}", report::text_line(r, i == 0));
    }
    let md = report::markdown(&machine, &ctx.rows, &ctx.tables, &ctx.notes);
    println!();
    println!("{md}");
    if let Some(p) = &cli.markdown
        && let Err(e) = std::fs::write(p, &md)
    {
        eprintln!("bench: write {}: {e}", p.display());
    }
    let plot = cli
        .plot
        .clone()
        .or_else(|| cli.markdown.as_ref().map(|m| m.with_extension("svg")));
    if let Some(p) = &plot {
        write_plot(p, &machine, &ctx.fanout_plot);
    }
    if cli.keep {
        eprintln!("bench: configs and server logs kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Writes the fan-out plot to `path`, unless the fan-out section measured nothing (a run of
/// other sections leaves the last plot alone).
fn write_plot(path: &Path, machine: &Machine, series: &[plot::Series]) {
    if series.iter().all(|s| s.points.is_empty()) {
        eprintln!(
            "bench: no fan-out step measured: {} left as it was",
            path.display()
        );
        return;
    }
    let title = "voyandz and Icecast 2.4: 1 Mbit/s to each client, one load generator";
    let subtitle = format!(
        "make bench, {}, {} ({} cores)",
        machine.date, machine.cpu, machine.cores
    );
    match std::fs::write(path, plot::svg(title, &subtitle, series)) {
        Ok(()) => eprintln!("bench: plot written to {}", path.display()),
        Err(e) => eprintln!("bench: write {}: {e}", path.display()),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The server binary: `--server`, or built by cargo in release next to `target/release`.
fn locate_server(cli: &Cli, exe_dir: &Path) -> Result<PathBuf, String> {
    if let Some(p) = &cli.server {
        return if p.exists() {
            Ok(p.clone())
        } else {
            Err(format!("{} does not exist", p.display()))
        };
    }
    // The bench runs from target/<profile>/; the server we measure is always the release one.
    let target = exe_dir.parent().unwrap_or(exe_dir);
    let bin = target.join("release").join("voyandz");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf);
    if !cli.no_build
        && let Some(ws) = workspace.filter(|w| w.join("Cargo.toml").exists())
    {
        {
            eprintln!("bench: cargo build --release -p voyandz --bin voyandz");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let out = Command::new(cargo)
                .args(["build", "--release", "-p", "voyandz", "--bin", "voyandz"])
                .env("CARGO_TARGET_DIR", target)
                .current_dir(&ws)
                .output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    let err = String::from_utf8_lossy(&o.stderr);
                    let tail: Vec<&str> = err
                        .lines()
                        .filter(|l| l.starts_with("error"))
                        .take(5)
                        .collect();
                    let stale = if bin.exists() {
                        " (an older build is there: --no-build runs it)"
                    } else {
                        ""
                    };
                    return Err(format!(
                        "the server does not build{stale}: {}",
                        tail.join(" | ")
                    ));
                }
                Err(e) => return Err(format!("cannot run cargo: {e}")),
            }
        }
    }
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found (build it, or pass --server)",
            bin.display()
        ))
    }
}

/// Raises RLIMIT_NOFILE to its hard limit (3200 clients need 3200 fds here and in the
/// server or Icecast, which inherit the limit).
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < 6800 {
            eprintln!(
                "bench: RLIMIT_NOFILE is {}: the 3200-client step needs ~6800",
                r.rlim_cur
            );
        }
    }
}

fn run_text(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(if o.stdout.is_empty() {
                &o.stderr
            } else {
                &o.stdout
            })
            .trim()
            .to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// How this run was invoked, as `make bench` would show it.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut s = "cargo run --release -p voyandz-bench".to_string();
    if !args.is_empty() {
        s.push_str(" -- ");
        s.push_str(&args.join(" "));
    }
    if args.is_empty() {
        s = format!("make bench ({s})");
    }
    s
}
