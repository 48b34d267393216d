//! Pure selection: which accounts to try, in which order, for one request.

/// A candidate as the router sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub usable: bool,
}

/// Round robin: usable, non-excluded accounts, starting at `cursor` (mod the pool size) and
/// wrapping around, so every usable account is tried once and turns rotate across requests.
pub fn round_robin<'a>(
    candidates: &[Candidate<'a>],
    cursor: usize,
    exclude: &[&str],
) -> Vec<&'a str> {
    if candidates.is_empty() {
        return Vec::new();
    }
    let start = cursor % candidates.len();
    candidates[start..]
        .iter()
        .chain(&candidates[..start])
        .filter(|c| c.usable && !exclude.contains(&c.id))
        .map(|c| c.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool<'a>(ids: &[&'a str], unusable: &[&str]) -> Vec<Candidate<'a>> {
        ids.iter()
            .map(|id| Candidate {
                id,
                usable: !unusable.contains(id),
            })
            .collect()
    }

    #[test]
    fn turns_rotate_across_the_pool() {
        let p = pool(&["a", "b", "c"], &[]);
        assert_eq!(round_robin(&p, 0, &[]), ["a", "b", "c"]);
        assert_eq!(round_robin(&p, 1, &[]), ["b", "c", "a"]);
        assert_eq!(round_robin(&p, 5, &[]), ["c", "a", "b"]);
    }

    #[test]
    fn unusable_and_excluded_accounts_are_skipped() {
        let p = pool(&["a", "b", "c"], &["b"]);
        assert_eq!(round_robin(&p, 0, &["c"]), ["a"]);
        assert!(round_robin(&p, 0, &["a", "c"]).is_empty());
    }

    #[test]
    fn an_empty_pool_has_no_candidates() {
        assert!(round_robin(&[], 3, &[]).is_empty());
    }
}
