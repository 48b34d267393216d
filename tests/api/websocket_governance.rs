//! What the HTTP path does per call, a WebSocket connection does per turn: request rates, key
//! checks, an audit row and an access line each, the account's quota read from the backend's
//! rate-limit event, `response.failed` for a turn cut after output, and failover on an error
//! frame before any output.

use awc::ws::{CloseCode, Frame};
use codex_relay::domain::Limits;
use codex_relay::store::admin_tokens::AdminScope;
use codex_relay::store::keys::reveal;
use codex_relay::store::NewKey;
use futures_util::StreamExt;
use serde_json::json;

use crate::audit::rows_when;
use crate::helpers::{admin_call, spawn_app, spawn_app_seeded, TestApp};
use crate::limits::key_with;
use crate::mock_upstream::Scripted;
use crate::pool_helpers::{server_error, spawn_pool};
use crate::websocket::{connect, connect_as, create, tokio_timeout, turn, types, Socket};

/// A relay with one more key, `name`, under `limits`: its secret is `app.seeded[0]`.
async fn app_with_key(name: &str, limits: Limits) -> TestApp {
    spawn_app_seeded(|_| {}, |store| vec![key_with(store, name, None, limits)]).await
}

/// Turns of `text` until one is refused (for 5 s at most: what the relay learns from its store
/// or its usage writer arrives on their rhythm); the refusal's frames.
async fn turn_until_refused(socket: &mut Socket, text: &str) -> Option<Vec<serde_json::Value>> {
    for _ in 0..50 {
        let events = turn(socket, &create(text)).await;
        if events[0]["type"] == "error" {
            return Some(events);
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

#[actix_web::test]
async fn each_turn_counts_against_the_keys_request_rate() {
    let limits = Limits {
        rpm: Some(1),
        burst: Some(3),
        ..Limits::default()
    };
    let app = app_with_key("ws-rate", limits).await;
    let key = &app.seeded[0];
    // The handshake is one request, each turn one more.
    let mut socket = connect_as(&app, key).await;
    for _ in 0..2 {
        let events = turn(&mut socket, &create("within the rate")).await;
        assert_eq!(types(&events).last(), Some(&"response.completed"));
    }
    let refused = turn(&mut socket, &create("one too many")).await;
    assert_eq!(refused[0]["type"], "error");
    assert_eq!(refused[0]["status"], 429);
    assert_eq!(refused[0]["error"]["code"], "rate_limit_exceeded");
    assert!(
        refused[0]["headers"]["retry-after"].is_string(),
        "{}",
        refused[0]
    );
    assert_eq!(app.mock.state.websocket_frames().len(), 2);
}

#[actix_web::test]
async fn a_key_revoked_while_connected_ends_the_connection_at_its_next_turn() {
    let app = app_with_key("short-lived", Limits::default()).await;
    let mut socket = connect_as(&app, &app.seeded[0]).await;
    let events = turn(&mut socket, &create("while valid")).await;
    assert_eq!(types(&events).last(), Some(&"response.completed"));
    app.store.revoke_key("short-lived").unwrap();
    // The relay's key ring follows the store within its sync interval.
    let refused = turn_until_refused(&mut socket, "after revocation")
        .await
        .expect("the revoked key kept being served");
    assert_eq!(refused[0]["status"], 401);
    assert_eq!(refused[0]["error"]["code"], "invalid_api_key");
    match tokio_timeout(socket.next()).await {
        Some(Ok(Frame::Close(Some(reason)))) => assert_eq!(reason.code, CloseCode::Policy),
        other => panic!("expected a close 1008, got {other:?}"),
    }
}

#[actix_web::test]
async fn each_turn_is_an_audit_row_of_its_own_and_the_handshake_is_one_too() {
    let app = spawn_app().await;
    let admin = app.admin_token(AdminScope::Read).await;
    let mut socket = connect(&app).await;
    turn(&mut socket, &create("first turn")).await;
    turn(&mut socket, &create("second turn")).await;
    let turns = rows_when(&app, &admin, "action=responses.create", 2).await;
    assert_eq!(turns.len(), 2, "{turns:?}");
    for row in &turns {
        assert_eq!(row["status"], 200);
        assert_eq!(row["model_served"], "gpt-5.5");
        assert_eq!(row["stream_outcome"], "completed");
        assert!(row["input_tokens"].as_u64().unwrap() > 0, "{row}");
        assert_eq!(row["account_id"], json!(app.account_id));
    }
    assert_ne!(turns[0]["request_id"], turns[1]["request_id"]);
    let opened = rows_when(&app, &admin, "action=responses.websocket", 1).await;
    assert_eq!(opened[0]["status"], 101);
    let text = serde_json::to_string(&turns).unwrap();
    assert!(!text.contains("first turn") && !text.contains(&app.key));
    let (_, usage) = admin_call(&app, "GET", "/admin/v1/keys", &admin, None).await;
    assert!(!usage.to_string().contains(&app.key));
}

#[actix_web::test]
async fn the_backends_rate_limit_event_is_the_accounts_quota_and_the_caller_sees_its_own() {
    let app = spawn_app().await;
    let read = app.admin_token(AdminScope::Read).await;
    app.mock
        .state
        .set_used_percent_for("acct-test-1", 91.0, 20.0);
    let mut socket = connect(&app).await;
    let events = turn(&mut socket, &create("how full is it")).await;
    assert_eq!(events[0]["type"], "codex.rate_limits");
    // The backend's event names the account's plan ("plus" in the mock); the caller's, which
    // replaces it, none.
    assert_eq!(events[0]["plan_type"], json!(null), "{}", events[0]);
    let path = format!("/admin/v1/accounts/{}", app.account_id);
    let (status, view) = admin_call(&app, "GET", &path, &read, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        view["pool"]["quota"]["primary"]["used_percent"], 91.0,
        "{view}"
    );
}

#[actix_web::test]
async fn a_turn_cut_after_output_ends_with_response_failed_and_the_next_opens_a_new_connection() {
    let app = spawn_app().await;
    let mut socket = connect(&app).await;
    app.mock.state.push_scripted(Scripted::CutAfterEvents(6));
    let cut = turn(&mut socket, &create("cut me")).await;
    let last = cut.last().unwrap();
    assert_eq!(last["type"], "response.failed", "{cut:?}");
    assert_eq!(last["response"]["error"]["code"], "upstream_disconnected");
    let next = turn(&mut socket, &create("carry on")).await;
    assert_eq!(types(&next).last(), Some(&"response.completed"));
    assert_eq!(app.mock.state.websocket_connections_opened(), 2);
}

#[actix_web::test]
async fn an_error_frame_before_any_output_moves_the_turn_to_another_account() {
    let (app, pool) = spawn_pool(|_| {}).await;
    let mut socket = connect(&app).await;
    app.mock
        .state
        .push_scripted_for(pool[0].chatgpt, server_error());
    let events = turn(&mut socket, &create("first account errs")).await;
    assert_eq!(
        types(&events).last(),
        Some(&"response.completed"),
        "{events:?}"
    );
    let frames = app.mock.state.websocket_frames();
    let accounts: Vec<_> = frames
        .iter()
        .filter_map(|f| f.header("chatgpt-account-id"))
        .collect();
    assert_eq!(accounts.len(), 2, "{accounts:?}");
    assert_eq!(accounts[0], pool[0].chatgpt);
    assert_ne!(accounts[1], pool[0].chatgpt);
}

#[actix_web::test]
async fn a_token_refreshed_between_turns_opens_a_new_upstream_connection_unless_a_turn_continues() {
    let app = spawn_app().await;
    let write = app.admin_token(AdminScope::Write).await;
    let mut socket = connect(&app).await;
    let first = turn(&mut socket, &create("with the first token")).await;
    let id = first.last().unwrap()["response"]["id"].clone();
    let path = format!("/admin/v1/accounts/{}/refresh", app.account_id);
    let (status, answer) = admin_call(&app, "POST", &path, &write, None).await;
    assert_eq!(status, 200, "{answer}");
    // A follow-up stays on the connection that knows its previous response.
    let mut follow_up = create("continuing");
    follow_up["previous_response_id"] = id;
    let events = turn(&mut socket, &follow_up).await;
    assert_eq!(
        types(&events).last(),
        Some(&"response.completed"),
        "{events:?}"
    );
    // A new conversation goes on a new connection, with the new token.
    let events = turn(&mut socket, &create("a new conversation")).await;
    assert_eq!(types(&events).last(), Some(&"response.completed"));
    let frames = app.mock.state.websocket_frames_by_connection();
    assert_eq!(frames.len(), 3);
    assert_eq!(
        frames[0].0, frames[1].0,
        "the follow-up kept its connection"
    );
    assert_ne!(frames[1].0, frames[2].0, "a new upstream connection");
    let bearer = |i: usize| frames[i].1.header("authorization").unwrap().to_owned();
    assert_ne!(bearer(0), bearer(2), "opened with the new token");
    let issued = app.mock.state.issued_tokens();
    assert!(issued.iter().any(|t| bearer(2).ends_with(t.as_str())));
}

#[actix_web::test]
async fn aliases_hidden_models_allow_lists_and_compat_apply_to_each_turn() {
    let app = spawn_app_seeded(
        |s| {
            s.models.aliases.insert("codex".into(), "gpt-5.5".into());
            s.models.hidden = vec!["gpt-5.4-mini".into()];
        },
        |store| {
            let only_codex = NewKey {
                name: "only-codex".into(),
                models: Some(vec!["codex".into()]),
                ..NewKey::default()
            };
            vec![reveal(&store.create_key_with(&only_codex).unwrap()).to_owned()]
        },
    )
    .await;
    let mut socket = connect(&app).await;
    let mut aliased = create("by alias");
    aliased["model"] = json!("codex");
    // Sampling parameters the backend refuses are dropped (compat.mode = relaxed).
    aliased["temperature"] = json!(0.2);
    let events = turn(&mut socket, &aliased).await;
    assert_eq!(types(&events).last(), Some(&"response.completed"));
    let sent = app.mock.state.websocket_frames()[0].json().unwrap();
    assert_eq!(sent["model"], "gpt-5.5", "the upstream sees the slug");
    assert_eq!(sent["type"], "response.create");
    assert!(sent.get("temperature").is_none(), "{sent}");

    let mut hidden = create("a hidden model");
    hidden["model"] = json!("gpt-5.4-mini");
    let refused = turn(&mut socket, &hidden).await;
    assert_eq!(refused[0]["status"], 404);
    assert_eq!(refused[0]["error"]["code"], "model_not_found");

    let mut restricted = connect_as(&app, &app.seeded[0]).await;
    let refused = turn(&mut restricted, &create("the slug itself")).await;
    assert_eq!(refused[0]["status"], 403);
    assert_eq!(refused[0]["error"]["param"], "model");
    assert_eq!(app.mock.state.websocket_frames().len(), 1);
}

#[actix_web::test]
async fn a_keys_concurrency_limit_counts_turns_in_flight_across_its_connections() {
    let limits = Limits {
        max_concurrent: Some(1),
        ..Limits::default()
    };
    let app = app_with_key("one-at-a-time", limits).await;
    let key = &app.seeded[0];
    app.mock
        .state
        .set_event_delay(std::time::Duration::from_millis(100));
    let mut first = connect_as(&app, key).await;
    let mut second = connect_as(&app, key).await;
    crate::websocket::send(&mut first, &create("a slow answer")).await;
    // The first turn's events are arriving: it holds the key's one slot.
    match tokio_timeout(first.next()).await {
        Some(Ok(Frame::Text(_))) => {}
        other => panic!("expected the first turn's first event, got {other:?}"),
    }
    let refused = turn(&mut second, &create("meanwhile")).await;
    assert_eq!(refused[0]["status"], 429);
    assert_eq!(refused[0]["error"]["code"], "rate_limit_exceeded");
    let rest = crate::websocket::read_turn(&mut first).await;
    assert_eq!(types(&rest).last(), Some(&"response.completed"));
    // Its slot is free once its turn has ended.
    let events = turn(&mut second, &create("after it")).await;
    assert_eq!(types(&events).last(), Some(&"response.completed"));
}

#[actix_web::test]
async fn a_client_that_leaves_pings_unanswered_is_closed_with_1001() {
    let app = crate::helpers::spawn_app_with(|s| s.websocket.ping_interval_secs = 1).await;
    let mut socket = connect(&app).await;
    let mut pings = 0;
    let reason = loop {
        // Reading without answering: awc's client leaves pongs to its user.
        match tokio_timeout(socket.next()).await {
            Some(Ok(Frame::Ping(_))) => pings += 1,
            Some(Ok(Frame::Close(Some(reason)))) => break reason,
            other => panic!("expected pings then a close, got {other:?}"),
        }
    };
    assert_eq!(pings, 2);
    assert_eq!(reason.code, CloseCode::Away);
    assert_eq!(reason.description.as_deref(), Some("no answer to pings"));
}

#[actix_web::test]
async fn a_401_on_the_kept_connection_renews_the_token_and_the_moved_turn_is_not_found() {
    let app = spawn_app().await;
    let mut socket = connect(&app).await;
    let first = turn(&mut socket, &create("first")).await;
    let id = first.last().unwrap()["response"]["id"].clone();
    app.mock.state.push_scripted(Scripted::Status {
        status: 401,
        body: json!({"error": {"type": "invalid_request_error", "code": "token_expired"}})
            .to_string(),
        headers: vec![],
    });
    let mut follow_up = create("continuing");
    follow_up["previous_response_id"] = id;
    let events = turn(&mut socket, &follow_up).await;
    assert_eq!(events[0]["type"], "error", "{events:?}");
    assert_eq!(events[0]["error"]["code"], "previous_response_not_found");
    assert_eq!(
        app.mock.state.refresh_calls(),
        1,
        "the token was renewed once"
    );
    assert_eq!(app.mock.state.websocket_connections_opened(), 2);
    let events = turn(&mut socket, &create("the whole conversation")).await;
    assert_eq!(types(&events).last(), Some(&"response.completed"));
}

#[actix_web::test]
async fn each_turns_tokens_count_against_the_keys_quota() {
    crate::limits::away_from_midnight().await;
    let limits = Limits {
        daily_tokens: Some(1),
        ..Limits::default()
    };
    let app = app_with_key("thrifty-ws", limits).await;
    let mut socket = connect_as(&app, &app.seeded[0]).await;
    let events = turn(&mut socket, &create("spend the day")).await;
    assert_eq!(types(&events).last(), Some(&"response.completed"));
    // The usage is counted when the turn's stream ends; the next turn finds the quota spent.
    let refused = turn_until_refused(&mut socket, "one more")
        .await
        .expect("the quota was never spent");
    assert_eq!(refused[0]["status"], 429);
    assert_eq!(refused[0]["error"]["code"], "quota_exceeded");
}
