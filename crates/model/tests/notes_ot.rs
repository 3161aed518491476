//! The notes operational transform (`model::notes::ot`): the original's
//! known non-convergent cases, UTF-16 validation, TP1 for pairs and for
//! sequences, and a simulation of the client/server protocol with several
//! clients that checks convergence and intent preservation.

use std::collections::{HashMap, HashSet, VecDeque};

use model::notes::ot::{
    Operation, OtError, Side, apply, apply_all, transform, transform_against_all,
    transform_sequences, utf16_len, validate,
};
use proptest::prelude::*;

/// Texts mixing ASCII, surrogate pairs (emoji, a ZWJ family, a skin tone,
/// a musical symbol), CJK and combining marks.
const POOL: &[&str] = &[
    "a",
    "bc",
    "xyz",
    "😀",
    "👍🏽",
    "漢字",
    "e\u{301}",
    "𝄞",
    "日本語😀",
    "👨\u{200d}👩\u{200d}👧",
    " ",
    "\n",
    "o\u{308}\u{332}",
];

/// Number of generated protocol runs (each with 3–5 clients).
const SIMULATION_CASES: u32 = 2_500;
/// Number of generated pairs for TP1.
const PAIR_CASES: u32 = 5_000;
/// Number of generated sequence pairs for sequence TP1.
const SEQUENCE_CASES: u32 = 2_000;

// ---------------------------------------------------------------------------
// The original's known non-convergent cases (reference §4), now converging.

fn both_orders(doc: &str, a: &Operation, b: &Operation, side: Side) -> (String, String) {
    let a_then_b = apply_all(&apply(doc, a).unwrap(), &transform(b, a, side.flip())).unwrap();
    let b_then_a = apply_all(&apply(doc, b).unwrap(), &transform(a, b, side)).unwrap();
    (a_then_b, b_then_a)
}

#[test]
fn insert_strictly_inside_concurrent_delete_converges() {
    // Original: B then A′ gave "abcdeXij", A then B′ gave "abcdeij".
    let a = Operation::insert(6, "X");
    let b = Operation::delete(5, 3);
    for side in [Side::Left, Side::Right] {
        let (ab, ba) = both_orders("abcdefghij", &a, &b, side);
        assert_eq!(ab, "abcdeXij");
        assert_eq!(ba, "abcdeXij");
    }
    // The delete splits around the surviving insert.
    assert_eq!(
        transform(&b, &a, Side::Left),
        vec![Operation::delete(5, 1), Operation::delete(6, 2)]
    );
    assert_eq!(
        transform(&a, &b, Side::Left),
        vec![Operation::insert(5, "X")]
    );
}

#[test]
fn delete_delete_same_start_where_a_extends_past_b_converges() {
    // Original: "abefj" vs "abhij" (A′ used B's end instead of B's start).
    let a = Operation::delete(2, 5);
    let b = Operation::delete(2, 2);
    for side in [Side::Left, Side::Right] {
        let (ab, ba) = both_orders("abcdefghij", &a, &b, side);
        assert_eq!(ab, "abhij");
        assert_eq!(ba, "abhij");
    }
    assert_eq!(transform(&a, &b, Side::Left), vec![Operation::delete(2, 3)]);
    assert_eq!(transform(&b, &a, Side::Left), vec![Operation::retain(2, 0)]);
}

#[test]
fn insert_insert_same_position_tie_break_is_by_side() {
    let a = Operation::insert(1, "A");
    let b = Operation::insert(1, "B");
    let (ab, ba) = both_orders("xy", &a, &b, Side::Left);
    assert_eq!((ab.as_str(), ba.as_str()), ("xABy", "xABy"));
    let (ab, ba) = both_orders("xy", &a, &b, Side::Right);
    assert_eq!((ab.as_str(), ba.as_str()), ("xBAy", "xBAy"));
    // Equal content is still deterministic (the original never shifted
    // either side, which duplicated nothing but depended on content).
    let (ab, ba) = both_orders("xy", &a, &a, Side::Left);
    assert_eq!((ab.as_str(), ba.as_str()), ("xAAy", "xAAy"));
}

