//! Crash safety of token refresh: the real binary serves while refreshes run constantly (tokens
//! live two seconds, the refresh skew is an hour), is killed with SIGKILL at random moments and
//! restarted, again and again. Afterwards every account has one complete, openable token set;
//! an account whose rotation was lost to a kill (the issuer rotated the refresh token, the relay
//! died before storing it) is out of rotation saying `refresh_token_reused`, never half-written;
//! and once such accounts are logged in again the restarted relay serves. Stopped by SIGTERM
//! instead, the binary first stores rotated tokens its store refused earlier.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_relay::store::{MasterKey, Store};
use rand::Rng;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::cli::{relay, run, stdout};
use crate::helpers::{body, client, eventually};
use crate::mock_upstream::{fake_auth_json, MockUpstream};

const ACCOUNTS: usize = 3;
const KILLS: usize = 6;

/// A relay process that is SIGKILLed when dropped, so a failing assertion leaves no relay behind.
pub struct Relay(pub Child);

impl Relay {
    fn kill(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }

    /// Stops the relay with SIGTERM and waits (30 s at most) until it has exited.
    pub async fn terminate(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let exited = eventually(30, || {
            let exited = self.0.try_wait().unwrap().is_some();
            async move { exited }
        })
        .await;
        assert!(exited, "the relay did not stop");
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `codex-relay serve` with constant refreshing; returns the child and its address.
async fn serve(dir: &Path, mock: &MockUpstream) -> (Relay, String) {
    let constant_refreshing = [
        ("CODEX_RELAY__OAUTH__REFRESH_SKEW_SECS", "3600"),
        ("CODEX_RELAY__OAUTH__REFRESH_MIN_INTERVAL_SECS", "0"),
        ("CODEX_RELAY__OAUTH__REFRESH_RETRY_INITIAL_MS", "50"),
        ("CODEX_RELAY__OAUTH__REFRESH_CHECK_INTERVAL_SECS", "1"),
    ];
    let (child, addr, _) = serve_with(dir, mock, &constant_refreshing).await;
    (child, addr)
}

/// `codex-relay serve` with `env` added; returns the child, its address and its log lines. Waits
/// without blocking the thread: the mock upstream runs on it and the relay calls it as it starts.
pub async fn serve_with(
    dir: &Path,
    mock: &MockUpstream,
    env: &[(&str, &str)],
) -> (Relay, String, Arc<Mutex<Vec<String>>>) {
    let child = relay(dir)
        .env("CODEX_RELAY__SERVER__LISTEN", "127.0.0.1:0")
        .env("CODEX_RELAY__UPSTREAM__BASE_URL", mock.url())
        .env("CODEX_RELAY__OAUTH__ISSUER", mock.url())
        .envs(env.iter().copied())
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Relay(child);
    let lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&logs);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                if value["msg"] == "listening" {
                    let _ = tx.send(value["addr"].as_str().unwrap_or_default().to_owned());
                }
            }
            kept.lock().unwrap().push(line);
        }
    });
    let mut addr = None;
    let started = eventually(60, || {
        addr = addr.take().or_else(|| rx.try_recv().ok());
        let known = addr.is_some();
        async move { known }
    })
    .await;
    assert!(started, "the relay starts");
    (child, addr.unwrap_or_default(), logs)
}

pub fn logged(logs: &Mutex<Vec<String>>, text: &str) -> bool {
    logs.lock().unwrap().iter().any(|line| line.contains(text))
}

/// The status of one `POST /v1/responses` to the relay at `addr` with `key`; 0 when it could
/// not be sent.
pub async fn ask(addr: &str, key: &str) -> u16 {
    let sent = client()
        .post(format!("http://{addr}/v1/responses"))
        .bearer_auth(key)
        .send_json(&body("gpt-5.5", "hi", false))
        .await;
    match sent {
        Ok(mut response) => {
            let _ = response.body().await;
            response.status().as_u16()
        }
        Err(_) => 0,
    }
}

