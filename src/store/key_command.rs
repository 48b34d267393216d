//! Running the operator's master-key command (`CODEX_RELAY_MASTER_KEY_COMMAND`): a secret
//! manager's CLI (`vault kv get -field=key …`, `gcloud secrets versions access …`,
//! `aws secretsmanager get-secret-value …`, `systemd-creds decrypt …`).
//!
//! It runs under `sh -c`, as those CLIs are written in their own docs (pipes, quoting, a
//! variable of the environment): the text comes from the operator's own environment, trusted as
//! much as the binary itself. Its standard output, trimmed, is the key; it is never shown. Its
//! failure (a non-zero exit, nothing printed, no end within the timeout) is said with the first
//! line of its standard error, bounded and redacted. The command runs in a process group of its
//! own, so a timeout kills what it started too.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use secrecy::SecretString;

use super::CryptoError;
use crate::obs::redact_secrets;

/// What is kept of each of the command's outputs; a key is 44 characters.
const OUTPUT_LIMIT: u64 = 64 * 1024;
/// How long the outputs may stay open once the command was killed (a child that left its group).
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Runs `command` once and returns its standard output, trimmed.
pub(super) fn run(command: &str, timeout: Duration) -> Result<SecretString, CryptoError> {
    let mut child = Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| CryptoError::Command(format!("could not be started with sh: {e}")))?;
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let group = i32::try_from(child.id()).ok();
    let (done, ended) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let status = match ended.recv_timeout(timeout) {
        Ok(status) => {
            status.map_err(|e| CryptoError::Command(format!("could not be waited for: {e}")))?
        }
        Err(_) => {
            kill_group(group);
            return Err(CryptoError::Command(format!(
                "did not finish within {} s (store.master_key_command_timeout_secs) and was killed",
                timeout.as_secs()
            )));
        }
    };
    let printed = stdout.recv_timeout(DRAIN_GRACE).unwrap_or_default();
    let complaint = stderr.recv_timeout(DRAIN_GRACE).unwrap_or_default();
    judge(status, &printed, &complaint)
}

/// The key from what the command printed, or why there is none.
fn judge(
    status: ExitStatus,
    printed: &[u8],
    complaint: &[u8],
) -> Result<SecretString, CryptoError> {
    let key = String::from_utf8_lossy(printed).trim().to_owned();
    let said = first_line(complaint, &key);
    if !status.success() {
        let how = status.code().map_or_else(
            || "was killed by a signal".to_owned(),
            |c| format!("exited with status {c}"),
        );
        return Err(CryptoError::Command(format!("{how}: {said}")));
    }
    if key.is_empty() {
        return Err(CryptoError::Command(format!("printed no key: {said}")));
    }
    Ok(SecretString::from(key))
}

/// The first non-empty line of the command's standard error, without anything it printed on
/// its standard output and with every credential-shaped part redacted.
fn first_line(stderr: &[u8], printed: &str) -> String {
    let text = String::from_utf8_lossy(stderr);
    let Some(line) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return "it wrote nothing to its standard error".to_owned();
    };
    let line = if printed.is_empty() {
        line.to_owned()
    } else {
        line.replace(printed, "[redacted]")
    };
    format!("\"{}\"", redact_secrets(&line))
}

/// Reads `pipe` to its end (at most [`OUTPUT_LIMIT`] bytes kept) on a thread of its own.
fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(pipe) = pipe {
            let _ = pipe.take(OUTPUT_LIMIT).read_to_end(&mut kept);
        }
        let _ = sender.send(kept);
    });
    receiver
}

/// Kills the command's whole process group (`sh` and what it started).
fn kill_group(group: Option<i32>) {
    if let Some(group) = group {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const SECOND: Duration = Duration::from_secs(5);

    #[test]
    fn the_output_trimmed_is_the_key() {
        let key = run("printf '  the-key\\n\\n'", SECOND).unwrap();
        assert_eq!(key.expose_secret(), "the-key");
    }

    #[test]
    fn a_failure_says_the_first_line_of_stderr_never_stdout() {
        let err = run(
            "echo printed-secret; echo >&2; echo 'denied: printed-secret Bearer abc.def' >&2; \
             echo second >&2; exit 3",
            SECOND,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("exited with status 3"), "{err}");
        assert!(err.contains("denied"), "{err}");
        assert!(!err.contains("printed-secret"), "{err}");
        assert!(!err.contains("abc.def"), "{err}");
        assert!(!err.contains("second"), "{err}");
    }

    #[test]
    fn a_long_complaint_is_bounded() {
        let err = run(
            "head -c 100000 /dev/zero | tr '\\0' 'x' >&2; exit 1",
            SECOND,
        )
        .unwrap_err()
        .to_string();
        assert!(err.len() < 500, "{}", err.len());
    }

    #[test]
    fn empty_output_is_refused() {
        let err = run("echo nothing here >&2", SECOND)
            .unwrap_err()
            .to_string();
        assert!(err.contains("printed no key"), "{err}");
        assert!(err.contains("nothing here"), "{err}");
    }
}
