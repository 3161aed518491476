//! Full-text search indexes (`IndexKind::Search`): the tokenizer, the index
//! keys of a document, and query execution with BM25 ranking.
//!
//! # Storage
//!
//! A search index is an inverted index kept in the ordinary index entries: a
//! document has one entry per *distinct term* of its search field,
//!
//! ```text
//! encode(filter₁) … encode(filterₙ) encode(term) encode(_creationTime) encode(_id)
//! ```
//!
//! (filter fields in declared order, the term as a string value). So the
//! entries are durable, written in the same backend transaction as the
//! document, identical on SQLite and PostgreSQL, and a query's reads are index
//! key intervals like any other: they go into the read set, which makes
//! search queries reactive and mutations that search serializable.
//!
//! # Tokenizer
//!
//! Like Convex's (tantivy's simple tokenizer): a term is a maximal run of
//! alphanumeric characters (`char::is_alphanumeric`, Unicode-aware; so
//! punctuation, whitespace, symbols and emoji separate terms and are dropped),
//! lowercased. Terms longer than [`MAX_TERM_BYTES`] UTF-8 bytes are cut at a
//! character boundary. Only the first [`MAX_TERMS_PER_DOCUMENT`] distinct
//! terms of a document are indexed; later new terms do not match it.
//!
//! # Matching and ranking
//!
//! A query's text is tokenized the same way (at most [`MAX_QUERY_TERMS`]
//! distinct terms). Every term matches documents containing it exactly; the
//! *last* term also matches as a prefix (type-ahead: `"road"` matches
//! `"roadmap"`). A document matching any term is a candidate (OR semantics).
//! Each term is one range scan over `filters ++ term` (a prefix range for the
//! last term). When the query does not fix every filter field with `eq`, the
//! entries cannot be range-scanned by term, so the table is scanned instead
//! (bounded by the transaction's scan limits, and reactive on the whole
//! table).
//!
//! # Reactivity
//!
//! The term ranges scanned are in the read set, so a write that adds or
//! removes a matching term (a new match, a lost match) invalidates the
//! search. A commit that rewrites a document keeps the entries of its
//! unchanged terms *and leaves them out of the write set* (an edit of a long
//! note costs write-set keys for the terms that changed only); instead a
//! search records a `by_id` point read of every candidate it scored, and every
//! write of a document writes its `by_id` key, so any change to a candidate
//! (its text, hence its score, or any other field) invalidates the search too.
//!
//! Candidates are scored with BM25 (`k1 = 1.2`, `b = 0.75`). Term
//! frequencies and document lengths come from re-tokenizing each candidate's
//! text; a term's document frequency is the number of candidates that match
//! it. The collection statistics are *approximated from the candidates*: `N`
//! is the number of candidates and the average length is their mean length
//! (a full index does not keep global counts). A prefix match counts like an
//! exact match. Ties go to the newer `_creationTime`. At most
//! [`MAX_SEARCH_RESULTS`] documents are returned.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use errors::{Error, Result};
use persistence::{KeyRange, Order};
use values::{Value, keys};

use crate::document::{Document, IndexKey};
use crate::query::CursorPos;
use crate::schema::{BY_CREATION_TIME, IndexDef, IndexKind, Table};
use crate::transaction::Transaction;

/// Longest indexed term, in UTF-8 bytes; longer terms are cut (at a
/// character boundary) to this length, in documents and queries alike.
pub const MAX_TERM_BYTES: usize = 32;
/// Most distinct terms indexed per document (the first ones in text order).
pub const MAX_TERMS_PER_DOCUMENT: usize = 1_024;
/// Most distinct terms in one search query.
pub const MAX_QUERY_TERMS: usize = 16;
/// Most documents one search query returns (Convex's limit).
pub const MAX_SEARCH_RESULTS: usize = 1_024;
/// Changes whenever the tokenizer or the key layout changes, so existing
/// search indexes are rebuilt at start-up (it is part of the index signature).
pub const TOKENIZER_VERSION: u32 = 1;

/// Index rows read per scan call.
const SCAN_CHUNK: usize = 1_024;
/// BM25 term-frequency saturation.
const BM25_K1: f64 = 1.2;
/// BM25 length normalisation.
const BM25_B: f64 = 0.75;

