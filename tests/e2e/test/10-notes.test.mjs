// Collaborative notes end to end with the official client: two ConvexClients
// (the host and a participant) edit the same meeting's notes at the same
// time. Each keeps a local replica, sends its unsent edits as one batch with
// its base sequence (one batch in flight, ot.js style), follows the live
// `notes/queries:getNoteOperations` subscription, transforms its pending
// edits against every operation of the other client (lib/ot.mjs, a port of
// the server's transform), and skips the sequences the server acknowledged
// as its own. Both replicas must end with the server's content; emoji
// (surrogate pairs) are part of the edits.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "../lib/server.mjs";
import { T, Scope, anyApi, withTimeout, waitUntil, show, sleep, CLIENT_VERSION, PKG } from "../lib/client.mjs";
import { applyAll, apply, transformSequences, RIGHT } from "../lib/ot.mjs";

const V = `[${PKG}@${CLIENT_VERSION}]`;
const WAIT = 15_000;
const EDITS = 25;

const api = {
  upsertUser: anyApi.users.mutations.upsertUser,
  createMeeting: anyApi.meetings.lifecycle.createMeeting,
  addParticipant: anyApi.meetings.lifecycle.addParticipant,
  startMeeting: anyApi.meetings.lifecycle.startMeeting,
  batch: anyApi.notes.mutations.batchApplyNoteOperations,
  getMeetingNotes: anyApi.notes.queries.getMeetingNotes,
  getNoteOperations: anyApi.notes.queries.getNoteOperations,
};

const ORG = "org_notes";
const PEOPLE = {
  host: { subject: "user_ada_notes", email: "ada@notes.example", name: "Ada", org: ORG, role: "member" },
  guest: { subject: "user_grace_notes", email: "grace@notes.example", name: "Grace", org: ORG, role: "member" },
};

const s = new Scope();
const ctx = { server: null };
after(async () => {
  await s.close();
  if (ctx.server) await ctx.server.dispose();
});

before(async () => {
  ctx.server = await startServer({ label: "notes" });
});

/** A deterministic generator (mulberry32). */
function rng(seed) {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % n);
  };
}

/** UTF-16 offsets of the code point boundaries of `s`. */
function boundaries(s) {
  const out = [0];
  let at = 0;
  for (const ch of s) {
    at += ch.length;
    out.push(at);
  }
  return out;
}

/** One collaborating client: a replica following the op stream. */
class Editor {
  constructor(name, client, meetingId) {
    this.name = name;
    this.client = client;
    this.meetingId = meetingId;
    this.doc = "";
    this.processed = 0; // the last stream sequence applied
    this.outstanding = []; // the batch in flight (or acknowledged, not yet seen in the stream)
    this.own = null; // [first, last] sequences the server gave that batch
    this.buffer = []; // edits not sent yet
    this.inFlight = false;
    this.latest = null; // the newest getNoteOperations result
    this.remote = 0; // operations of the other client applied here
    this.error = null;
    this.unsubscribe = client.onUpdate(
      api.getNoteOperations,
      { meetingId, fromSequence: 0, limit: 1000 },
      (value) => {
        this.latest = value;
        this.catchUp();
      },
      (err) => {
        this.error = err;
      },
    );
  }

  /** Applies the stream's new operations (never while a batch is in flight). */
  catchUp() {
    if (this.inFlight || !this.latest) return;
    assert.equal(this.latest.resync, false, "no compaction in this test");
    for (const entry of this.latest.operations) {
      if (entry.sequence <= this.processed) continue;
      assert.equal(entry.sequence, this.processed + 1, `${this.name}: gap in the stream`);
      this.processed = entry.sequence;
      if (this.own && entry.sequence >= this.own[0] && entry.sequence <= this.own[1]) {
        if (entry.sequence === this.own[1]) {
          this.own = null;
          this.outstanding = [];
        }
        continue;
      }
      const [out, op1] = transformSequences(this.outstanding, [entry.operation], RIGHT);
      const [buf, op2] = transformSequences(this.buffer, op1, RIGHT);
      this.outstanding = out;
      this.buffer = buf;
      this.doc = applyAll(this.doc, op2);
      this.remote += 1;
    }
  }

