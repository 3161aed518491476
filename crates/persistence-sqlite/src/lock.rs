//! The data-directory lock: an exclusive advisory lock (`flock` on Unix,
//! `LockFileEx` on Windows) on `connvo.lock`, so two servers never open the
//! same data directory. SQLite's own locking would let a second process in
//! (WAL allows many connections) and its writes would race ours.
//!
//! The lock is tied to an open file: the OS releases it when the process dies,
//! so a crashed server never leaves a stale lock behind. Advisory locks are
//! unreliable on some network file systems; keep data directories local.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use errors::{Error, Result};

/// An acquired data-directory lock; released on drop.
#[derive(Debug)]
pub(crate) struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the exclusive lock on `path` (created if missing) without
    /// waiting. Fails with a message naming the path when it is held.
    pub(crate) fn acquire(path: &Path) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| {
                Error::internal(format!("cannot open lock file {}: {e}", path.display()))
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(path).unwrap_or_default();
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                };
                return Err(Error::internal(format!(
                    "data directory {} is already in use: its lock file {} is held by another \
                     Connvo server{holder}; only one server may open a data directory at a time",
                    path.parent().unwrap_or(path).display(),
                    path.display(),
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::internal(format!(
                    "cannot lock data directory lock file {}: {e}",
                    path.display()
                )));
            }
        }
        // Record the owner for humans; the lock itself is what matters.
        let note = file
            .set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        if let Err(e) = note {
            tracing::warn!(path = %path.display(), error = %e, "cannot write pid to lock file");
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the file releases the lock; unlock explicitly anyway so the
        // release does not depend on every duplicate of the descriptor closing.
        if let Err(e) = self.file.unlock() {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot unlock data directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_until_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.lock");
        let first = DirLock::acquire(&path).unwrap();
        assert_eq!(first.path(), path);
        let err = DirLock::acquire(&path).unwrap_err();
        assert!(err.message().contains(&path.display().to_string()), "{err}");
        assert!(
            err.message()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        DirLock::acquire(&path).unwrap();
    }
}
