//! Token quotas per day and per month (UTC), counted from `response.completed` usage. The book
//! is loaded from the store at startup and kept in memory (the server is the only writer of
//! usage); every addition is also written to the store, so a restart does not reset a quota.
//! A request is admitted while its subjects have tokens left; the request that crosses a quota
//! is counted in full, the next one is refused until the window turns.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::domain::Limits;
use crate::domain::Subject;
use crate::store::usage::UsageTotals;

/// Where a subject's tightest token quota stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenStatus {
    pub limit: u64,
    pub remaining: u64,
    /// Until the window of this quota turns.
    pub reset: Duration,
}

/// Tokens used by every subject in the current day and month.
#[derive(Debug, Default)]
pub struct QuotaBook {
    /// The current UTC day (its month is the current month).
    day: NaiveDate,
    used: HashMap<Subject, (u64, u64)>,
}

/// The store's key of `now`'s UTC day, `YYYY-MM-DD`. Written field by field rather than through
/// a `strftime` pattern: every completed call asks, and parsing the pattern each time cost more
/// than the rest of recording the call's usage.
pub fn day_key(now: DateTime<Utc>) -> String {
    format!("{:04}-{:02}-{:02}", now.year(), now.month(), now.day())
}

/// The store's key of `now`'s UTC month, `YYYY-MM`.
pub fn month_key(now: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", now.year(), now.month())
}

fn until_next_day(now: DateTime<Utc>) -> Duration {
    let next = now.date_naive().succ_opt().unwrap_or(NaiveDate::MAX);
    until(now, next)
}

fn until_next_month(now: DateTime<Utc>) -> Duration {
    let (year, month) = match now.month() {
        12 => (now.year() + 1, 1),
        m => (now.year(), m + 1),
    };
    let next = NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(NaiveDate::MAX);
    until(now, next)
}

fn until(now: DateTime<Utc>, date: NaiveDate) -> Duration {
    let start = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    start
        .and_then(|s| (s - now).to_std().ok())
        .unwrap_or_default()
}

impl QuotaBook {
    /// A book for `now` holding the totals read from the store for this day and month.
    pub fn new(now: DateTime<Utc>, totals: Vec<UsageTotals>) -> QuotaBook {
        let used = totals
            .into_iter()
            .map(|t| ((t.scope, t.subject.into()), (t.day_tokens, t.month_tokens)))
            .collect();
        QuotaBook {
            day: now.date_naive(),
            used,
        }
    }

    /// Starts a new day or month when `now` has moved into one (every request asks, so this
    /// compares dates rather than formatting them).
    fn roll(&mut self, now: DateTime<Utc>) {
        let day = now.date_naive();
        if day == self.day {
            return;
        }
        if (day.year(), day.month()) != (self.day.year(), self.day.month()) {
            self.used.clear();
        } else {
            for used in self.used.values_mut() {
                used.0 = 0;
            }
        }
        self.day = day;
    }

    /// `(today, this month)` for `subject`.
    pub fn used(&mut self, subject: &Subject, now: DateTime<Utc>) -> (u64, u64) {
        self.roll(now);
        self.used.get(subject).copied().unwrap_or_default()
    }

    pub fn add(&mut self, subject: &Subject, tokens: u64, now: DateTime<Utc>) {
        self.roll(now);
        let used = self.used.entry(subject.clone()).or_default();
        used.0 = used.0.saturating_add(tokens);
        used.1 = used.1.saturating_add(tokens);
    }
}

/// The tightest quota of `limits` given `used`; `Err` with the spent quota (its `reset` is when
/// the next request may come; the later window when both are spent) when one is spent.
pub fn check(
    limits: &Limits,
    used: (u64, u64),
    now: DateTime<Utc>,
) -> Result<Option<TokenStatus>, TokenStatus> {
    let windows = [
        limits
            .daily_tokens
            .map(|l| (l, used.0, until_next_day(now))),
        limits
            .monthly_tokens
            .map(|l| (l, used.1, until_next_month(now))),
    ];
    let mut tightest: Option<TokenStatus> = None;
    let mut spent: Option<TokenStatus> = None;
    for (limit, used, reset) in windows.into_iter().flatten() {
        let status = TokenStatus {
            limit,
            remaining: limit.saturating_sub(used),
            reset,
        };
        if status.remaining == 0 && spent.is_none_or(|s| reset > s.reset) {
            spent = Some(status);
        }
        if tightest.is_none_or(|t| status.remaining < t.remaining) {
            tightest = Some(status);
        }
    }
    match spent {
        Some(spent) => Err(spent),
        None => Ok(tightest),
    }
}