#[test]
fn overlapping_and_nested_deletes_converge() {
    let doc = "0123456789";
    let cases = [
        ((2, 5), (4, 5)),
        ((4, 5), (2, 5)),
        ((2, 6), (3, 2)),
        ((3, 2), (2, 6)),
        ((0, 10), (5, 5)),
        ((2, 2), (2, 2)),
        ((1, 1), (2, 1)),
    ];
    for ((p, n), (q, m)) in cases {
        let a = Operation::delete(p, n);
        let b = Operation::delete(q, m);
        let (ab, ba) = both_orders(doc, &a, &b, Side::Left);
        assert_eq!(ab, ba, "{a:?} / {b:?}");
        let expected: String = doc
            .chars()
            .enumerate()
            .filter(|(i, _)| !(p..p + n).contains(i) && !(q..q + m).contains(i))
            .map(|(_, c)| c)
            .collect();
        assert_eq!(ab, expected);
    }
}

#[test]
fn server_transforms_against_everything_committed_since_base() {
    // Base "hello world"; committed since: insert "big " at 6, delete "hello ".
    let committed = [Operation::insert(6, "big "), Operation::delete(0, 6)];
    let incoming = Operation::delete(6, 5); // "world"
    let ops = transform_against_all(&incoming, &committed);
    let doc = apply_all("hello world", &committed).unwrap();
    assert_eq!(doc, "big world");
    assert_eq!(apply_all(&doc, &ops).unwrap(), "big ");
}

// ---------------------------------------------------------------------------
// UTF-16 offsets and validation.

#[test]
fn offsets_count_utf16_code_units_like_javascript() {
    assert_eq!(utf16_len("a😀b"), 4);
    assert_eq!(utf16_len("漢字"), 2);
    assert_eq!(utf16_len("e\u{301}"), 2);
    assert_eq!(apply("a😀b", &Operation::insert(3, "x")).unwrap(), "a😀xb");
    assert_eq!(apply("a😀b", &Operation::delete(1, 2)).unwrap(), "ab");
    assert_eq!(apply("漢字", &Operation::delete(1, 1)).unwrap(), "漢");
    assert_eq!(apply("ab", &Operation::retain(1, 1)).unwrap(), "ab");
}

#[test]
fn operations_that_split_a_surrogate_pair_are_rejected() {
    assert_eq!(
        apply("a😀b", &Operation::insert(2, "x")),
        Err(OtError::SplitsSurrogatePair { offset: 2 })
    );
    assert_eq!(
        apply("a😀b", &Operation::delete(2, 2)),
        Err(OtError::SplitsSurrogatePair { offset: 2 })
    );
    assert_eq!(
        apply("a😀b", &Operation::delete(0, 2)),
        Err(OtError::SplitsSurrogatePair { offset: 2 })
    );
}

#[test]
fn invalid_operations_get_clear_errors_and_never_panic() {
    assert_eq!(
        validate("abc", &Operation::insert(4, "x")),
        Err(OtError::OutOfBounds {
            position: 4,
            length: 0,
            document_length: 3
        })
    );
    assert_eq!(
        validate("abc", &Operation::insert(0, "")),
        Err(OtError::EmptyInsert { position: 0 })
    );
    assert_eq!(
        validate("abc", &Operation::delete(1, 0)),
        Err(OtError::EmptyDelete { position: 1 })
    );
    assert!(matches!(
        validate("abc", &Operation::delete(usize::MAX, usize::MAX)),
        Err(OtError::OutOfBounds { .. })
    ));
    assert!(matches!(
        validate("abc", &Operation::retain(2, 2)),
        Err(OtError::OutOfBounds { .. })
    ));
    let error: errors::Error = OtError::SplitsSurrogatePair { offset: 1 }.into();
    assert!(error.message().contains("surrogate pair"));
    // Transforms of absurd operations saturate instead of overflowing.
    let _ = transform(
        &Operation::delete(usize::MAX - 1, usize::MAX),
        &Operation::insert(usize::MAX, "x"),
        Side::Left,
    );
}

