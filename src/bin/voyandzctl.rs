//! voyandzctl: controls a running voyandz over D-Bus (a placeholder until the CLI lands).

fn main() -> std::process::ExitCode {
    eprintln!("voyandzctl: not built yet");
    std::process::ExitCode::FAILURE
}