/// Splits `text` into terms: maximal runs of alphanumeric characters,
/// lowercased, each cut to [`MAX_TERM_BYTES`]. Every occurrence is returned,
/// in text order.
///
/// ```
/// use database::search::tokenize;
/// assert_eq!(tokenize("Hello, World! Straße 🎉 ok"), ["hello", "world", "straße", "ok"]);
/// ```
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut full = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if full {
                continue;
            }
            for lower in c.to_lowercase() {
                if current.len() + lower.len_utf8() > MAX_TERM_BYTES {
                    full = true;
                    break;
                }
                current.push(lower);
            }
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
            full = false;
        } else {
            full = false;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The distinct terms indexed for `text`: the first
/// [`MAX_TERMS_PER_DOCUMENT`] distinct terms, in order of first occurrence.
pub fn document_terms(text: &str) -> Vec<String> {
    let tokens = tokenize(text);
    // Which tokens are first occurrences, decided over borrowed terms so
    // that no term is copied (this runs for every indexed document write).
    let first: Vec<bool> = {
        let mut seen: HashSet<&str> = HashSet::with_capacity(tokens.len());
        tokens
            .iter()
            .map(|t| seen.len() < MAX_TERMS_PER_DOCUMENT && seen.insert(t.as_str()))
            .collect()
    };
    tokens
        .into_iter()
        .zip(first)
        .filter_map(|(t, keep)| keep.then_some(t))
        .collect()
}

/// The text a document contributes to a search index: its search field when
/// it is a string, else nothing.
fn search_text<'a>(doc: &'a Document, search_field: &str) -> Option<&'a str> {
    doc.field(search_field).and_then(Value::as_str)
}

/// The entries of `doc` in a search index over `search_field` with
/// `filter_fields`: one key per distinct term (none when the field is absent
/// or not a string).
pub fn document_keys(
    search_field: &str,
    filter_fields: &[String],
    doc: &Document,
) -> Vec<IndexKey> {
    let Some(text) = search_text(doc, search_field) else {
        return Vec::new();
    };
    let terms = document_terms(text);
    if terms.is_empty() {
        return Vec::new();
    }
    let mut prefix = Vec::with_capacity(32);
    let mut first_len = 0;
    for (i, field) in filter_fields.iter().enumerate() {
        keys::encode_value(&mut prefix, doc.field(field));
        if i == 0 {
            first_len = prefix.len();
        }
    }
    let mut suffix = Vec::with_capacity(30);
    keys::encode_value(&mut suffix, Some(&Value::Float64(doc.creation_time())));
    keys::encode_id(&mut suffix, &doc.id());
    terms
        .into_iter()
        .map(|term| {
            let mut bytes = Vec::with_capacity(prefix.len() + term.len() + 3 + suffix.len());
            bytes.extend_from_slice(&prefix);
            keys::encode_value(&mut bytes, Some(&Value::String(term)));
            let first_len = if filter_fields.is_empty() {
                bytes.len()
            } else {
                first_len
            };
            bytes.extend_from_slice(&suffix);
            IndexKey { bytes, first_len }
        })
        .collect()
}

/// A search expression, as written in a query (Convex's `withSearchIndex`
/// callback): `q.search(field, text).eq(filterField, value)…`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchFilter {
    search: Option<(String, String)>,
    eq: Vec<(String, Value)>,
    error: Option<String>,
}

impl SearchFilter {
    /// An empty expression (add [`SearchFilter::search`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Searches `field` (the index's search field) for the terms of `text`.
    pub fn search(mut self, field: &str, text: &str) -> Self {
        if self.search.is_some() {
            self.error
                .get_or_insert_with(|| "search() may be called only once".to_owned());
        }
        self.search = Some((field.to_owned(), text.to_owned()));
        self
    }

    /// Keeps documents whose filter field `field` equals `value`.
    pub fn eq(mut self, field: &str, value: impl Into<Value>) -> Self {
        if self.eq.iter().any(|(f, _)| f == field) {
            self.error
                .get_or_insert_with(|| format!("eq(\"{field}\") given twice"));
        }
        self.eq.push((field.to_owned(), value.into()));
        self
    }