#[test]
fn wire_format_matches_the_original() {
    let op: Operation =
        serde_json::from_str(r#"{"type":"insert","position":1,"content":"x"}"#).unwrap();
    assert_eq!(op, Operation::insert(1, "x"));
    let op: Operation =
        serde_json::from_str(r#"{"type":"delete","position":2,"length":3}"#).unwrap();
    assert_eq!(op, Operation::delete(2, 3));
    assert_eq!(
        serde_json::to_value(Operation::retain(4, 0)).unwrap(),
        serde_json::json!({"type": "retain", "position": 4, "length": 0})
    );
    assert!(serde_json::from_str::<Operation>(r#"{"type":"retain","position":2}"#).is_err());
}

// ---------------------------------------------------------------------------
// Generators.

fn doc_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(0..POOL.len(), 0..8).prop_map(|ix| ix.iter().map(|&i| POOL[i]).collect())
}

/// UTF-16 offsets of the code point boundaries of `doc` (0 and the end included).
fn boundaries(doc: &str) -> Vec<usize> {
    let mut out = vec![0];
    let mut units = 0;
    for ch in doc.chars() {
        units += ch.len_utf16();
        out.push(units);
    }
    out
}

/// Raw material for one edit; [`make_op`] turns it into a valid operation.
type Seed = (u8, usize, usize, usize);

fn seed_strategy() -> impl Strategy<Value = Seed> {
    (0u8..16, any::<usize>(), any::<usize>(), 0..POOL.len())
}

/// A valid operation on `doc`: mostly inserts (often at the same place) and
/// deletes (short and long, so that they overlap), sometimes a retain.
fn make_op(doc: &str, (kind, s1, s2, text): Seed) -> Operation {
    let bounds = boundaries(doc);
    let chars = bounds.len() - 1;
    if chars > 0 && kind < 7 {
        let i = s1 % chars;
        // Short deletes most of the time, long ones sometimes.
        let span = if kind < 5 {
            (chars - i).min(3)
        } else {
            chars - i
        };
        let j = i + 1 + s2 % span;
        Operation::delete(bounds[i], bounds[j] - bounds[i])
    } else if kind == 15 {
        let i = s1 % bounds.len();
        let j = i + s2 % (bounds.len() - i);
        Operation::retain(bounds[i], bounds[j] - bounds[i])
    } else {
        // Typing at the end or the start of the note is common, and makes
        // concurrent inserts at the same position (ties) frequent.
        let position = match kind {
            7..=9 => bounds[chars],
            10 => 0,
            _ => bounds[s1 % bounds.len()],
        };
        Operation::insert(position, POOL[text])
    }
}

fn make_sequence(doc: &str, seeds: &[Seed]) -> Vec<Operation> {
    let mut doc = doc.to_owned();
    let mut ops = Vec::new();
    for &seed in seeds {
        let op = make_op(&doc, seed);
        doc = apply(&doc, &op).expect("generated operations are valid");
        ops.push(op);
    }
    ops
}

fn side_strategy() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Left), Just(Side::Right)]
}

