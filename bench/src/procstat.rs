//! CPU time and memory of a process tree, read from /proc.
//!
//! CPU: utime+stime of the root, and of every live descendant, plus the root's cutime+cstime
//! (children reaped during the window, e.g. a crash-looping feed's `sh` runs). Ticks are
//! 1/CLK_TCK s (10 ms here), so a 30 s window resolves 0.03 % of a core.
//! Memory: VmRSS of the root alone (the server's own memory, not its children's).

use std::collections::HashMap;

/// One line of /proc/PID/stat, the fields we use.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    /// Process id.
    pub pid: u32,
    /// Parent's pid.
    pub ppid: u32,
    /// State letter (R, S, Z, ...).
    pub state: char,
    /// utime + stime, ticks.
    pub ticks: u64,
    /// cutime + cstime (reaped children), ticks.
    pub child_ticks: u64,
    /// Start time since boot, ticks: with the pid, identifies a process across samples.
    pub start: u64,
}

/// Reads /proc/PID/stat.
pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state): field N is f[N - 3].
    let num = |n: usize| f.get(n - 3).and_then(|s| s.parse::<u64>().ok());
    Some(Stat {
        pid,
        ppid: num(4)? as u32,
        state: f.first()?.chars().next()?,
        ticks: num(14)? + num(15)?,
        child_ticks: num(16)? + num(17)?,
        start: num(22)?,
    })
}

/// Every process on the machine.
pub fn all() -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .collect()
}

/// The descendants of `root` (not `root` itself).
pub fn descendants(root: u32) -> Vec<Stat> {
    let procs = all();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for s in procs.iter().filter(|s| s.ppid == p) {
            frontier.push(s.pid);
            out.push(*s);
        }
    }
    out
}

/// Resident memory of `pid` in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Ticks per second of the fields above.
pub fn clk_tck() -> u64 {
    // SAFETY: sysconf reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// CPU counters of a tree at one instant.
#[derive(Debug, Clone)]
pub struct CpuSnap {
    at_ns: u64,
    own: u64,
    reaped: u64,
    kids: HashMap<(u32, u64), u64>,
}

/// CPU used between two snapshots, in % of one core.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// The root process itself.
    pub own_pct: f64,
    /// Its descendants, live or reaped during the window.
    pub kids_pct: f64,
}

impl CpuSnap {
    /// Samples `root` and its descendants now (`None` if `root` is gone).
    pub fn take(root: u32) -> Option<CpuSnap> {
        let at_ns = voyandz_bench::clock::now_ns();
        let s = stat(root)?;
        let kids = descendants(root)
            .into_iter()
            .map(|k| ((k.pid, k.start), k.ticks + k.child_ticks))
            .collect();
        Some(CpuSnap {
            at_ns,
            own: s.ticks,
            reaped: s.child_ticks,
            kids,
        })
    }

    /// CPU from `self` (earlier) to `later`.
    pub fn until(&self, later: &CpuSnap) -> CpuUse {
        let secs = (later.at_ns.saturating_sub(self.at_ns)) as f64 / 1e9;
        if secs <= 0.0 {
            return CpuUse::default();
        }
        let tck = clk_tck() as f64;
        let own = later.own.saturating_sub(self.own);
        let mut kids = later.reaped.saturating_sub(self.reaped);
        for (k, t) in &later.kids {
            kids += t.saturating_sub(self.kids.get(k).copied().unwrap_or(0));
        }
        CpuUse {
            own_pct: own as f64 / tck / secs * 100.0,
            kids_pct: kids as f64 / tck / secs * 100.0,
        }
    }
}

/// Whole-machine CPU counters from the first line of /proc/stat, ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineTicks {
    /// user + nice + system + irq + softirq (guest time is inside user).
    pub busy: u64,
    /// Time the hypervisor ran something else while we had work.
    pub steal: u64,
}

/// Reads /proc/stat's `cpu` line.
pub fn machine_ticks() -> Option<MachineTicks> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice
    Some(MachineTicks {
        busy: f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)?,
        steal: *f.get(7)?,
    })
}