  edit(op) {
    this.doc = apply(this.doc, op);
    this.buffer.push(op);
  }

  /** Sends the buffer as one batch if nothing is in flight. */
  async flush() {
    if (this.inFlight || this.own || this.buffer.length === 0) return;
    const batch = this.buffer;
    this.buffer = [];
    this.outstanding = batch;
    this.inFlight = true;
    const base = this.processed;
    try {
      const res = await withTimeout(
        this.client.mutation(api.batch, {
          meetingId: this.meetingId,
          operations: batch.map((operation) => ({ operation, clientSequence: base })),
        }),
        WAIT,
        `${this.name} batch`,
      );
      const first = res.results[0].serverSequence;
      const stored = res.results.reduce((n, r) => n + r.transformedOperations.length, 0);
      this.own = [first, first + stored - 1];
    } finally {
      this.inFlight = false;
    }
    this.catchUp();
  }

  idle() {
    return !this.inFlight && !this.own && this.buffer.length === 0;
  }
}

function randomEdit(next, doc, who) {
  const b = boundaries(doc);
  const pieces = ["a", "b", "😀", "é", " ", "🎉x", "\n"];
  if (doc.length === 0 || next(3) > 0) {
    return { type: "insert", position: b[next(b.length)], content: `${who}${pieces[next(pieces.length)]}` };
  }
  const i = next(b.length - 1);
  const j = i + 1 + next(Math.min(3, b.length - 1 - i));
  return { type: "delete", position: b[i], length: b[j] - b[i] };
}

test(`${V} two clients edit the same notes concurrently and converge on the server's content`, { timeout: 60_000 }, async () => {
  const clients = {};
  const ids = {};
  for (const [key, person] of Object.entries(PEOPLE)) {
    const token = await ctx.server.mintToken(person);
    const client = s.client(ctx.server.url);
    client.setAuth(async () => token);
    clients[key] = client;
    ids[key] = await withTimeout(client.mutation(api.upsertUser, {}), WAIT, `${key} upsertUser`);
  }
  const { meetingId } = await withTimeout(
    clients.host.mutation(api.createMeeting, { title: "Notes e2e" }),
    WAIT,
    "createMeeting",
  );
  await withTimeout(
    clients.host.mutation(api.addParticipant, { meetingId, userId: ids.guest, role: "participant" }),
    WAIT,
    "addParticipant",
  );
  await withTimeout(clients.host.mutation(api.startMeeting, { meetingId }), WAIT, "startMeeting");

  const editors = [new Editor("host", clients.host, meetingId), new Editor("guest", clients.guest, meetingId)];
  await waitUntil(() => editors.every((e) => e.latest), WAIT, "both subscriptions to deliver");

  // Both type at the same time, each flushing without waiting for the other.
  await Promise.all(
    editors.map(async (e, k) => {
      const next = rng(1234 + k);
      for (let i = 0; i < EDITS; i += 1) {
        e.edit(randomEdit(next, e.doc, k === 0 ? "H" : "G"));
        if (next(2) === 0) await e.flush();
        await sleep(next(15));
      }
    }),
  );
  // Drain: flush until nothing is pending and every replica saw the head.
  await waitUntil(
    async () => {
      for (const e of editors) {
        if (e.error) throw e.error;
        await e.flush();
        e.catchUp();
      }
      const head = editors[0].latest?.headSequence;
      return editors.every((e) => e.idle() && e.latest?.headSequence === head && e.processed === head);
    },
    WAIT,
    "both replicas to send everything and catch up",
    50,
  );
  const notes = await withTimeout(clients.guest.query(api.getMeetingNotes, { meetingId }), WAIT, "getMeetingNotes");
  assert.ok(notes.content.length > 0, show(notes));
  for (const e of editors) {
    assert.equal(e.doc, notes.content, `${e.name} diverged from the server (head ${notes.headSequence})`);
  }
  assert.equal(notes.headSequence, editors[0].processed, show(notes));
  // The run was concurrent: each replica applied operations of the other
  // while it had edits of its own pending, at least some of the time.
  assert.ok(editors.every((e) => e.remote > 0), editors.map((e) => `${e.name}: ${e.remote}`).join(", "));
  for (const e of editors) e.unsubscribe();
});
