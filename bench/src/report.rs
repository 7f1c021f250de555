//! The result table: one `Row` per measurement, printed as aligned text while the bench runs
//! and as markdown (with the machine and the command) at the end.
//!
//! A later section (container-aware joins, screenshots) adds rows by pushing more `Row`s; the
//! columns stay the same and anything specific goes to `note`.

use std::fmt::Write as _;

/// Did a row meet its target?
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Target met.
    Pass,
    /// Target missed.
    Fail,
    /// No target (a reference, like the pipe floor).
    Info,
    /// The row could not be measured; the text says why.
    Error(String),
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Section id (`latency`, `fanout`, ...), as given to `--only`.
    pub section: &'static str,
    /// What was measured.
    pub name: String,
    /// How many clients.
    pub clients: String,
    /// Latency percentiles and max, ns.
    pub p50: Option<u64>,
    /// 99th percentile, ns.
    pub p99: Option<u64>,
    /// Maximum, ns.
    pub max: Option<u64>,
    /// Lost packets (and clients cut off), as text.
    pub loss: String,
    /// Server process CPU, % of one core.
    pub cpu_srv: Option<f64>,
    /// Its children's CPU (feed, stream commands), % of one core.
    pub cpu_kids: Option<f64>,
    /// The bench's own CPU (the load generator), % of one core.
    pub cpu_gen: Option<f64>,
    /// CPU of everything else on the machine (other users), % of one core.
    pub cpu_other: Option<f64>,
    /// Server RSS, KiB.
    pub rss_kib: Option<u64>,
    /// Row-specific figures (ratio to floor, RSS per client, cut-off times ...).
    pub note: String,
    /// The target, as text.
    pub target: String,
    /// Met or not.
    pub verdict: Verdict,
}

impl Row {
    /// An empty row of `section` named `name`.
    pub fn new(section: &'static str, name: impl Into<String>) -> Row {
        Row {
            section,
            name: name.into(),
            clients: String::new(),
            p50: None,
            p99: None,
            max: None,
            loss: String::new(),
            cpu_srv: None,
            cpu_kids: None,
            cpu_gen: None,
            cpu_other: None,
            rss_kib: None,
            note: String::new(),
            target: String::new(),
            verdict: Verdict::Info,
        }
    }

    /// A row that could not be measured.
    pub fn error(
        section: &'static str,
        name: impl Into<String>,
        target: &str,
        why: impl Into<String>,
    ) -> Row {
        let mut r = Row::new(section, name);
        r.target = target.into();
        r.verdict = Verdict::Error(why.into());
        r
    }

    /// Sets the verdict from a condition.
    pub fn judge(&mut self, target: impl Into<String>, ok: bool) {
        self.target = target.into();
        self.verdict = if ok { Verdict::Pass } else { Verdict::Fail };
    }

    /// Appends to the note, `; `-separated.
    pub fn add_note(&mut self, s: impl AsRef<str>) {
        if !self.note.is_empty() {
            self.note.push_str("; ");
        }
        self.note.push_str(s.as_ref());
    }
}

/// Milliseconds with µs precision.
pub fn ms(ns: u64) -> String {
    let m = ns as f64 / 1e6;
    if m >= 1000.0 {
        return format!("{:.2} s", m / 1000.0);
    }
    if m >= 100.0 {
        format!("{m:.0} ms")
    } else if m >= 10.0 {
        format!("{m:.1} ms")
    } else {
        format!("{m:.3} ms")
    }
}

fn opt_ms(v: Option<u64>) -> String {
    v.map(ms).unwrap_or_else(|| "-".into())
}

fn pct(v: Option<f64>) -> String {
    v.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into())
}

/// KiB as MiB text.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Pass => "PASS".into(),
        Verdict::Fail => "FAIL".into(),
        Verdict::Info => "-".into(),
        Verdict::Error(e) => format!("ERROR: {e}"),
    }
}

const HEAD: [&str; 14] = [
    "row",
    "clients",
    "p50",
    "p99",
    "max",
    "loss",
    "CPU srv",
    "CPU kids",
    "CPU gen",
    "CPU other",
    "RSS srv",
    "target",
    "result",
    "notes",
];

fn cells(r: &Row) -> [String; 14] {
    [
        r.name.clone(),
        r.clients.clone(),
        opt_ms(r.p50),
        opt_ms(r.p99),
        opt_ms(r.max),
        if r.loss.is_empty() {
            "-".into()
        } else {
            r.loss.clone()
        },
        pct(r.cpu_srv),
        pct(r.cpu_kids),
        pct(r.cpu_gen),
        pct(r.cpu_other),
        r.rss_kib.map(mib).unwrap_or_else(|| "-".into()),
        if r.target.is_empty() {
            "-".into()
        } else {
            r.target.clone()
        },
        verdict(&r.verdict),
        r.note.clone(),
    ]
}