    /// Checks the expression against `index` and plans it.
    fn compile(&self, index: &IndexDef) -> Result<Plan> {
        let invalid = |msg: String| {
            Error::validation(format!("Invalid search on index \"{}\": {msg}", index.name))
        };
        let IndexKind::Search {
            search_field,
            filter_fields,
        } = &index.kind
        else {
            return Err(Error::validation(format!(
                "Index \"{}\" is not a search index; use with_index for it",
                index.name
            )));
        };
        if let Some(e) = &self.error {
            return Err(invalid(e.clone()));
        }
        let Some((field, text)) = &self.search else {
            return Err(invalid(format!(
                "a search query needs search(\"{search_field}\", text)"
            )));
        };
        if field != search_field {
            return Err(invalid(format!(
                "search(\"{field}\") must name the index's search field \"{search_field}\""
            )));
        }
        for (f, _) in &self.eq {
            if !filter_fields.contains(f) {
                return Err(invalid(format!(
                    "eq(\"{f}\") is not a filter field of the index (filter fields: {filter_fields:?})"
                )));
            }
        }
        let tokens = tokenize(text);
        let last = tokens.last().cloned();
        let mut terms: Vec<QueryTerm> = Vec::new();
        for token in tokens {
            if terms.iter().any(|t| t.text == token) {
                continue;
            }
            terms.push(QueryTerm {
                prefix: Some(&token) == last.as_ref(),
                text: token,
            });
        }
        if terms.len() > MAX_QUERY_TERMS {
            return Err(invalid(format!(
                "the query has {} distinct terms; at most {MAX_QUERY_TERMS} are allowed",
                terms.len()
            )));
        }
        // The filter values in declared order, if every filter field is fixed.
        let mut key_prefix = Some(Vec::new());
        let mut bucket = None;
        for (i, f) in filter_fields.iter().enumerate() {
            match (self.eq.iter().find(|(g, _)| g == f), key_prefix.as_mut()) {
                (Some((_, value)), Some(prefix)) => {
                    keys::encode_value(prefix, Some(value));
                    if i == 0 {
                        bucket = Some(prefix.clone());
                    }
                }
                _ => key_prefix = None,
            }
        }
        Ok(Plan {
            search_field: search_field.clone(),
            has_filter_fields: !filter_fields.is_empty(),
            eq: self.eq.clone(),
            key_prefix,
            bucket,
            terms,
        })
    }
}

/// One distinct query term.
#[derive(Debug, Clone)]
struct QueryTerm {
    text: String,
    /// Whether it also matches as a prefix (the last term).
    prefix: bool,
}

impl QueryTerm {
    fn matches(&self, token: &str) -> bool {
        if self.prefix {
            token.starts_with(self.text.as_str())
        } else {
            token == self.text
        }
    }
}

/// A checked search expression.
#[derive(Debug)]
struct Plan {
    search_field: String,
    has_filter_fields: bool,
    eq: Vec<(String, Value)>,
    /// The encoded filter values when every filter field is fixed (then
    /// terms are range-scanned), else `None` (the table is scanned).
    key_prefix: Option<Vec<u8>>,
    bucket: Option<Vec<u8>>,
    terms: Vec<QueryTerm>,
}

impl Plan {
    /// The key range of `term` in the index and its subscription bucket.
    fn term_range(&self, prefix: &[u8], term: &QueryTerm) -> (KeyRange, Option<Vec<u8>>) {
        let mut start = prefix.to_vec();
        keys::encode_value(&mut start, Some(&Value::String(term.text.clone())));
        let mut bucket = self.bucket.clone();
        if term.prefix {
            // Drop the string terminator (0x00 0x00): every string that
            // starts with the term then starts with these bytes, and no
            // UTF-8 or escape byte is 0xFF, so `start ‖ 0xFF` bounds them.
            start.truncate(start.len() - 2);
        } else if !self.has_filter_fields {
            // The term is the key's first component.
            bucket = Some(start[prefix.len()..].to_vec());
        }
        let end = keys::prefix_successor(&start);
        (
            KeyRange {
                start,
                end: Some(end),
            },
            bucket,
        )
    }
}

/// Runs a search over `index` of `table` inside `tx` and returns at most
/// `limit` (capped at [`MAX_SEARCH_RESULTS`]) documents, most relevant first.
/// Every index interval read goes into the transaction's read set.
pub async fn search(
    tx: &mut Transaction,
    table: &Arc<Table>,
    index: &IndexDef,
    filter: &SearchFilter,
    limit: usize,
) -> Result<Vec<Document>> {
    let plan = filter.compile(index)?;
    let limit = limit.min(MAX_SEARCH_RESULTS);
    if plan.terms.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let candidates = match &plan.key_prefix {
        Some(prefix) => {
            let candidates = scan_terms(tx, table, index, &plan, prefix).await?;
            // The term ranges only change when a term is added or removed; a
            // candidate's other edits change its score and content, so they
            // must invalidate too (unchanged term keys are not in write sets).
            tx.note_documents_read(table, candidates.values().map(Document::id))?;
            candidates
        }
        // The whole-table range already covers every change of every document.
        None => scan_table(tx, table, &plan).await?,
    };
    Ok(rank(&plan, candidates, limit))
}

