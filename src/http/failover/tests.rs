use super::*;

#[test]
fn a_cooling_pool_answers_with_the_earliest_reset_whatever_failed_last() {
    let until = SystemTime::now() + Duration::from_secs(120);
    let verdict = AcquireError::AllCooling {
        until,
        usage_limit: true,
    };
    let error = exhausted(verdict, Some(Failure::Transport));
    let ApiError::UsageLimitReached {
        retry_after_secs: Some(secs),
        resets_at: Some(_),
    } = error
    else {
        panic!("{error:?}");
    };
    assert!((110..=120).contains(&secs));
    let verdict = AcquireError::AllCooling {
        until,
        usage_limit: false,
    };
    let error = exhausted(verdict, None);
    assert!(
        matches!(error, ApiError::UpstreamRateLimited { .. }),
        "{error:?}"
    );
}

#[test]
fn otherwise_the_relay_names_the_failure_and_never_passes_a_429_through() {
    let limited = Failure::Status(
        StatusCode::TOO_MANY_REQUESTS,
        ApiError::UpstreamRateLimited {
            retry_after_secs: Some(9),
        },
    );
    let error = exhausted(AcquireError::NoUsableAccount, Some(limited));
    assert!(matches!(error, ApiError::NoUsableAccount), "{error:?}");
    let overloaded = Failure::FailedInStream(Some("slow_down".into()));
    let error = exhausted(AcquireError::NoUsableAccount, Some(overloaded));
    assert!(matches!(error, ApiError::ResponseFailed { status, .. } if status == 503));
    assert!(matches!(
        exhausted(AcquireError::Busy, None),
        ApiError::PoolBusy
    ));
    assert!(matches!(
        exhausted(AcquireError::EmptyPool, None),
        ApiError::NoAccounts
    ));
}

#[test]
fn only_account_failures_move_the_request() {
    for status in [401, 403, 429, 500, 502, 503] {
        assert!(
            fails_over(StatusCode::from_u16(status).unwrap()),
            "{status}"
        );
    }
    for status in [400, 404, 413, 422] {
        assert!(
            !fails_over(StatusCode::from_u16(status).unwrap()),
            "{status}"
        );
    }
    assert!(stream_failure_fails_over(Some("server_is_overloaded")));
    assert!(!stream_failure_fails_over(Some("context_length_exceeded")));
}

mod record {
    //! The record of a request's attempts, as the access line and the log read it.

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use relay_actors::{AccountId, Placement};
    use serde_json::Value;

    use super::super::attempts::{
        AttemptEnd, AttemptRecord, Attempts, FailoverReason, UpstreamAnswer, UpstreamTimes,
    };
    use crate::edge::phases::Phases;
    use crate::obs::{build_logger, LogSink};
    use crate::settings::LogLevel;

    const FAILED_OVER: &str = "upstream attempt failed; the request moves to another account";

    fn answered(status: u16, request_id: &str) -> Option<UpstreamAnswer> {
        Some(UpstreamAnswer {
            status,
            request_id: Some(request_id.to_owned()),
        })
    }

    fn attempt(account: &str, answer: Option<UpstreamAnswer>, end: AttemptEnd) -> AttemptRecord {
        AttemptRecord {
            account_id: AccountId::from(account),
            placement: Placement::Unbound,
            answer,
            end,
            times: UpstreamTimes::default(),
        }
    }

    fn record(attempts: Vec<AttemptRecord>) -> Attempts {
        let mut record = Attempts::new();
        for attempt in attempts {
            record.push(attempt);
        }
        record
    }

