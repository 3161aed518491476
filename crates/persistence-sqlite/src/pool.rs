//! The bounded pool of read-only connections.
//!
//! A semaphore with one permit per connection bounds concurrent readers; a
//! reader that finds the pool exhausted waits (asynchronously) for a permit.
//! Holding a permit guarantees a connection: either an idle one or, if one
//! was discarded after an error, a freshly opened one. A [`PooledConn`] goes
//! back to the pool on drop, after ending any transaction still open on it.
//!
//! Every checkout first passes the [`ReaderGate`], which the checkpointer
//! closes for the few milliseconds of a WAL restart (see [`crate::gate`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use errors::{Error, Result};
use rusqlite::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::conn::{open_reader, rollback_if_open};
use crate::gate::{GatePass, ReaderGate};
use crate::lock::DirLock;

/// Read-only connections to the database.
pub(crate) struct ReadPool {
    /// Connections not checked out. Declared before `_lock` so that they
    /// close before the data-directory lock is released.
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    gate: Arc<ReaderGate>,
    db_path: PathBuf,
    _lock: Arc<DirLock>,
}

impl ReadPool {
    /// Opens `size` read connections up front (so a broken setup fails at
    /// startup rather than on the first query).
    pub(crate) fn open(db_path: PathBuf, size: usize, lock: Arc<DirLock>) -> Result<Self> {
        let idle = (0..size)
            .map(|_| open_reader(&db_path))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            idle: Mutex::new(idle),
            permits: Arc::new(Semaphore::new(size)),
            gate: Arc::new(ReaderGate::default()),
            db_path,
            _lock: lock,
        })
    }

    /// The gate every checkout passes.
    pub(crate) fn gate(&self) -> &Arc<ReaderGate> {
        &self.gate
    }

    /// Borrows a connection, waiting while the gate is closed or all
    /// connections are in use.
    pub(crate) async fn checkout(self: &Arc<Self>) -> Result<PooledConn> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("sqlite: the read pool is closed"))?;
        // After the permit: a reader queued for a connection holds no read
        // transaction, so it must not count as one the gate waits for.
        let pass = self.gate.enter().await;
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            // A connection was discarded after an error: replace it.
            None => open_reader(&self.db_path)?,
        };
        Ok(PooledConn {
            conn: Some(conn),
            pool: Arc::clone(self),
            _pass: pass,
            _permit: permit,
        })
    }
}

/// A connection borrowed from the [`ReadPool`].
pub(crate) struct PooledConn {
    conn: Option<Connection>,
    pool: Arc<ReadPool>,
    /// Leaves the gate after `drop` has ended the read transaction.
    _pass: GatePass,
    /// Released after `drop` has put the connection back.
    _permit: OwnedSemaphorePermit,
}

impl PooledConn {
    /// The connection.
    pub(crate) fn conn(&self) -> Result<&Connection> {
        self.conn
            .as_ref()
            .ok_or_else(|| Error::internal("sqlite: read connection already returned"))
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // End the read transaction so the WAL can be checkpointed past it.
        if let Err(e) = rollback_if_open(&conn) {
            tracing::warn!(error = %e, "discarding sqlite read connection");
            return;
        }
        self.pool
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
    }
}