/// How much of one window's token quota is used, as a Codex client shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowUse {
    /// 0–100: the highest share used among the quotas of this window.
    pub used_percent: f64,
    /// The window's length, in minutes (a day, or the current month).
    pub window_minutes: u64,
    /// Until the window turns.
    pub reset: Duration,
}

/// The day's and the month's quota use of `limits` given `used`, each `None` without a quota.
pub fn window_use(limits: &Limits, used: (u64, u64), now: DateTime<Utc>) -> [Option<WindowUse>; 2] {
    let share = |limit: u64, used: u64| (used as f64 * 100.0 / limit.max(1) as f64).min(100.0);
    let month_minutes = || {
        let start = now.date_naive().with_day(1).unwrap_or(now.date_naive());
        let start = start
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or(now);
        let length = (now - start).to_std().unwrap_or_default() + until_next_month(now);
        length.as_secs() / 60
    };
    [
        limits.daily_tokens.map(|l| WindowUse {
            used_percent: share(l, used.0),
            window_minutes: 24 * 60,
            reset: until_next_day(now),
        }),
        limits.monthly_tokens.map(|l| WindowUse {
            used_percent: share(l, used.1),
            window_minutes: month_minutes(),
            reset: until_next_month(now),
        }),
    ]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::Scope;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn daily(n: u64) -> Limits {
        Limits {
            daily_tokens: Some(n),
            ..Limits::default()
        }
    }

    #[test]
    fn window_use_is_the_share_of_each_quota_used() {
        let now = at("2026-03-10T18:00:00Z");
        let limits = Limits {
            daily_tokens: Some(200),
            monthly_tokens: Some(1000),
            ..Limits::default()
        };
        let [day, month] = window_use(&limits, (50, 900), now);
        let day = day.unwrap();
        assert_eq!((day.used_percent, day.window_minutes), (25.0, 1440));
        assert_eq!(day.reset, Duration::from_secs(6 * 3600));
        let month = month.unwrap();
        assert_eq!(
            (month.used_percent, month.window_minutes),
            (90.0, 31 * 1440)
        );
        assert_eq!(window_use(&Limits::default(), (5, 5), now), [None, None]);
    }

    #[test]
    fn a_daily_quota_is_spent_and_restored_the_next_day() {
        let key: Subject = (Scope::Key, Arc::from("k"));
        let now = at("2026-03-10T23:00:00Z");
        let mut book = QuotaBook::new(now, Vec::new());
        book.add(&key, 100, now);
        let spent = check(&daily(100), book.used(&key, now), now).unwrap_err();
        assert_eq!((spent.limit, spent.remaining), (100, 0));
        assert_eq!(spent.reset, Duration::from_secs(3600));
        let tomorrow = at("2026-03-11T00:00:01Z");
        let status = check(&daily(100), book.used(&key, tomorrow), tomorrow)
            .unwrap()
            .unwrap();
        assert_eq!(status.remaining, 100);
        assert_eq!(
            book.used(&key, tomorrow),
            (0, 100),
            "the month keeps counting"
        );
    }

    #[test]
    fn a_monthly_quota_turns_with_the_month_and_the_tightest_quota_is_reported() {
        let key: Subject = (Scope::Tenant, Arc::from("t"));
        let now = at("2026-12-31T12:00:00Z");
        let totals = vec![UsageTotals {
            scope: Scope::Tenant,
            subject: "t".into(),
            day_tokens: 10,
            month_tokens: 990,
        }];
        let mut book = QuotaBook::new(now, totals);
        let limits = Limits {
            daily_tokens: Some(500),
            monthly_tokens: Some(1000),
            ..Limits::default()
        };
        let status = check(&limits, book.used(&key, now), now).unwrap().unwrap();
        assert_eq!((status.limit, status.remaining), (1000, 10));
        assert_eq!(status.reset, Duration::from_secs(12 * 3600));
        book.add(&key, 10, now);
        let spent = check(&limits, book.used(&key, now), now).unwrap_err();
        assert_eq!(spent.limit, 1000, "the monthly quota is the one spent");
        assert_eq!(spent.reset, Duration::from_secs(12 * 3600));
        let january = at("2027-01-01T00:00:00Z");
        assert_eq!(book.used(&key, january), (0, 0));
    }

    #[test]
    fn no_quota_means_no_status() {
        assert_eq!(check(&Limits::default(), (5, 5), Utc::now()), Ok(None));
    }
}