// ---------------------------------------------------------------------------
// TP1.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(PAIR_CASES))]

    /// TP1 for single operations: `apply(apply(d, a), transform(b, a)) ==
    /// apply(apply(d, b), transform(a, b))`; every transformed operation is
    /// valid where it is applied (so no surrogate pair is ever split).
    #[test]
    fn tp1_holds_for_every_pair(
        doc in doc_strategy(),
        sa in seed_strategy(),
        sb in seed_strategy(),
        side in side_strategy(),
    ) {
        let a = make_op(&doc, sa);
        let b = make_op(&doc, sb);
        let a_then_b = apply(&doc, &a).and_then(|d| apply_all(&d, &transform(&b, &a, side.flip())));
        let b_then_a = apply(&doc, &b).and_then(|d| apply_all(&d, &transform(&a, &b, side)));
        prop_assert!(a_then_b.is_ok(), "{:?}", a_then_b);
        prop_assert_eq!(a_then_b, b_then_a);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(SEQUENCE_CASES))]

    /// TP1 for sequences (the grid the server and the clients use).
    #[test]
    fn tp1_holds_for_sequences(
        doc in doc_strategy(),
        sa in prop::collection::vec(seed_strategy(), 0..6),
        sb in prop::collection::vec(seed_strategy(), 0..6),
        side in side_strategy(),
    ) {
        let a = make_sequence(&doc, &sa);
        let b = make_sequence(&doc, &sb);
        let (a2, b2) = transform_sequences(&a, &b, side);
        let a_then_b = apply_all(&doc, &a).and_then(|d| apply_all(&d, &b2));
        let b_then_a = apply_all(&doc, &b).and_then(|d| apply_all(&d, &a2));
        prop_assert!(a_then_b.is_ok(), "{:?}", a_then_b);
        prop_assert_eq!(a_then_b, b_then_a);
        // Transforming against a sequence one operation at a time is the
        // same as transforming against all of it.
        if let [single] = a.as_slice() {
            let mut folded = vec![single.clone()];
            for op in &b {
                folded = transform_sequences(&folded, std::slice::from_ref(op), side).0;
            }
            prop_assert_eq!(folded, a2);
        }
    }
}

// ---------------------------------------------------------------------------
// The client/server protocol.

/// Identity of one UTF-16 code unit: the operation that inserted it (0 for
/// the initial document), its index in that insert, and the unit itself.
type Tag = (u32, u32, u16);

fn tag_insert_ids(ops: &[Operation]) -> usize {
    ops.iter()
        .filter(|op| matches!(op, Operation::Insert { .. }))
        .count()
}

/// Applies `ops` to a tagged document; the k-th insert in `ops` is the
/// operation `insert_ids[k]`.
fn apply_tags(tags: &mut Vec<Tag>, ops: &[Operation], insert_ids: &[u32]) {
    assert_eq!(
        tag_insert_ids(ops),
        insert_ids.len(),
        "a transform dropped or duplicated an insert"
    );
    let mut ids = insert_ids.iter();
    for op in ops {
        match op {
            Operation::Insert { position, content } => {
                let id = *ids.next().unwrap();
                let new: Vec<Tag> = content
                    .encode_utf16()
                    .enumerate()
                    .map(|(i, u)| (id, i as u32, u))
                    .collect();
                tags.splice(*position..*position, new);
            }
            Operation::Delete { position, length } => {
                tags.drain(*position..*position + *length);
            }
            Operation::Retain { .. } => {}
        }
    }
}

struct Replica {
    text: String,
    tags: Vec<Tag>,
}

impl Replica {
    fn apply(&mut self, ops: &[Operation], insert_ids: &[u32]) {
        self.text = apply_all(&self.text, ops).expect("transformed operations apply cleanly");
        apply_tags(&mut self.tags, ops, insert_ids);
    }
}

/// A pending sequence with the ids of its inserts, in order.
#[derive(Clone, Default)]
struct Pending {
    ops: Vec<Operation>,
    insert_ids: Vec<u32>,
}

struct Submit {
    base: usize,
    pending: Pending,
}

enum FromServer {
    Ack { count: usize },
    Broadcast(Pending),
}

struct Client {
    replica: Replica,
    revision: usize,
    inflight: Option<Pending>,
    buffer: Pending,
    outbox: VecDeque<Submit>,
    inbox: VecDeque<FromServer>,
}

impl Client {
    fn edit(&mut self, op: Operation, insert_id: Option<u32>) {
        let ids: Vec<u32> = insert_id.into_iter().collect();
        self.replica.apply(std::slice::from_ref(&op), &ids);
        if self.inflight.is_none() {
            let pending = Pending {
                ops: vec![op],
                insert_ids: ids,
            };
            self.outbox.push_back(Submit {
                base: self.revision,
                pending: pending.clone(),
            });
            self.inflight = Some(pending);
        } else {
            self.buffer.ops.push(op);
            self.buffer.insert_ids.extend(ids);
        }
    }