/// Candidate documents by id bytes.
type Candidates = HashMap<[u8; 20], Document>;

/// Range-scans every query term in the index.
async fn scan_terms(
    tx: &mut Transaction,
    table: &Arc<Table>,
    index: &IndexDef,
    plan: &Plan,
    prefix: &[u8],
) -> Result<Candidates> {
    let mut candidates = Candidates::new();
    for term in &plan.terms {
        let (range, bucket) = plan.term_range(prefix, term);
        let mut after: Option<CursorPos> = None;
        loop {
            let res = tx
                .scan(
                    table,
                    index,
                    &range,
                    bucket.clone(),
                    Order::Asc,
                    after.as_ref(),
                    SCAN_CHUNK,
                )
                .await?;
            let last = res.rows.last().map(|(k, _)| k.clone());
            for (_, doc) in res.rows {
                candidates.entry(doc.id().to_bytes()).or_insert(doc);
            }
            match (res.exhausted, last) {
                (false, Some(key)) => after = Some(CursorPos::After(key)),
                _ => break,
            }
        }
    }
    Ok(candidates)
}

/// Scans the whole table (when not every filter field is fixed), keeping the
/// documents that pass the filters and contain a query term.
async fn scan_table(tx: &mut Transaction, table: &Arc<Table>, plan: &Plan) -> Result<Candidates> {
    let index = table
        .index(BY_CREATION_TIME)
        .cloned()
        .ok_or_else(|| Error::internal("table without by_creation_time"))?;
    let range = KeyRange::all();
    let mut candidates = Candidates::new();
    let mut after: Option<CursorPos> = None;
    loop {
        let res = tx
            .scan(
                table,
                &index,
                &range,
                None,
                Order::Asc,
                after.as_ref(),
                SCAN_CHUNK,
            )
            .await?;
        let last = res.rows.last().map(|(k, _)| k.clone());
        for (_, doc) in res.rows {
            if !plan.eq.iter().all(|(f, v)| doc.field(f) == Some(v)) {
                continue;
            }
            let Some(text) = search_text(&doc, &plan.search_field) else {
                continue;
            };
            let terms = document_terms(text);
            if plan
                .terms
                .iter()
                .any(|q| terms.iter().any(|t| q.matches(t)))
            {
                candidates.insert(doc.id().to_bytes(), doc);
            }
        }
        match (res.exhausted, last) {
            (false, Some(key)) => after = Some(CursorPos::After(key)),
            _ => break,
        }
    }
    Ok(candidates)
}

