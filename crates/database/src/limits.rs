//! Engine limits. Each is enforced with a typed `LIMIT_EXCEEDED` error whose
//! message names the limit and the value that exceeded it. The values follow
//! Convex's published limits (docs.convex.dev/production/state/limits).

/// Largest document, in bytes of its encoded value (1 MiB).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Most documents one transaction may scan (index rows read, including
/// filtered-out ones).
pub const MAX_DOCUMENTS_SCANNED: usize = 32_000;
/// Most bytes of documents one transaction may read (16 MiB).
pub const MAX_BYTES_READ: usize = 16 << 20;
/// Most distinct index ranges one transaction may read.
pub const MAX_INDEX_RANGES: usize = 4_096;
/// Most documents one transaction may write.
pub const MAX_DOCUMENTS_WRITTEN: usize = 16_000;
/// Most bytes one transaction may write (16 MiB).
pub const MAX_BYTES_WRITTEN: usize = 16 << 20;
/// Largest argument object of one function call, in bytes of its encoded value (8 MiB).
pub const MAX_ARGS_BYTES: usize = 8 << 20;
/// Largest page a single `paginate` call may request.
pub const MAX_PAGE_SIZE: usize = 8_192;
/// How many times a mutation is retried after a write conflict before it
/// fails with `WRITE_CONFLICT`.
pub const MAX_OCC_RETRIES: usize = 8;