    fn receive(&mut self) {
        let Some(message) = self.inbox.pop_front() else {
            return;
        };
        match message {
            FromServer::Ack { count } => {
                self.revision += count;
                self.inflight = None;
                if !self.buffer.ops.is_empty() {
                    let pending = std::mem::take(&mut self.buffer);
                    self.outbox.push_back(Submit {
                        base: self.revision,
                        pending: pending.clone(),
                    });
                    self.inflight = Some(pending);
                }
            }
            FromServer::Broadcast(server) => {
                self.revision += server.ops.len();
                let mut incoming = server.ops;
                if let Some(inflight) = &mut self.inflight {
                    let (mine, theirs) = transform_sequences(&inflight.ops, &incoming, Side::Right);
                    inflight.ops = mine;
                    incoming = theirs;
                }
                let (mine, theirs) = transform_sequences(&self.buffer.ops, &incoming, Side::Right);
                self.buffer.ops = mine;
                self.replica.apply(&theirs, &server.insert_ids);
            }
        }
    }
}

struct Server {
    replica: Replica,
    history: Vec<Operation>,
}

#[derive(Debug, Clone)]
enum Action {
    Edit { client: usize, seed: Seed },
    ToServer { client: usize },
    ToClient { client: usize },
}

fn action_strategy() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0usize..8, seed_strategy()).prop_map(|(client, seed)| Action::Edit { client, seed }),
        2 => (0usize..8).prop_map(|client| Action::ToServer { client }),
        2 => (0usize..8).prop_map(|client| Action::ToClient { client }),
    ]
}

/// What the checks need to know about each generated operation.
struct Generated {
    /// The author's document (tags) when the operation was generated.
    observed: Vec<Tag>,
    /// Insert ids visible to the author then.
    seen: HashSet<u32>,
}

struct Simulation {
    server: Server,
    clients: Vec<Client>,
    generated: HashMap<u32, Generated>,
    /// Units some delete selected in its author's view.
    deleted: HashSet<(u32, u32)>,
    /// Every unit that ever existed.
    all_units: HashSet<(u32, u32)>,
    next_id: u32,
}

impl Simulation {
    fn new(doc: &str, clients: usize) -> Self {
        let tags: Vec<Tag> = doc
            .encode_utf16()
            .enumerate()
            .map(|(i, u)| (0, i as u32, u))
            .collect();
        let replica = || Replica {
            text: doc.to_owned(),
            tags: tags.clone(),
        };
        Simulation {
            server: Server {
                replica: replica(),
                history: Vec::new(),
            },
            clients: (0..clients)
                .map(|_| Client {
                    replica: replica(),
                    revision: 0,
                    inflight: None,
                    buffer: Pending::default(),
                    outbox: VecDeque::new(),
                    inbox: VecDeque::new(),
                })
                .collect(),
            generated: HashMap::new(),
            deleted: HashSet::new(),
            all_units: tags.iter().map(|t| (t.0, t.1)).collect(),
            next_id: 1,
        }
    }

    fn edit(&mut self, client: usize, seed: Seed) {
        let c = &mut self.clients[client];
        let op = make_op(&c.replica.text, seed);
        let id = self.next_id;
        self.next_id += 1;
        let observed = c.replica.tags.clone();
        let seen = observed.iter().map(|t| t.0).filter(|&i| i != 0).collect();
        match &op {
            Operation::Delete { position, length } => {
                self.deleted.extend(
                    observed[*position..*position + *length]
                        .iter()
                        .map(|t| (t.0, t.1)),
                );
            }
            Operation::Insert { content, .. } => {
                self.all_units
                    .extend((0..utf16_len(content) as u32).map(|i| (id, i)));
            }
            Operation::Retain { .. } => {}
        }
        self.generated.insert(id, Generated { observed, seen });
        let insert_id = matches!(op, Operation::Insert { .. }).then_some(id);
        c.edit(op, insert_id);
    }

