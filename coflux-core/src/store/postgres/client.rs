//! [`PgClient`]: a blocking PostgreSQL client (like the `postgres` crate's) that can also send
//! several statements in one round trip ([`PgClient::pipeline`]), which a group-commit batch
//! uses: its statements go out together and their results come back together.
//!
//! It drives an async `tokio_postgres` client on a runtime of its own (current-thread, no
//! threads), so like the `postgres` client it must not be called, nor dropped, on an async
//! worker (see [`super::off_runtime`]).

use futures::future::join_all;
use tokio::runtime::Runtime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, NoTls, Row, Statement, ToStatement};

/// A statement parameter owned by a queued statement.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// What a pipelined statement returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The number of rows it changed.
    Changed(u64),
    /// The boolean in the first column of its only row (a query).
    Flag(bool),
    /// The two BIGINTs of its only row (a query).
    Pair(i64, i64),
}

/// Whether a pipelined statement is executed or queried (see [`Outcome`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Execute,
    QueryFlag,
    QueryPair,
}

/// A blocking client with pipelining.
pub(crate) struct PgClient {
    client: Client,
    runtime: Runtime,
}

impl PgClient {
    /// Connects to `url` (no TLS).
    pub(crate) fn connect(url: &str) -> Result<Self, crate::store::StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (client, connection) = runtime.block_on(tokio_postgres::connect(url, NoTls))?;
        // Driven whenever the runtime runs, i.e. during each call below.
        runtime.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "PostgreSQL connection closed");
            }
        });
        Ok(Self { client, runtime })
    }

    /// Whether the connection is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Runs `sql` (any number of statements, no parameters, one round trip); the first
    /// column of the first row any of them returns, as a BIGINT (`None`: no row, or not one).
    pub(crate) fn batch_first_int(&mut self, sql: &str) -> Result<Option<i64>, Error> {
        let messages = self.runtime.block_on(self.client.simple_query(sql))?;
        Ok(messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
            _ => None,
        }))
    }

    /// Runs `sql` (any number of statements, no parameters).
    pub(crate) fn batch_execute(&mut self, sql: &str) -> Result<(), Error> {
        self.runtime.block_on(self.client.batch_execute(sql))
    }

    /// Prepares `sql`.
    pub(crate) fn prepare(&mut self, sql: &str) -> Result<Statement, Error> {
        self.runtime.block_on(self.client.prepare(sql))
    }

    /// Executes a statement; the number of rows changed.
    pub(crate) fn execute<T: ?Sized + ToStatement>(
        &mut self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        self.runtime
            .block_on(self.client.execute(statement, params))
    }

    /// The rows of a query.
    pub(crate) fn query<T: ?Sized + ToStatement>(
        &mut self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        self.runtime.block_on(self.client.query(statement, params))
    }

    /// The only row of a query.
    pub(crate) fn query_one<T: ?Sized + ToStatement>(
        &mut self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        self.runtime
            .block_on(self.client.query_one(statement, params))
    }

    /// The row of a query, if any.
    pub(crate) fn query_opt<T: ?Sized + ToStatement>(
        &mut self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        self.runtime
            .block_on(self.client.query_opt(statement, params))
    }

    /// Calls `f` with each row of `sql` (no parameters) as it arrives, without holding all
    /// rows in memory.
    pub(crate) fn for_each_row<E: From<Error>>(
        &mut self,
        sql: &str,
        mut f: impl FnMut(&Row) -> Result<(), E>,
    ) -> Result<(), E> {
        use futures::StreamExt;
        let client = &self.client;
        self.runtime.block_on(async move {
            let rows = client.query_raw(sql, std::iter::empty::<i64>()).await?;
            futures::pin_mut!(rows);
            while let Some(row) = rows.next().await {
                f(&row?)?;
            }
            Ok(())
        })
    }

    /// Sends every statement at once and waits for all their results (in order): one round
    /// trip for all of them. PostgreSQL runs them in order; inside a transaction, the first
    /// that fails makes the later ones fail too.
    pub(crate) fn pipeline(
        &mut self,
        statements: &[(Statement, Vec<Param>, Kind)],
    ) -> Vec<Result<Outcome, Error>> {
        let client = &self.client;
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = statements
            .iter()
            .map(|(_, params, _)| {
                params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect()
            })
            .collect();
        let futures =
            statements
                .iter()
                .zip(&params)
                .map(|((statement, _, kind), params)| async move {
                    match kind {
                        Kind::Execute => client
                            .execute(statement, params)
                            .await
                            .map(Outcome::Changed),
                        Kind::QueryFlag => client
                            .query_one(statement, params)
                            .await
                            .and_then(|row| row.try_get(0))
                            .map(Outcome::Flag),
                        Kind::QueryPair => client
                            .query_one(statement, params)
                            .await
                            .and_then(|row| Ok(Outcome::Pair(row.try_get(0)?, row.try_get(1)?))),
                    }
                });
        // `join_all` polls them in order, so they are sent in order.
        self.runtime.block_on(join_all(futures))
    }
}

/// Owned statement parameters.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        vec![$(Box::new($value) as $crate::store::postgres::client::Param),*]
    };
}
pub(super) use params;
