//! Scripting the mock's token endpoint: queued failures for refresh grants (each permanent code,
//! a bare status such as 401 or 500, an unreadable answer, an answer echoing tokens), the
//! lifetime and size of minted tokens (so expiry-driven refresh and a store's growth are
//! testable), a pause before answering (so refreshes are in flight while requests arrive), and
//! counters of refresh grants and code exchanges.

use std::collections::VecDeque;
use std::time::Duration;

/// A scripted answer to the next refresh grant.
#[derive(Clone, Debug)]
pub enum TokenFailure {
    /// `status` with `{"error":{"code": code, "message": …}}`.
    Error { status: u16, code: String },
    /// `status` with a body that names no code.
    Status(u16),
    /// 200 with a body that is not JSON (a broken proxy, a cut connection).
    Garbage,
    /// A normal rotation (the refresh token is spent) whose access token cannot be sent as a
    /// header value.
    UnsafeAccessToken,
    /// An issuer that echoes credentials: the refresh token it was sent and `access_token`, bare
    /// and as `key=value`, in its error's code and message (`status` 2xx: in a JSON string
    /// instead of a token set, so that the relay's decoding error quotes them).
    Echo { status: u16, access_token: String },
}

pub struct TokenScript {
    pub(super) failures: VecDeque<TokenFailure>,
    pub(super) lifetime_secs: i64,
    /// Extra bytes of claims in every minted JWT (an issuer whose tokens grow).
    pub(super) padding: usize,
    pub(super) delay: Duration,
    pub(super) refresh_calls: usize,
    pub(super) code_exchanges: usize,
}

impl Default for TokenScript {
    fn default() -> Self {
        TokenScript {
            failures: VecDeque::new(),
            lifetime_secs: 3600,
            padding: 0,
            delay: Duration::ZERO,
            refresh_calls: 0,
            code_exchanges: 0,
        }
    }
}

/// How the token endpoint mints a token set.
#[derive(Clone, Copy)]
pub(super) struct Minting {
    pub(super) lifetime: i64,
    pub(super) padding: usize,
}

impl TokenScript {
    pub(super) fn minting(&self) -> Minting {
        Minting {
            lifetime: self.lifetime_secs,
            padding: self.padding,
        }
    }
}