    fn deliver_to_server(&mut self, client: usize) {
        let Some(Submit { base, pending }) = self.clients[client].outbox.pop_front() else {
            return;
        };
        let committed = &self.server.history[base..];
        let (ops, _) = transform_sequences(&pending.ops, committed, Side::Right);
        if let [single] = pending.ops.as_slice() {
            assert_eq!(transform_against_all(single, committed), ops);
        }
        self.server.replica.apply(&ops, &pending.insert_ids);
        self.server.history.extend(ops.iter().cloned());
        for (i, c) in self.clients.iter_mut().enumerate() {
            if i == client {
                c.inbox.push_back(FromServer::Ack { count: ops.len() });
            } else {
                c.inbox.push_back(FromServer::Broadcast(Pending {
                    ops: ops.clone(),
                    insert_ids: pending.insert_ids.clone(),
                }));
            }
        }
    }

    fn run(&mut self, actions: &[Action]) {
        let n = self.clients.len();
        for action in actions {
            match *action {
                Action::Edit { client, seed } => self.edit(client % n, seed),
                Action::ToServer { client } => self.deliver_to_server(client % n),
                Action::ToClient { client } => self.clients[client % n].receive(),
            }
        }
        // Quiesce: deliver everything.
        loop {
            let mut busy = false;
            for i in 0..n {
                while !self.clients[i].outbox.is_empty() {
                    self.deliver_to_server(i);
                    busy = true;
                }
                while !self.clients[i].inbox.is_empty() {
                    self.clients[i].receive();
                    busy = true;
                }
            }
            if !busy {
                break;
            }
        }
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let server = &self.server.replica;
        let units: Vec<u16> = server.text.encode_utf16().collect();
        let tag_units: Vec<u16> = server.tags.iter().map(|t| t.2).collect();
        prop_assert_eq!(units, tag_units, "the shadow tags follow the text");

        // Convergence: same text, and the same characters (identities).
        for (i, c) in self.clients.iter().enumerate() {
            prop_assert!(c.inflight.is_none() && c.buffer.ops.is_empty());
            prop_assert_eq!(c.revision, self.server.history.len());
            prop_assert_eq!(&c.replica.text, &server.text, "client {} diverged", i);
            prop_assert!(c.replica.tags == server.tags, "client {} tags diverged", i);
        }

        // Delete intent: exactly the units no delete selected survive.
        let survivors: HashSet<(u32, u32)> = server.tags.iter().map(|t| (t.0, t.1)).collect();
        prop_assert_eq!(survivors.len(), server.tags.len(), "no unit duplicated");
        let expected: HashSet<(u32, u32)> =
            self.all_units.difference(&self.deleted).copied().collect();
        prop_assert_eq!(&survivors, &expected);

        // Order: every view's order of surviving units is kept.
        let index: HashMap<(u32, u32), usize> = server
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.0, t.1), i))
            .collect();
        for g in self.generated.values() {
            let positions: Vec<usize> = g
                .observed
                .iter()
                .filter_map(|t| index.get(&(t.0, t.1)).copied())
                .collect();
            prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "order changed");
        }

        // Insert integrity: between the surviving units of an insert there
        // is only text from operations that saw it.
        let mut spans: HashMap<u32, (usize, usize)> = HashMap::new();
        for (i, t) in server.tags.iter().enumerate() {
            if t.0 != 0 {
                let span = spans.entry(t.0).or_insert((i, i));
                span.1 = i;
            }
        }
        for (&id, &(first, last)) in &spans {
            for t in &server.tags[first..=last] {
                prop_assert!(
                    t.0 == id || (t.0 != 0 && self.generated[&t.0].seen.contains(&id)),
                    "insert {} interleaved with concurrent unit {:?}",
                    id,
                    t
                );
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(SIMULATION_CASES))]

    /// 3–5 clients edit concurrently (overlapping deletes, inserts inside
    /// deleted ranges, surrogate pairs, CJK, combining marks) through a
    /// linearizing server; every client and the server end with the same
    /// text, and deletes, inserts and order keep their intent.
    #[test]
    fn clients_and_server_converge_and_preserve_intent(
        doc in doc_strategy(),
        clients in 3usize..=5,
        actions in prop::collection::vec(action_strategy(), 1..80),
    ) {
        let mut simulation = Simulation::new(&doc, clients);
        simulation.run(&actions);
        simulation.check()?;
    }
}
