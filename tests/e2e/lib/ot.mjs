// A JavaScript port of the server's operational transform
// (crates/model/src/notes/ot.rs), for the notes end-to-end test's client
// replicas. Offsets are JavaScript string indices (UTF-16 code units), the
// same as the server's. Operations: {type: "insert", position, content} |
// {type: "delete", position, length} | {type: "retain", position, length}.

export const LEFT = "left";
export const RIGHT = "right";

const ins = (position, content) => ({ type: "insert", position, content });
const del = (position, length) => ({ type: "delete", position, length });
const ret = (position, length) => ({ type: "retain", position, length });
const flip = (side) => (side === LEFT ? RIGHT : LEFT);

/** Applies one operation (throws on an out-of-range one). */
export function apply(doc, op) {
  if (op.type === "retain") return doc;
  const end = op.position + (op.type === "delete" ? op.length : 0);
  if (op.position < 0 || end > doc.length) throw new Error(`operation out of bounds: ${JSON.stringify(op)} on ${doc.length}`);
  if (op.type === "insert") return doc.slice(0, op.position) + op.content + doc.slice(op.position);
  return doc.slice(0, op.position) + doc.slice(end);
}

export function applyAll(doc, ops) {
  return ops.reduce(apply, doc);
}

function mapThroughDelete(p, q, m) {
  if (p <= q) return p;
  if (p >= q + m) return p - m;
  return q;
}

const withRange = (op, position, length) => (op.type === "delete" ? del(position, length) : ret(position, length));

/** `a` rewritten to apply after `b` (both on the same document); a list. */
export function transform(a, b, side) {
  if (b.type === "retain") return [a];
  if (a.type === "insert" && b.type === "insert") {
    const shift = b.position < a.position || (b.position === a.position && side === RIGHT);
    return [ins(shift ? a.position + b.content.length : a.position, a.content)];
  }
  if (a.type === "insert" && b.type === "delete") {
    return [ins(mapThroughDelete(a.position, b.position, b.length), a.content)];
  }
  if (b.type === "insert") {
    // a is a delete or a retain
    const p = a.position, n = a.length, q = b.position, t = b.content.length;
    const end = p + n;
    if (q <= p) return [withRange(a, p + t, n)];
    if (q >= end) return [a];
    if (a.type === "retain") return [ret(p, n + t)];
    return [del(p, q - p), del(p + t, end - q)];
  }
  // a is a delete or a retain, b a delete
  const start = mapThroughDelete(a.position, b.position, b.length);
  const end = mapThroughDelete(a.position + a.length, b.position, b.length);
  const length = Math.max(0, end - start);
  return length === 0 ? [ret(start, 0)] : [withRange(a, start, length)];
}

function oneAgainstSequence(a, bs, side) {
  let aCur = [a];
  const bOut = [];
  for (const b of bs) {
    const [aNext, bPieces] = sequenceAgainstOne(aCur, b, side);
    aCur = aNext;
    bOut.push(...bPieces);
  }
  return [aCur, bOut];
}

function sequenceAgainstOne(as, b, side) {
  if (as.length === 1) return [transform(as[0], b, side), transform(b, as[0], flip(side))];
  let bCur = [b];
  const aOut = [];
  for (const a of as) {
    const [aPieces, bNext] = oneAgainstSequence(a, bCur, side);
    aOut.push(...aPieces);
    bCur = bNext;
  }
  return [aOut, bCur];
}

/** `[a', b']` for two concurrent sequences; `side` is `a`'s side in ties. */
export function transformSequences(as, bs, side) {
  let bCur = bs;
  const aOut = [];
  for (const a of as) {
    const [aPieces, bNext] = oneAgainstSequence(a, bCur, side);
    aOut.push(...aPieces);
    bCur = bNext;
  }
  return [aOut, bCur];
}
