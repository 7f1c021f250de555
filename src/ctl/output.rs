//! What voyandzctl prints: tables of feeds and streams and the status summary for people,
//! JSON for scripts, and the one way it writes to stdout ([`print`]).

use std::io::Write;

use chrono::{DateTime, Local};
use serde::Serialize;

use super::error::CtlError;
use super::model::{Census, Feed, Status, Stream};

/// Writes `bytes` to stdout and flushes them, so that `watch` lines leave at once.
pub fn print(bytes: impl AsRef<[u8]>) -> Result<(), CtlError> {
    let mut stdout = std::io::stdout().lock();
    (stdout.write_all(bytes.as_ref()))
        .and_then(|()| stdout.flush())
        .map_err(|source| CtlError::Write {
            to: "stdout".into(),
            source,
        })
}

/// `value` as pretty JSON with a final newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("plain data serializes");
    text.push('\n');
    text
}

/// Feeds as a table, one row each.
pub fn feeds(feeds: &[Feed]) -> String {
    let header = [
        "NAME",
        "STATE",
        "MODE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "SUBSCRIBERS",
        "BYTES IN",
        "LAST EXIT",
    ];
    let rows = feeds.iter().map(|feed| {
        vec![
            feed.name.clone(),
            feed.state.clone(),
            feed.mode.clone(),
            if feed.pid == 0 {
                "-".into()
            } else {
                feed.pid.to_string()
            },
            duration(feed.uptime_ms),
            feed.restarts.to_string(),
            feed.subscribers.to_string(),
            bytes(feed.bytes_in),
            feed.last_exit.clone(),
        ]
    });
    table(&header, rows)
}

/// Streams as a table, one row each.
pub fn streams(streams: &[Stream]) -> String {
    let header = ["NAME", "STATE", "CLIENTS", "CONTAINER", "BYTES OUT", "URLS"];
    let rows = streams.iter().map(|stream| {
        vec![
            stream.name.clone(),
            stream.state.clone(),
            stream.clients.to_string(),
            or_dash(&stream.container),
            bytes(stream.bytes_out),
            stream.urls.join(" "),
        ]
    });
    table(&header, rows)
}

/// The status summary.
pub fn status(status: &Status) -> String {
    let reload = match &status.last_reload {
        Some(reload) => format!(
            "{} at {}: {}",
            reload.outcome,
            local_time(&reload.at),
            reload.message
        ),
        None => "none since it started".into(),
    };
    format!(
        "voyandz {}, up {}\nconfig       {}\nlast reload  {}\nfeeds        {}\nstreams      {}\n",
        status.version,
        duration(status.uptime_ms),
        status.config_path,
        reload,
        census(&status.feeds),
        census(&status.streams),
    )
}

/// An RFC 3339 time as `2026-12-07 02:40:01` here; as it is when it is not one.
fn local_time(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339).map_or_else(
        |_| rfc3339.to_owned(),
        |time| {
            let time = time.with_timezone(&Local);
            time.format("%Y-%m-%d %H:%M:%S").to_string()
        },
    )
}

/// `3 (2 running, 1 idle)`.
fn census(census: &Census) -> String {
    if census.total == 0 {
        return "0".into();
    }
    let states: Vec<String> = (census.states.iter())
        .map(|(state, count)| format!("{count} {state}"))
        .collect();
    format!("{} ({})", census.total, states.join(", "))
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect())
        .chain(rows)
        .collect();
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let cells: Vec<String> = (row.iter().zip(&widths))
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

fn or_dash(text: &str) -> String {
    if text.is_empty() { "-" } else { text }.to_owned()
}

/// `812 B`, `1.5 KiB`, `3.2 GiB`.
fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if count < 1024 {
        return format!("{count} B");
    }
    let mut value = count as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `-` for 0, else the two largest units: `42s`, `5m12s`, `2h03m`, `3d04h`.
fn duration(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        _ if ms == 0 => "-".into(),
        (0, 0, 0) => format!("{}s", seconds),
        (0, 0, _) => format!("{minutes}m{:02}s", seconds % 60),
        (0, _, _) => format!("{hours}h{minutes:02}m"),
        _ => format!("{days}d{hours:02}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_at_a_glance() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(duration(0), "-");
        assert_eq!(duration(42_400), "42s");
        assert_eq!(duration(312_000), "5m12s");
        assert_eq!(duration(7_380_000), "2h03m");
        assert_eq!(duration(273_600_000), "3d04h");
    }

    #[test]
    fn columns_line_up() {
        let rows = [vec!["a".to_owned(), "running".to_owned()]].into_iter();
        assert_eq!(
            table(&["NAME", "STATE"], rows),
            "NAME  STATE\na     running\n"
        );
    }
}