    /// The lines `record` logs, parsed.
    fn logged(record: &Attempts, carries_encrypted: bool) -> Vec<Value> {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let (log, _) = build_logger(LogSink::Buffer(Arc::clone(&buffer)), LogLevel::Debug);
        record.log(&log, carries_encrypted);
        let bytes = buffer.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The access line's account and upstream answer come from the last attempt.
    fn assert_ends_on(record: Attempts, account: &str, answer: Option<UpstreamAnswer>) {
        let last = record.into_last().unwrap();
        assert_eq!(last.account_id.as_str(), account);
        assert_eq!(last.answer, answer);
    }

    #[test]
    fn one_committed_attempt_names_its_account_and_logs_no_failover() {
        let record = record(vec![attempt(
            "acct-a",
            answered(200, "req_a"),
            AttemptEnd::Committed,
        )]);
        assert!(logged(&record, false).is_empty());
        assert_eq!(record.accounts().count(), 1);
        assert_ends_on(record, "acct-a", answered(200, "req_a"));
    }

    #[test]
    fn a_failover_then_a_commit_logs_the_failed_attempt_and_ends_on_the_account_that_answered() {
        let record = record(vec![
            attempt(
                "acct-a",
                answered(500, "req_a"),
                AttemptEnd::FailedOver(FailoverReason::Status(500)),
            ),
            attempt("acct-b", answered(200, "req_b"), AttemptEnd::Committed),
        ]);
        let lines = logged(&record, false);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["msg"], FAILED_OVER);
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["attempt"], 1);
        assert_eq!(line["account_id"], "acct-a");
        assert_eq!(line["reason"], "upstream_status_500");
        let accounts: Vec<_> = record.accounts().map(AccountId::as_str).collect();
        assert_eq!(accounts, ["acct-a", "acct-b"]);
        assert_ends_on(record, "acct-b", answered(200, "req_b"));
    }

    #[test]
    fn an_exhausted_pool_logs_every_attempt_and_ends_on_the_last_one_tried() {
        let overloaded = FailoverReason::FailedInStream(Some("server_is_overloaded".into()));
        let record = record(vec![
            attempt(
                "acct-a",
                None,
                AttemptEnd::FailedOver(FailoverReason::Transport),
            ),
            attempt(
                "acct-b",
                answered(429, "req_b"),
                AttemptEnd::FailedOver(FailoverReason::Status(429)),
            ),
            attempt(
                "acct-c",
                answered(200, "req_c"),
                AttemptEnd::FailedOver(overloaded),
            ),
        ]);
        let lines = logged(&record, false);
        let seen: Vec<_> = lines
            .iter()
            .map(|l| (l["msg"].clone(), l["attempt"].clone(), l["reason"].clone()))
            .collect();
        let expected = [
            (1, "upstream_unreachable"),
            (2, "upstream_status_429"),
            (3, "failed_in_stream:server_is_overloaded"),
        ]
        .map(|(n, reason)| (FAILED_OVER.into(), n.into(), reason.into()));
        assert_eq!(seen, expected);
        assert_ends_on(record, "acct-c", answered(200, "req_c"));
    }

    #[test]
    fn an_attempt_that_stops_the_failover_says_why() {
        let record = record(vec![
            attempt(
                "acct-a",
                None,
                AttemptEnd::FailedOver(FailoverReason::Timeout),
            ),
            attempt(
                "acct-b",
                None,
                AttemptEnd::RequestAtFault(FailoverReason::Timeout),
            ),
        ]);
        let lines = logged(&record, false);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1]["msg"]
            .as_str()
            .unwrap()
            .contains("the request is at fault"));
        assert_eq!(lines[1]["attempt"], 2);
        assert_eq!(lines[1]["account_id"], "acct-b");
        assert_eq!(lines[1]["reason"], "upstream_timeout");
        let too_deep = record_of_one(AttemptEnd::TooDeep(FailoverReason::Status(500)));
        let lines = logged(&too_deep, false);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["max_depth"], crate::nesting::MAX_DEPTH);
        let final_answer = record_of_one(AttemptEnd::Final);
        assert!(logged(&final_answer, false).is_empty());
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn earlier_attempts_and_pauses_are_failover_time_and_the_last_attempt_is_timed() {
        let mut failed = attempt(
            "acct-a",
            answered(500, "req_a"),
            AttemptEnd::FailedOver(FailoverReason::Status(500)),
        );
        failed.times = UpstreamTimes {
            head: ms(30),
            start: None,
            total: ms(32),
        };
        let mut served = attempt("acct-b", answered(200, "req_b"), AttemptEnd::Committed);
        served.times = UpstreamTimes {
            head: ms(5),
            start: Some(ms(9)),
            total: ms(9),
        };
        let mut record = record(vec![failed, served]);
        record.waited_for_lease(ms(1));
        record.paused(ms(10));
        record.waited_for_lease(ms(2));
        let mut phases = Phases::default();
        record.phases(&mut phases);
        assert_eq!(phases.attempts, Some(2));
        assert_eq!(phases.lease, Some(ms(3)));
        assert_eq!(phases.failover, Some(ms(42)));
        assert_eq!(phases.upstream_connect, Some(ms(5)));
        assert_eq!(phases.upstream_first_byte, Some(ms(9)));
    }

    #[test]
    fn a_request_that_got_no_account_spent_its_time_waiting_for_one() {
        let mut record = record(vec![]);
        record.waited_for_lease(ms(250));
        let mut phases = Phases::default();
        record.phases(&mut phases);
        assert_eq!(phases.attempts, Some(0));
        assert_eq!(phases.lease, Some(ms(250)));
        assert_eq!(phases.failover, Some(Duration::ZERO));
        assert_eq!(phases.upstream_connect, None);
        assert_eq!(phases.upstream_first_byte, None);
    }

    fn record_of_one(end: AttemptEnd) -> Attempts {
        record(vec![attempt("acct-a", answered(500, "req_a"), end)])
    }

    #[test]
    fn a_conversation_off_its_account_is_logged_and_a_detour_only_with_encrypted_content() {
        let mut moved = attempt("acct-b", answered(200, "req_b"), AttemptEnd::Committed);
        moved.placement = Placement::Moved {
            from: AccountId::from("acct-a"),
        };
        let lines = logged(&record(vec![moved]), true);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["from_account_id"], "acct-a");
        assert_eq!(lines[0]["account_id"], "acct-b");
        assert_eq!(lines[0]["carries_encrypted_content"], true);
        let detour = || {
            let mut detour = attempt("acct-b", answered(200, "req_b"), AttemptEnd::Committed);
            detour.placement = Placement::Detour {
                bound: AccountId::from("acct-a"),
            };
            record(vec![detour])
        };
        assert!(logged(&detour(), false).is_empty());
        let lines = logged(&detour(), true);
        assert_eq!(lines[0]["bound_account_id"], "acct-a");
    }

    #[test]
    fn each_reason_has_one_bounded_name_and_the_log_keeps_the_detail() {
        let long_code = "x".repeat(10_000);
        let reasons = [
            (FailoverReason::Transport, "upstream_unreachable"),
            (FailoverReason::Timeout, "upstream_timeout"),
            (FailoverReason::Status(503), "upstream_status"),
            (FailoverReason::FailedInStream(None), "failed_in_stream"),
            (
                FailoverReason::FailedInStream(Some(long_code)),
                "failed_in_stream",
            ),
        ];
        for (reason, name) in &reasons {
            assert_eq!(reason.name(), *name);
            assert!(reason.to_string().starts_with(name), "{reason}");
            assert!(reason.to_string().len() < 200, "{reason}");
        }
        assert_eq!(reasons[2].0.to_string(), "upstream_status_503");
        assert_eq!(reasons[3].0.to_string(), "failed_in_stream:unknown");
    }
}

