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
