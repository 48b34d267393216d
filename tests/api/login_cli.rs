//! `codex-relay account login --device | --paste | --listen` end to end: the real binary against
//! the mock issuer, each flow ending like an import, and each failure explained.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::cli::{relay, run, stderr, stdout};
use crate::mock_upstream::{DeviceOutcome, MockUpstream};

fn login(dir: &Path, mock: &MockUpstream) -> Command {
    let mut command = relay(dir);
    command
        .env("CODEX_RELAY__OAUTH__ISSUER", mock.url())
        .env("CODEX_RELAY__OAUTH__DEVICE_MIN_INTERVAL_MS", "20")
        .args(["account", "login"]);
    command
}

/// Runs a command to its end off the test's runtime, which must keep serving the mock.
async fn run_async(mut command: Command) -> std::process::Output {
    actix_web::rt::task::spawn_blocking(move || run(&mut command))
        .await
        .unwrap()
}

fn accounts(dir: &Path) -> Vec<Value> {
    let list = run(relay(dir).args(["account", "list", "--json"]));
    let value: Value = serde_json::from_slice(&list.stdout).unwrap();
    value.as_array().unwrap().clone()
}

/// Nothing a login handles may be printed: tokens the mock minted, the PKCE verifier (checked
/// through the code exchange's recorded form), the authorization code.
fn assert_no_secret_printed(mock: &MockUpstream, output: &str) {
    for token in mock.state.issued_tokens() {
        assert!(!output.contains(&token), "an access token was printed");
    }
    for request in mock.state.requests() {
        let Ok(body) = std::str::from_utf8(&request.body) else {
            continue;
        };
        for (key, value) in url::form_urlencoded::parse(body.as_bytes()) {
            if key == "code_verifier" || key == "code" {
                assert!(!output.contains(value.as_ref()), "{key} was printed");
            }
        }
    }
}

#[actix_web::test]
async fn device_code_login_polls_until_approved_and_stores_the_account() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    mock.state.script_login(|s| s.pending_polls = 2);
    let dir = tempfile::tempdir().unwrap();
    let mut command = login(dir.path(), &mock);
    command.args(["--device", "--label", "team-a"]);
    let output = run_async(command).await;
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("/codex/device"), "{err}");
    let id = stdout(&output);
    assert_eq!(id.len(), 36, "{id:?}");
    assert_eq!(mock.state.device_polls(), 3);
    assert_eq!(mock.state.code_exchanges(), 1);
    let stored = accounts(dir.path());
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["id"], id.as_str());
    assert_eq!(stored[0]["label"], "team-a");
    assert_eq!(stored[0]["email"], "o***@example.com");
    assert_no_secret_printed(&mock, &format!("{err}{id}"));

    // The same ChatGPT account again: updated, not duplicated.
    let mut command = login(dir.path(), &mock);
    command.arg("--device");
    let again = run_async(command).await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&again), id);
    assert!(stderr(&again).contains("already in the pool"));
    assert_eq!(accounts(dir.path()).len(), 1);
    mock.stop().await;
}

/// A change to the mock's login behaviour.
type Script = fn(&mut crate::mock_upstream::LoginScript);

#[actix_web::test]
async fn device_code_failures_are_explained() {
    let cases: [(&str, Script); 3] = [
        ("device-code login is not enabled", |s| {
            s.usercode_not_found = true
        }),
        ("denied", |s| s.outcome = DeviceOutcome::Denied),
        ("not approved within", |s| {
            s.outcome = DeviceOutcome::Expired
        }),
    ];
    for (message, script) in cases {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        mock.state.script_login(script);
        let dir = tempfile::tempdir().unwrap();
        let mut command = login(dir.path(), &mock);
        command.arg("--device");
        let output = run_async(command).await;
        assert!(!output.status.success());
        assert!(
            stderr(&output).contains(message),
            "{message}: {}",
            stderr(&output)
        );
        assert!(stdout(&output).is_empty());
        assert!(accounts(dir.path()).is_empty());
        mock.stop().await;
    }
    // Pending for longer than the login may wait.
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    mock.state.script_login(|s| s.pending_polls = usize::MAX);
    let dir = tempfile::tempdir().unwrap();
    let mut command = login(dir.path(), &mock);
    command
        .env("CODEX_RELAY__OAUTH__DEVICE_TIMEOUT_SECS", "1")
        .arg("--device");
    let output = run_async(command).await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("not approved within 1 min"),
        "{}",
        stderr(&output)
    );
    mock.stop().await;
}

/// A running `account login` whose stderr is read line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: String,
}

impl Running {
    fn start(mut command: Command) -> Running {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = BufReader::new(child.stderr.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Running {
            child,
            lines,
            seen: String::new(),
        }
    }

    /// Waits for the printed authorize URL.
    fn authorize_url(&mut self) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(20))
                .expect("a URL is printed");
            self.seen.push_str(&line);
            self.seen.push('\n');
            if let Some(at) = line.find("http") {
                if line.contains("/oauth/authorize?") {
                    return line[at..].trim().to_owned();
                }
            }
        }
    }

    async fn finish(self) -> (bool, String, String) {
        actix_web::rt::task::spawn_blocking(move || self.wait())
            .await
            .unwrap()
    }

    fn wait(self) -> (bool, String, String) {
        let output = self.child.wait_with_output().unwrap();
        // Every line up to the end of stderr: the reader stops when the child has exited.
        let rest: Vec<String> = self.lines.iter().collect();
        let err = format!("{}{}", self.seen, rest.join("\n"));
        (output.status.success(), stdout(&output), err)
    }
}