/// One row as aligned text (for progress output), with the header when `header` is set.
pub fn text_line(r: &Row, header: bool) -> String {
    const W: [usize; 13] = [34, 8, 9, 9, 9, 12, 7, 8, 7, 9, 9, 22, 6];
    let mut out = String::new();
    let fmt = |c: &[String]| {
        let mut l = String::new();
        for (i, c) in c.iter().enumerate() {
            let w = W.get(i).copied().unwrap_or(0);
            let _ = write!(l, "{c:<w$} ");
        }
        l.trim_end().to_string()
    };
    if header {
        out.push_str(&fmt(&HEAD.map(String::from)));
        out.push('\n');
    }
    out.push_str(&fmt(&cells(r)));
    out
}

/// What the markdown header says about the run.
pub struct Machine {
    /// `date` when the bench started.
    pub date: String,
    /// `uname -srm`.
    pub uname: String,
    /// CPU model name.
    pub cpu: String,
    /// Online cores.
    pub cores: usize,
    /// `voyandz -V`.
    pub server_version: String,
    /// The command that produced the table.
    pub command: String,
    /// /proc/loadavg's 1-minute figure when the bench started.
    pub load_at_start: String,
}

/// A table of its own, printed below the main one: the fan-out scenarios with voyandz and its
/// peer side by side. Its cells are text, already formatted.
pub struct Table {
    /// What it compares (a bold line above it).
    pub title: String,
    /// How to read it (a paragraph between the title and the table).
    pub note: String,
    /// Column names.
    pub head: Vec<String>,
    /// One line per scenario, as many cells as `head`.
    pub rows: Vec<Vec<String>>,
}

/// The whole table as markdown, with the machine and the command, then the side-by-side
/// `tables`, ready for the README.
pub fn markdown(m: &Machine, rows: &[Row], tables: &[Table], notes: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Benchmark ({})", m.date);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "- machine: `{}`, {}, {} cores (server, its children and the load generator share them)",
        m.uname, m.cpu, m.cores
    );
    let _ = writeln!(s, "- server: `{}`", m.server_version);
    let _ = writeln!(s, "- command: `{}`", m.command);
    let _ = writeln!(s, "- load average at start: {}", m.load_at_start);
    let _ = writeln!(
        s,
        "- latency = client arrival − feed write stamp (CLOCK_MONOTONIC); CPU in % of one core; see doc/BENCHMARK.md"
    );
    let _ = writeln!(s);
    write_table(&mut s, &HEAD, rows.iter().map(|r| cells(r).to_vec()));
    let pass = rows.iter().filter(|r| r.verdict == Verdict::Pass).count();
    let fail = rows.iter().filter(|r| r.verdict == Verdict::Fail).count();
    let err = rows
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Error(_)))
        .count();
    let _ = writeln!(s);
    let _ = writeln!(s, "Targets: {pass} met, {fail} missed, {err} not measured.");
    let mut sections: Vec<&str> = rows.iter().map(|r| r.section).collect();
    sections.dedup();
    for sec in sections {
        let missed: Vec<&str> = rows
            .iter()
            .filter(|r| r.section == sec && matches!(r.verdict, Verdict::Fail | Verdict::Error(_)))
            .map(|r| r.name.as_str())
            .collect();
        if !missed.is_empty() {
            let _ = writeln!(s, "- {sec}: missed or not measured: {}", missed.join("; "));
        }
    }
    let other = rows
        .iter()
        .filter_map(|r| r.cpu_other)
        .fold(0.0f64, f64::max);
    if other >= 10.0 {
        let _ = writeln!(
            s,
            "- other processes used up to {other:.0}% of a core during a measured window (column CPU other): \
             those figures are disturbed; rerun on an idle machine"
        );
    }
    for t in tables {
        let _ = writeln!(s);
        let _ = writeln!(s, "**{}**", t.title);
        let _ = writeln!(s);
        let _ = writeln!(s, "{}", t.note);
        let _ = writeln!(s);
        write_table(&mut s, &t.head, t.rows.iter().cloned());
    }
    if !notes.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "Observations:");
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

/// A markdown table: `head`, then each row's cells with their `|` escaped.
fn write_table(s: &mut String, head: &[impl AsRef<str>], rows: impl Iterator<Item = Vec<String>>) {
    let head: Vec<&str> = head.iter().map(AsRef::as_ref).collect();
    let _ = writeln!(s, "| {} |", head.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
    for r in rows {
        let c: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(s, "| {} |", c.join(" | "));
    }
}
