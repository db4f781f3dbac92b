//! The runs list on PostgreSQL: the shared page algorithm ([`crate::store::run_list`]) over
//! this backend's rows.

use super::Conn;
use crate::model::{Millis, RunId, TargetRef};
use crate::store::StoreError;
use crate::store::run_list::{
    FINISHED_SQL, ROOT_SQL, RunFilter, RunSource, ScanRow, TARGET_SQL, scan_sql_with, to_i64,
    to_u64,
};

/// [`RunSource`] on a connection inside a read transaction.
pub(super) struct PgRuns<'a> {
    pub(super) conn: &'a mut Conn,
}

impl RunSource for PgRuns<'_> {
    fn scan(
        &mut self,
        filter: &RunFilter,
        before: i64,
        limit: usize,
    ) -> Result<Vec<ScanRow>, StoreError> {
        let sql = scan_sql_with(filter, "$1", "$2");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.conn
            .client
            .query(&sql, &[&before, &limit])?
            .iter()
            .map(|row| {
                Ok(ScanRow {
                    id: RunId(to_u64(row.try_get(0)?)?),
                    environment: row.try_get(1)?,
                    created_at: row.try_get(2)?,
                    active: row.try_get(3)?,
                })
            })
            .collect()
    }

    fn target(&mut self, run: RunId) -> Result<Option<TargetRef>, StoreError> {
        let rows = self.conn.query(TARGET_SQL, &[&to_i64(run.0)])?;
        rows.first()
            .map(|row| {
                Ok(TargetRef {
                    module: row.try_get(0)?,
                    name: row.try_get(1)?,
                })
            })
            .transpose()
    }

    fn root(&mut self, run: RunId) -> Result<Option<(bool, Option<String>)>, StoreError> {
        let rows = self.conn.query(ROOT_SQL, &[&to_i64(run.0)])?;
        rows.first()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .transpose()
    }

    fn finished_at(&mut self, run: RunId) -> Result<Option<Millis>, StoreError> {
        let rows = self.conn.query(FINISHED_SQL, &[&to_i64(run.0)])?;
        match rows.first() {
            Some(row) => Ok(row.try_get(0)?),
            None => Ok(None),
        }
    }
}