#[test]
fn each_attempt_is_counted_by_how_its_upstream_call_ended() {
    use crate::pool::metrics::CallStatus;
    let record = |answer: Option<u16>, end| AttemptRecord {
        account_id: relay_actors::AccountId::from("acc"),
        placement: relay_actors::Placement::Unbound,
        answer: answer.map(|status| UpstreamAnswer {
            status,
            request_id: None,
        }),
        end,
        times: super::attempts::UpstreamTimes::default(),
    };
    let failed_over = |answer, reason| record(answer, AttemptEnd::FailedOver(reason));
    let cases = [
        (
            failed_over(Some(500), FailoverReason::Status(500)),
            Some(CallStatus::Status(500)),
        ),
        // A 200 stream cut before any output answered 200, then failed.
        (
            failed_over(Some(200), FailoverReason::Transport),
            Some(CallStatus::Status(200)),
        ),
        (
            failed_over(None, FailoverReason::Transport),
            Some(CallStatus::Transport),
        ),
        (
            failed_over(None, FailoverReason::Timeout),
            Some(CallStatus::Timeout),
        ),
        // A 401 whose token could not be renewed: the upstream did answer 401.
        (
            failed_over(None, FailoverReason::Status(401)),
            Some(CallStatus::Status(401)),
        ),
        (
            record(Some(200), AttemptEnd::Committed),
            Some(CallStatus::Status(200)),
        ),
        (
            record(Some(400), AttemptEnd::Final),
            Some(CallStatus::Status(400)),
        ),
    ];
    for (record, status) in cases {
        assert_eq!(record.call_status(), status, "{record:?}");
    }
}

#[test]
fn only_a_connection_that_never_opened_is_the_account_s_alone() {
    use std::io::{Error, ErrorKind};
    let refused = || Error::from(ErrorKind::ConnectionRefused);
    let cases = [
        (SendRequestError::Timeout, Some(Signature::Timeout)),
        // The body never left.
        (SendRequestError::Connect(ConnectError::Timeout), None),
        (SendRequestError::Connect(ConnectError::Io(refused())), None),
        // The connection ended after the request went, before its status line.
        (
            SendRequestError::Connect(ConnectError::Disconnected),
            Some(Signature::Dropped),
        ),
        (
            SendRequestError::Send(Error::from(ErrorKind::ConnectionReset)),
            Some(Signature::Dropped),
        ),
    ];
    for (error, signature) in cases {
        assert_eq!(unanswered_signature(&error), signature, "{error:?}");
    }
}
