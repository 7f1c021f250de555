//! voyandzctl: controls a running voyandz over D-Bus. Parses the command line, connects, runs
//! the command through [`voyandz::ctl`] and prints its result; an error is one line on stderr
//! and an exit status from [`voyandz::ctl::exit::Exit`].

use std::process::ExitCode;

use clap::Parser;
use voyandz::ctl::agent::Agent;
use voyandz::ctl::cli::{Cli, Command, Format};
use voyandz::ctl::client::{Client, Picture};
use voyandz::ctl::error::CtlError;
use voyandz::ctl::exit::Exit;
use voyandz::ctl::picture::Destination;
use voyandz::ctl::{output, watch};
use voyandz::lifecycle::owner::Command as Action;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: a command is a few calls in a row, and `watch` waits on one connection.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("voyandzctl: cannot start the runtime: {error}");
            return Exit::Failed.into();
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => Exit::Ok.into(),
        Err(error) if error.is_closed_pipe() => Exit::Ok.into(),
        Err(error) => {
            eprintln!("voyandzctl: {error}");
            error.exit().into()
        }
    }
}

async fn run(cli: Cli) -> Result<(), CtlError> {
    // Before connecting: a picture for a terminal is refused without asking the server.
    let destination = match &cli.command {
        Command::Screenshot(shot) => Some(Destination::choose(shot.output.as_deref())?),
        _ => None,
    };
    // Registered before the call, so that polkit finds it if it wants a password.
    let agent = cli
        .command
        .changes()
        .then(|| Agent::start_if_useful(!cli.no_ask_password))
        .flatten();
    let client = Client::connect(cli.bus, agent.is_some()).await?;
    match cli.command {
        Command::Status(format) => {
            let status = client.status().await?;
            show(format, &status, output::status)
        }
        Command::Feeds(format) => {
            let (feeds, _) = client.inventory().await?;
            show(format, feeds.as_slice(), output::feeds)
        }
        Command::Streams(format) => {
            let (_, streams) = client.inventory().await?;
            show(format, streams.as_slice(), output::streams)
        }
        Command::Start(target) => client.command(Action::Start, &target).await,
        Command::Stop(target) => client.command(Action::Stop, &target).await,
        Command::Restart(target) => client.command(Action::Restart, &target).await,
        Command::Disconnect { stream } => {
            let count = client.disconnect(&stream).await?;
            let clients = if count == 1 { "client" } else { "clients" };
            output::print(format!(
                "disconnected {count} {clients} of stream \"{stream}\"\n"
            ))
        }
        Command::Reload => output::print(format!("{}\n", client.reload().await?)),
        Command::Screenshot(shot) => {
            let picture = match shot.quality {
                _ if shot.png => Picture::Png,
                quality => Picture::Jpeg(quality),
            };
            let bytes = client.screenshot(&shot.stream, picture).await?;
            destination.expect("chosen above").write(&bytes)
        }
        Command::Watch(format) => watch::run(&client, format.json).await,
    }
}

/// `value` as JSON, or as `text` renders it.
fn show<T: serde::Serialize + ?Sized>(
    format: Format,
    value: &T,
    text: impl Fn(&T) -> String,
) -> Result<(), CtlError> {
    output::print(if format.json {
        output::json(value)
    } else {
        text(value)
    })
}
