//! Writes the man pages and shell completions of `voyandz` and `voyandzctl` from their clap
//! definitions, so that they cannot drift from the programs: `make docs` runs it on `doc/`,
//! and `make docs-check` on a temporary directory that it then compares with `doc/`.
//!
//! Under the directory it is given: `man/voyandz.8`, `man/voyandzctl.1` and a page per
//! voyandzctl command (`man/voyandzctl-status.1`, ..., which the first page's COMMANDS list
//! names), and the completions where each shell looks for them: `completions/bash/NAME`,
//! `completions/zsh/_NAME`, `completions/fish/NAME.fish`.

use std::fs;
use std::io;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use roff::{Roff, bold, roman};
use voyandz::ctl::exit::Exit;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: voyandz-docgen DIR  (writes DIR/man and DIR/completions)");
        return ExitCode::from(2);
    };
    match write(Path::new(&dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("voyandz-docgen: {error}");
            ExitCode::FAILURE
        }
    }
}

fn write(dir: &Path) -> io::Result<()> {
    let daemon = voyandz::cli::Cli::command();
    // `help` is no command of its own on a man page: each command has its page.
    let mut ctl = voyandz::ctl::cli::Cli::command().disable_help_subcommand(true);
    ctl.build();

    // Every page's footer names the package, also those of commands, which have no version.
    let source = format!("voyandz {}", daemon.get_version().unwrap_or_default());
    let man = dir.join("man");
    fs::create_dir_all(&man)?;
    let daemon_page = page(daemon.clone(), "8", &source, false)?;
    fs::write(man.join("voyandz.8"), daemon_page)?;
    fs::write(
        man.join("voyandzctl.1"),
        page(ctl.clone(), "1", &source, true)?,
    )?;
    for command in ctl.get_subcommands() {
        let name = command.get_display_name().unwrap_or(command.get_name());
        let command_page = page(command.clone(), "1", &source, false)?;
        fs::write(man.join(format!("{name}.1")), command_page)?;
    }

    for (shell, file) in [
        (Shell::Bash, "bash/{}"),
        (Shell::Zsh, "zsh/_{}"),
        (Shell::Fish, "fish/{}.fish"),
    ] {
        for mut command in [daemon.clone(), ctl.clone()] {
            let name = command.get_name().to_owned();
            let path = dir.join("completions").join(file.replace("{}", &name));
            fs::create_dir_all(path.parent().expect("a file in a shell's folder"))?;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, &name, &mut script);
            fs::write(path, script)?;
        }
    }
    Ok(())
}

/// The man page of `command` in `section`, `source` in its footer; with `exit_status`, voyandzctl's EXIT STATUS
/// from [`Exit`] before its VERSION, in place of `--help`'s plain list (which clap_mangen
/// would print as one run-on paragraph).
fn page(
    command: clap::Command,
    section: &str,
    source: &str,
    exit_status: bool,
) -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    Man::new(command.after_help(None::<&str>))
        .section(section)
        .source(source)
        .render(&mut page)?;
    if !exit_status {
        return Ok(page);
    }
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for exit in Exit::ALL {
        roff.control("TP", [])
            .text([bold(exit.code().to_string())])
            .text([roman(exit.meaning())]);
    }
    // Without the preamble `render` would repeat: the page's own defines what it needs.
    let section = roff.to_roff();
    let page = String::from_utf8(page).expect("clap_mangen writes UTF-8");
    let at = page.find(".SH VERSION").unwrap_or(page.len());
    Ok([&page[..at], &section, &page[at..]].concat().into_bytes())
}
