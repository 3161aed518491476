//! Connection plumbing every other module uses: error context, conversions
//! between the trait's types and PostgreSQL columns, checking connections out
//! of a pool, and [`TxnConn`], a pooled connection that never goes back to
//! its pool with a transaction still open.

use deadpool_postgres::{Object, Pool, PoolError, TimeoutType};
use errors::{Error, Result};
use persistence::{TableNumber, Timestamp};
use tokio_postgres::SimpleQueryMessage;

use crate::connect::Endpoint;

/// Adds context to driver errors and turns them into [`errors::Error`].
pub(crate) trait PgContext<T> {
    /// Maps the error to `INTERNAL_ERROR` with `what` describing the operation.
    fn context(self, what: &str) -> Result<T>;
}

impl<T> PgContext<T> for std::result::Result<T, tokio_postgres::Error> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| Error::internal(format!("postgres: {what}: {}", describe(&e))))
    }
}

/// A readable description of a driver error: for errors reported by the
/// server, its severity, message, SQLSTATE, detail and hint (the driver's own
/// `Display` only says "db error").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        // The driver's `Display` leaves out the cause (for example why a TLS
        // handshake failed); append the whole chain.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        return text;
    };
    let mut text = format!(
        "{}: {} (SQLSTATE {})",
        db.severity(),
        db.message(),
        db.code().code()
    );
    if let Some(detail) = db.detail() {
        text.push_str("; detail: ");
        text.push_str(detail);
    }
    if let Some(hint) = db.hint() {
        text.push_str("; hint: ");
        text.push_str(hint);
    }
    text
}

/// A timestamp as stored (`bigint`). Fails for timestamps of 2^63 and above,
/// which this backend cannot store (nanoseconds since 1970 reach 2^63 in the
/// year 2262).
pub(crate) fn ts_to_sql(ts: Timestamp) -> Result<i64> {
    i64::try_from(ts.0).map_err(|_| {
        Error::internal(format!(
            "postgres: timestamp {} does not fit in a bigint (must be below 2^63)",
            ts.0
        ))
    })
}

/// A stored timestamp, rejecting negative values.
pub(crate) fn ts_from_sql(value: i64) -> Result<Timestamp> {
    u64::try_from(value)
        .map(Timestamp)
        .map_err(|_| Error::internal(format!("postgres: negative timestamp {value} in storage")))
}

/// A stored table number or index id (`bigint` holding a `u32`).
pub(crate) fn u32_from_sql(value: i64, what: &str) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| Error::internal(format!("postgres: {what} {value} in storage is not a u32")))
}

/// A stored table number.
pub(crate) fn table_from_sql(value: i64) -> Result<TableNumber> {
    u32_from_sql(value, "table number").map(TableNumber)
}

/// A scan limit as a SQL `LIMIT` (saturating: `usize::MAX` means "all").
pub(crate) fn limit_to_sql(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The first column of the last row a simple query returned, as an `i64`
/// (simple queries return text).
pub(crate) fn last_i64(messages: &[SimpleQueryMessage], what: &str) -> Result<i64> {
    let text = messages
        .iter()
        .rev()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0)),
            _ => None,
        })
        .flatten()
        .ok_or_else(|| Error::internal(format!("postgres: {what}: no value returned")))?;
    text.parse::<i64>()
        .map_err(|e| Error::internal(format!("postgres: {what}: bad integer {text:?}: {e}")))
}

/// Checks a connection out of `pool`, naming the server (host, port,
/// database, user) when no connection can be made.
pub(crate) async fn checkout(pool: &Pool, endpoint: &Endpoint) -> Result<Object> {
    pool.get().await.map_err(|e| pool_error(&e, endpoint))
}

/// Describes a failure to get a pooled connection.
pub(crate) fn pool_error(e: &PoolError, endpoint: &Endpoint) -> Error {
    let cause = match e {
        PoolError::Backend(e) => describe(e),
        PoolError::Timeout(TimeoutType::Create) => format!(
            "no connection within the connect timeout ({:?})",
            endpoint.connect_timeout
        ),
        PoolError::Timeout(kind) => format!("timed out ({kind:?})"),
        other => other.to_string(),
    };
    Error::internal(format!(
        "postgres: cannot connect to {}: {cause}; is PostgreSQL running and reachable?",
        endpoint.target
    ))
}