/// Follows the mock's authorize redirect by hand: the callback URL a browser would show.
async fn callback_url(authorize: &str) -> String {
    let response = awc::Client::builder()
        .disable_redirects()
        .finish()
        .get(authorize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = response
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap();
    location.to_owned()
}

async fn paste(
    mock: &MockUpstream,
    dir: &Path,
    edit: impl FnOnce(String) -> String,
) -> (bool, String, String) {
    let mut running = Running::start({
        let mut command = login(dir, mock);
        command.arg("--paste");
        command
    });
    let authorize = running.authorize_url();
    assert!(authorize.contains("code_challenge_method=S256") && authorize.contains("state="));
    let pasted = edit(callback_url(&authorize).await);
    let mut stdin = running.child.stdin.take().unwrap();
    stdin.write_all(format!("{pasted}\n").as_bytes()).unwrap();
    drop(stdin);
    running.finish().await
}

#[actix_web::test]
async fn a_pasted_callback_url_logs_the_account_in() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ok, id, err) = paste(&mock, dir.path(), |url| url).await;
    assert!(ok, "{err}");
    assert!(err.contains("localhost:1455/auth/callback"), "{err}");
    assert_eq!(accounts(dir.path())[0]["id"], id.as_str());
    assert_eq!(mock.state.code_exchanges(), 1);
    assert_no_secret_printed(&mock, &format!("{err}{id}"));
    mock.stop().await;
}

#[actix_web::test]
async fn paste_login_refuses_a_foreign_state_and_explains_a_missing_entitlement() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = paste(&mock, dir.path(), |url| url.replace("state=", "state=x")).await;
    assert!(!ok);
    assert!(err.contains("state does not match"), "{err}");
    let (ok, _, err) = paste(&mock, dir.path(), |_| "not a url".to_owned()).await;
    assert!(!ok);
    assert!(err.contains("not the callback URL"), "{err}");
    mock.state.script_login(|s| {
        s.authorize_error = Some(("access_denied".into(), "missing_codex_entitlement".into()));
    });
    let (ok, _, err) = paste(&mock, dir.path(), |url| url).await;
    assert!(!ok);
    assert!(
        err.contains("Codex is not enabled for your workspace"),
        "{err}"
    );
    mock.state.script_login(|s| {
        s.authorize_error = Some(("access_denied".into(), "The user cancelled".into()));
    });
    let (ok, _, err) = paste(&mock, dir.path(), |url| url).await;
    assert!(!ok);
    assert!(err.contains("denied"), "{err}");
    assert_eq!(mock.state.code_exchanges(), 0, "nothing was exchanged");
    assert!(accounts(dir.path()).is_empty());
    mock.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[actix_web::test]
async fn the_local_listener_receives_the_callback_and_logs_the_account_in() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut running = Running::start({
        let mut command = login(dir.path(), &mock);
        command
            .env("CODEX_RELAY__OAUTH__CALLBACK_PORT", port.to_string())
            .arg("--listen");
        command
    });
    let authorize = running.authorize_url();
    let callback = callback_url(&authorize).await;
    assert!(callback.starts_with(&format!("http://localhost:{port}/auth/callback?")));
    let local = callback.replace("localhost", "127.0.0.1");
    // A stray request with a wrong state does not end the login.
    let stray = local.replace("state=", "state=x");
    let client = crate::helpers::client();
    assert_eq!(client.get(&stray).send().await.unwrap().status(), 400);
    let mut answer = client.get(&local).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let page = answer.body().await.unwrap();
    assert!(String::from_utf8_lossy(&page).contains("Signed in"));
    let (ok, id, err) = running.finish().await;
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("ssh -L {port}:localhost:{port}")),
        "{err}"
    );
    assert_eq!(accounts(dir.path())[0]["id"], id.as_str());
    assert_no_secret_printed(&mock, &format!("{err}{id}"));
    mock.stop().await;
}

#[actix_web::test]
async fn a_denied_sign_in_ends_the_listening_login_with_the_reason() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    mock.state.script_login(|s| {
        s.authorize_error = Some(("access_denied".into(), "The user cancelled".into()));
    });
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut running = Running::start({
        let mut command = login(dir.path(), &mock);
        command
            .env("CODEX_RELAY__OAUTH__CALLBACK_PORT", port.to_string())
            .arg("--listen");
        command
    });
    let callback = callback_url(&running.authorize_url()).await;
    let local = callback.replace("localhost", "127.0.0.1");
    let mut answer = crate::helpers::client().get(&local).send().await.unwrap();
    let page = answer.body().await.unwrap();
    assert!(String::from_utf8_lossy(&page).contains("The login failed"));
    let (ok, id, err) = running.finish().await;
    assert!(!ok && id.is_empty());
    assert!(
        err.contains("denied") && err.contains("The user cancelled"),
        "{err}"
    );
    assert!(accounts(dir.path()).is_empty());
    assert_eq!(mock.state.code_exchanges(), 0);
    mock.stop().await;
}
