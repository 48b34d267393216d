//! Processes the benchmark starts and what it reads about them: the child guard that kills on
//! drop, free ports, the open-file limit, and `/proc` (resident memory, CPU time, a process's
//! children, the machine).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A child process, killed and reaped when dropped: on success, on error and on unwinding, so a
/// run never leaves a relay, a mock or an nginx behind.
pub struct Child {
    name: String,
    log: PathBuf,
    child: std::process::Child,
    /// Stop with SIGTERM and wait, instead of SIGKILL: for a process with children of its own
    /// (nginx's workers would outlive a killed master).
    terminate: bool,
}

impl Child {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> anyhow::Result<Child> {
        let out = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", command.get_program()))?;
        Ok(Child {
            name: name.to_owned(),
            log: log.to_owned(),
            child,
            terminate: false,
        })
    }

    /// Stop with SIGTERM (the process stops its own children), not SIGKILL.
    pub fn terminated_on_drop(mut self) -> Child {
        self.terminate = true;
        self
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// An error naming the log when the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited ({status}); its output is in {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log)
            ),
        }
    }

    /// Polls the log until a line contains `marker` and returns the rest of that line.
    pub async fn wait_for_line(&mut self, marker: &str, limit: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(rest) = text
                .lines()
                .find_map(|l| l.split_once(marker).map(|(_, r)| r))
            {
                return Ok(rest.trim().to_owned());
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!("{} did not print {marker:?} within {limit:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        // Already gone is fine; anything else is still reaped so no zombie outlives the run.
        let terminated = self.terminate
            && i32::try_from(self.child.id())
                .is_ok_and(|pid| kill(Pid::from_raw(pid), Signal::SIGTERM).is_ok());
        if !terminated {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The last lines of a log, for an error message.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// `N` different ports nobody listens on now (the child binds them a moment later). Each is held
/// until all are picked: released one by one, the system may hand the same port out twice.
pub fn free_addrs<const N: usize>() -> anyhow::Result<[SocketAddr; N]> {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<Result<_, _>>()?;
    addrs
        .try_into()
        .map_err(|_| anyhow::anyhow!("picked a wrong number of ports"))
}

/// Raises this process's open-file soft limit to its hard limit (children inherit it) and
/// returns the new limit.
pub fn raise_fd_limit() -> anyhow::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

/// Resident memory of these processes together, in KB (`VmRSS`); a gone process counts 0.
pub fn rss_kb(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// CPU time (user + system, every thread) of these processes together, in microseconds.
pub fn cpu_micros(pids: &[u32]) -> u64 {
    let ticks: u64 = pids
        .iter()
        .filter_map(|pid| stat_fields(*pid))
        .map(|f| f.1 + f.2)
        .sum();
    ticks.saturating_mul(1_000_000) / clock_ticks()
}

/// CPU time of these processes' threads by thread name (threads of one name summed), in
/// microseconds. From the scheduler's own account of each thread's time on a CPU (`schedstat`,
/// nanoseconds): `stat`'s user and system times are sampled at each clock tick, which a thread
/// running in short bursts between ticks can escape. `stat`'s ticks where `schedstat` is
/// missing. A thread that ended is not counted.
pub fn cpu_by_thread(pids: &[u32]) -> BTreeMap<String, u64> {
    let mut by_name = BTreeMap::new();
    for (task, stat) in threads(pids) {
        let Some(name) = comm(&stat) else { continue };
        let precise = std::fs::read_to_string(task.join("schedstat"))
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok())
            .map(|nanos| nanos / 1000);
        let ticks = || {
            let f = fields_of(&stat)?;
            Some((f.1 + f.2).saturating_mul(1_000_000) / clock_ticks())
        };
        if let Some(micros) = precise.or_else(ticks) {
            *by_name.entry(name.to_owned()).or_insert(0) += micros;
        }
    }
    by_name
}

/// Every thread of these processes: its `/proc` folder and `stat` text.
fn threads(pids: &[u32]) -> Vec<(PathBuf, String)> {
    let tasks = pids
        .iter()
        .filter_map(|pid| std::fs::read_dir(format!("/proc/{pid}/task")).ok())
        .flatten()
        .filter_map(Result::ok);
    tasks
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            Some((task.path(), stat))
        })
        .collect()
}

/// A thread's name, from its `stat` text (in parentheses, and it may hold some).
fn comm(stat: &str) -> Option<&str> {
    let (_, rest) = stat.split_once('(')?;
    rest.rsplit_once(')').map(|(name, _)| name)
}

/// (parent pid, utime, stime) from `/proc/PID/stat`.
fn stat_fields(pid: u32) -> Option<(u32, u64, u64)> {
    fields_of(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// (parent pid, utime, stime) from a `stat` file's text (a process's or a thread's).
fn fields_of(stat: &str) -> Option<(u32, u64, u64)> {
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Counting from `state` (field 3 of proc(5)): ppid is field 4, utime 14, stime 15.
    let at = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    Some((u32::try_from(at(4)?).ok()?, at(14)?, at(15)?))
}

fn clock_ticks() -> u64 {
    use nix::unistd::{sysconf, SysconfVar};
    // USER_HZ is 100 on every Linux architecture in use; sysconf says so when it can.
    let ticks = sysconf(SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
    u64::try_from(ticks).unwrap_or(100).max(1)
}

/// The process and its direct children (nginx: the master and its workers).
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    let numbers = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok());
    pids.extend(numbers.filter(|n| stat_fields(*n).is_some_and(|f| f.0 == pid)));
    pids
}

/// Cores, kernel and processor, for the report.
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
    pub cpu: String,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, v)| v.trim());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    Machine {
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        kernel: kernel.trim().to_owned(),
        cpu: cpu.to_owned(),
    }
}