/// What may be going on on a [`TxnConn`]'s connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// No transaction: the connection can go straight back to the pool.
    Idle,
    /// A transaction may be open (or a statement of one in flight).
    InTransaction,
    /// The connection's state is unknown (for example a `COMMIT` failed in
    /// transit): it must not be reused.
    Broken,
}

/// A pooled connection that may hold an open transaction.
///
/// Dropping it in [`ConnState::InTransaction`] rolls the transaction back on
/// a background task and only then returns the connection to the pool (the
/// connection never re-enters the pool with a transaction open, which would
/// hand a stale snapshot — or the write lock — to its next user and hold
/// back vacuum). Without a Tokio runtime, or if that task is cancelled, the
/// connection is closed instead, which makes the server roll back. A
/// [`ConnState::Broken`] connection is closed.
pub(crate) struct TxnConn {
    obj: Option<Object>,
    state: ConnState,
}

impl TxnConn {
    /// Wraps a freshly checked-out (idle) connection.
    pub(crate) fn new(obj: Object) -> Self {
        Self {
            obj: Some(obj),
            state: ConnState::Idle,
        }
    }

    /// The connection.
    pub(crate) fn client(&self) -> Result<&Object> {
        self.obj
            .as_ref()
            .ok_or_else(|| Error::internal("postgres: connection already released"))
    }

    /// Records what the connection is doing; set it *before* sending
    /// statements that open a transaction, so a cancelled future still rolls
    /// back.
    pub(crate) fn set_state(&mut self, state: ConnState) {
        self.state = state;
    }
}

impl Drop for TxnConn {
    fn drop(&mut self) {
        let Some(obj) = self.obj.take() else { return };
        match self.state {
            ConnState::Idle => drop(obj),
            ConnState::Broken => discard(obj),
            ConnState::InTransaction => rollback_in_background(obj),
        }
    }
}

/// Detaches the connection from its pool and closes it.
fn discard(obj: Object) {
    drop(Object::take(obj));
}

/// Sends `ROLLBACK` on a background task, then returns the connection to the
/// pool; closes it when that is impossible.
fn rollback_in_background(obj: Object) {
    let guard = DiscardUnlessReleased(Some(obj));
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move {
                let mut guard = guard;
                let rolled_back = match guard.0.as_ref() {
                    Some(obj) => obj.batch_execute("ROLLBACK").await.is_ok(),
                    None => false,
                };
                if rolled_back {
                    guard.release();
                }
            });
        }
        // No runtime to run the rollback on: closing the connection makes the
        // server roll back.
        Err(_) => drop(guard),
    }
}

/// Closes the connection on drop unless [`Self::release`] returned it to the
/// pool first (so a rollback task cancelled by runtime shutdown never puts a
/// connection with an open transaction back).
struct DiscardUnlessReleased(Option<Object>);

impl DiscardUnlessReleased {
    fn release(&mut self) {
        drop(self.0.take());
    }
}

impl Drop for DiscardUnlessReleased {
    fn drop(&mut self) {
        if let Some(obj) = self.0.take() {
            discard(obj);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_are_checked() {
        assert_eq!(ts_to_sql(Timestamp(0)).unwrap(), 0);
        assert_eq!(ts_to_sql(Timestamp(i64::MAX as u64)).unwrap(), i64::MAX);
        let err = ts_to_sql(Timestamp(1 << 63)).unwrap_err();
        assert!(err.message().contains("2^63"), "{err}");
        assert_eq!(ts_from_sql(5).unwrap(), Timestamp(5));
        assert!(ts_from_sql(-1).is_err());
        assert_eq!(u32_from_sql(i64::from(u32::MAX), "x").unwrap(), u32::MAX);
        assert!(u32_from_sql(-1, "x").is_err());
        assert!(u32_from_sql(1 << 32, "x").is_err());
        assert_eq!(limit_to_sql(0), 0);
        assert_eq!(limit_to_sql(usize::MAX), i64::MAX);
    }
}