#[actix_web::test]
async fn sigkill_during_refreshes_never_leaves_a_torn_token_set() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    mock.state.set_token_lifetime(2);
    mock.state.set_token_delay(Duration::from_millis(30));
    let dir = tempfile::tempdir().unwrap();
    let key = stdout(&run(
        relay(dir.path()).args(["key", "create", "--name", "crash"])
    ));
    for n in 0..ACCOUNTS {
        let exp = chrono::Utc::now().timestamp() + 2;
        let auth = fake_auth_json(&format!("acct-crash-{n}"), "c@example.com", "plus", exp);
        let path = dir.path().join(format!("auth-{n}.json"));
        std::fs::write(&path, auth.to_string()).unwrap();
        assert!(
            run(relay(dir.path()).args(["account", "import"]).arg(&path))
                .status
                .success()
        );
    }

    for _ in 0..KILLS {
        let (mut child, addr) = serve(dir.path(), &mock).await;
        let load: Vec<_> = (0..8)
            .map(|_| {
                let (addr, key) = (addr.clone(), key.clone());
                actix_web::rt::spawn(async move {
                    loop {
                        ask(&addr, &key).await;
                    }
                })
            })
            .collect();
        // Kill once this run's refreshes are under way (however slow a loaded machine is to get
        // there), at a random moment among them. No refresh comes when every account has lost
        // its rotation to an earlier kill; then the wait runs out and the run ends all the same.
        let calls = mock.state.refresh_calls();
        let _ = eventually(10, || async { mock.state.refresh_calls() > calls }).await;
        let wait = rand::thread_rng().gen_range(0..700);
        actix_web::rt::time::sleep(Duration::from_millis(wait)).await;
        child.kill();
        for task in load {
            task.abort();
        }
    }

    assert!(
        mock.state.refresh_calls() > KILLS,
        "refreshes did not run while the relay was killed"
    );
    let key_text = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    let master = MasterKey::from_base64(&key_text).unwrap();
    let store = Store::open(&dir.path().join("relay.db"), 2, master).unwrap();
    let accounts = store.list_accounts().unwrap();
    assert_eq!(accounts.len(), ACCOUNTS);
    for (n, account) in accounts.iter().enumerate() {
        assert!(
            store.token_set_is_complete(&account.id).unwrap(),
            "{}",
            account.id
        );
        let credentials = store.load_credentials(&account.id).unwrap().unwrap();
        assert!(!credentials.access_token.expose_secret().is_empty());
        if let Some(reason) = account.reauth_reason.as_deref() {
            // Only a rotation lost to a kill may cost an account, and then it says so; the
            // operator logs it in again.
            let refresh = store.refresh_token(&account.id).unwrap().unwrap();
            assert!(mock
                .state
                .refresh_token_spent(refresh.refresh_token.expose_secret()));
            assert!(reason.contains("refresh_token_reused"), "{reason}");
            let path = dir.path().join(format!("auth-{n}.json"));
            let exp = chrono::Utc::now().timestamp() + 2;
            let chatgpt_id = &account.chatgpt_account_id;
            let auth = fake_auth_json(chatgpt_id, "c@example.com", "plus", exp);
            std::fs::write(&path, auth.to_string()).unwrap();
            assert!(
                run(relay(dir.path()).args(["account", "import"]).arg(&path))
                    .status
                    .success()
            );
        }
    }
    let (mut child, addr) = serve(dir.path(), &mock).await;
    assert!(
        eventually(20, || async { ask(&addr, &key).await == 200 }).await,
        "the restarted relay does not serve"
    );
    child.kill();
    mock.stop().await;
}

#[actix_web::test]
async fn sigterm_stores_rotated_tokens_the_store_refused_before_the_relay_exits() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = stdout(&run(
        relay(dir.path()).args(["key", "create", "--name", "stop"])
    ));
    let exp = chrono::Utc::now().timestamp() + 3600;
    let auth = fake_auth_json("acct-stop-1", "s@example.com", "plus", exp);
    let path = dir.path().join("auth.json");
    std::fs::write(&path, auth.to_string()).unwrap();
    let id = stdout(&run(relay(dir.path())
        .args(["account", "import"])
        .arg(&path)));
    // The token is due at once; no write of held tokens falls due before the stop.
    let due_at_once = [
        ("CODEX_RELAY__OAUTH__REFRESH_SKEW_SECS", "7200"),
        ("CODEX_RELAY__OAUTH__REFRESH_RETRY_INITIAL_MS", "600000"),
    ];
    let (mut child, addr, logs) = serve_with(dir.path(), &mock, &due_at_once).await;
    // Another process holds the store's write lock past the relay's busy timeout.
    let holder = rusqlite::Connection::open(dir.path().join("relay.db")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    assert_eq!(ask(&addr, &key).await, 200);
    let refused = eventually(20, || async {
        logged(&logs, "the refreshed tokens could not be stored")
    })
    .await;
    assert!(refused, "the store did not refuse the rotated tokens");
    holder.execute_batch("ROLLBACK").unwrap();

    child.terminate().await;
    let key_text = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    let master = MasterKey::from_base64(&key_text).unwrap();
    let store = Store::open(&dir.path().join("relay.db"), 2, master).unwrap();
    let stored = store.refresh_token(&id).unwrap().unwrap();
    assert!(
        !mock
            .state
            .refresh_token_spent(stored.refresh_token.expose_secret()),
        "the store kept the spent refresh token"
    );
    assert_eq!(mock.state.refresh_calls(), 1);
    for said in ["rotated tokens not stored", "rotated tokens stored"] {
        assert!(logged(&logs, said), "{said}");
    }
    assert!(!logged(&logs, "rotated tokens lost"));
    mock.stop().await;
}