/// Scores the candidates with BM25 (statistics from the candidates, see the
/// module documentation) and returns the best `limit`.
fn rank(plan: &Plan, candidates: Candidates, limit: usize) -> Vec<Document> {
    struct Scored {
        doc: Document,
        /// Term frequency per query term.
        tf: Vec<u32>,
        len: usize,
    }
    let indexed: Vec<Scored> = candidates
        .into_values()
        .map(|doc| {
            let tokens = search_text(&doc, &plan.search_field)
                .map(tokenize)
                .unwrap_or_default();
            // Only indexed terms count, so the index path and the table-scan
            // path agree on which documents match.
            let indexed: HashSet<&str> = if tokens.len() > MAX_TERMS_PER_DOCUMENT {
                let mut seen = HashSet::new();
                for t in &tokens {
                    if seen.len() >= MAX_TERMS_PER_DOCUMENT {
                        break;
                    }
                    seen.insert(t.as_str());
                }
                seen
            } else {
                tokens.iter().map(String::as_str).collect()
            };
            let tf = plan
                .terms
                .iter()
                .map(|q| {
                    tokens
                        .iter()
                        .filter(|t| indexed.contains(t.as_str()) && q.matches(t))
                        .count() as u32
                })
                .collect();
            Scored {
                len: tokens.len(),
                tf,
                doc,
            }
        })
        .filter(|s| s.tf.iter().any(|&n| n > 0))
        .collect();
    let n = indexed.len() as f64;
    if indexed.is_empty() {
        return Vec::new();
    }
    let avg_len = (indexed.iter().map(|s| s.len).sum::<usize>() as f64 / n).max(1.0);
    let idf: Vec<f64> = (0..plan.terms.len())
        .map(|i| {
            let df = indexed.iter().filter(|s| s.tf[i] > 0).count() as f64;
            (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
        })
        .collect();
    let mut scored: Vec<(f64, Document)> = indexed
        .into_iter()
        .map(|s| {
            let norm = BM25_K1 * (1.0 - BM25_B + BM25_B * s.len as f64 / avg_len);
            let score =
                s.tf.iter()
                    .zip(&idf)
                    .filter(|(tf, _)| **tf > 0)
                    .map(|(&tf, idf)| {
                        let tf = f64::from(tf);
                        idf * tf * (BM25_K1 + 1.0) / (tf + norm)
                    })
                    .sum();
            (score, s.doc)
        })
        .collect();
    scored.sort_by(|(sa, a), (sb, b)| {
        sb.total_cmp(sa)
            .then_with(|| b.creation_time().total_cmp(&a.creation_time()))
            .then_with(|| b.id().to_bytes().cmp(&a.id().to_bytes()))
    });
    scored.truncate(limit);
    scored.into_iter().map(|(_, doc)| doc).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_splits_lowercases_and_caps() {
        assert_eq!(tokenize(""), Vec::<String>::new());
        assert_eq!(tokenize("  ,.;  "), Vec::<String>::new());
        assert_eq!(
            tokenize("Roadmap: HIRING—plan (Q3)!"),
            ["roadmap", "hiring", "plan", "q3"]
        );
        assert_eq!(tokenize("ÉCOLE Ärger"), ["école", "ärger"]);
        assert_eq!(tokenize("日本語 テキスト"), ["日本語", "テキスト"]);
        assert_eq!(tokenize("ship🚀it 👍"), ["ship", "it"]);
        assert_eq!(tokenize("don't snake_case"), ["don", "t", "snake", "case"]);
        let long = "a".repeat(40);
        assert_eq!(tokenize(&long), ["a".repeat(32)]);
        // A multi-byte character never straddles the cut.
        let long = format!("{}é", "a".repeat(31));
        assert_eq!(tokenize(&long), ["a".repeat(31)]);
        // The overflow of a long term does not become a term of its own.
        assert_eq!(
            tokenize(&format!("{} next", "b".repeat(50))),
            ["b".repeat(32), "next".into()]
        );
    }

    #[test]
    fn document_terms_are_distinct_and_capped() {
        assert_eq!(document_terms("a b A c b"), ["a", "b", "c"]);
        let text: String = (0..2000).map(|i| format!("w{i} ")).collect();
        let terms = document_terms(&text);
        assert_eq!(terms.len(), MAX_TERMS_PER_DOCUMENT);
        assert_eq!(terms[0], "w0");
        assert_eq!(terms[MAX_TERMS_PER_DOCUMENT - 1], "w1023");
    }

    #[test]
    fn prefix_range_covers_exactly_the_strings_with_that_prefix() {
        let plan = Plan {
            search_field: "t".into(),
            has_filter_fields: false,
            eq: Vec::new(),
            key_prefix: Some(Vec::new()),
            bucket: None,
            terms: Vec::new(),
        };
        let term = QueryTerm {
            text: "road".into(),
            prefix: true,
        };
        let (range, bucket) = plan.term_range(&[], &term);
        assert_eq!(bucket, None);
        let key = |s: &str| {
            let mut k = Vec::new();
            keys::encode_value(&mut k, Some(&Value::String(s.into())));
            k.extend_from_slice(&[4, 1, 2]);
            k
        };
        assert!(range.contains(&key("road")));
        assert!(range.contains(&key("roadmap")));
        assert!(range.contains(&key("road\u{10FFFF}")));
        assert!(!range.contains(&key("roa")));
        assert!(!range.contains(&key("roae")));
        assert!(!range.contains(&key("rob")));
        let exact = QueryTerm {
            text: "road".into(),
            prefix: false,
        };
        let (range, bucket) = plan.term_range(&[], &exact);
        assert!(bucket.is_some());
        assert!(range.contains(&key("road")));
        assert!(!range.contains(&key("roadmap")));
    }
}
