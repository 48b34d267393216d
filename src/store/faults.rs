//! A fault tests put into a running relay's store: a full disk. SQLite's `max_page_count` is a
//! setting of each connection, so it is applied to every connection of the pool at once.

use super::{Store, StoreError};

/// SQLite's own largest `max_page_count`: no cap.
const UNCAPPED: i64 = 4_294_967_294;

impl Store {
    /// With `full`, caps the database file at its current size on every pooled connection, so
    /// that a write needing a new page fails with `SQLITE_FULL` as on a full disk; without, lifts
    /// the cap. For tests: connections the pool opens later are not capped.
    #[doc(hidden)]
    pub fn simulate_full_disk(&self, full: bool) -> Result<(), StoreError> {
        // Holding them all at once reaches every connection, not one of them several times.
        let held = (0..self.pool.max_size())
            .map(|_| self.conn())
            .collect::<Result<Vec<_>, _>>()?;
        // A cap below the file's size is raised to it.
        let pages = if full { 1 } else { UNCAPPED };
        for conn in &held {
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |row| {
                row.get::<_, i64>(0)
            })?;
        }
        Ok(())
    }
}
