// Live transcripts with the official client: the host starts a meeting and
// ingests transcript chunks at 20 per second (well above the 10 updates per
// second a meeting must sustain) while another client — an observer — is
// subscribed to `transcripts/queries:listTranscriptChunks`. The observer
// receives every chunk, live, in sequence order (every update it sees is a
// gap-free prefix 1..n of the transcript), and ends with all of them. An
// observer cannot ingest (INSUFFICIENT_PERMISSIONS).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "../lib/server.mjs";
import { T, Scope, Subscription, anyApi, withTimeout, settle, show, sleep, ConvexError, CLIENT_VERSION, PKG } from "../lib/client.mjs";

const V = `[${PKG}@${CLIENT_VERSION}]`;
const s = new Scope();
const ctx = { server: null };
after(async () => {
  await s.close();
  if (ctx.server) await ctx.server.dispose();
});

const api = {
  upsertUser: anyApi.users.mutations.upsertUser,
  createMeeting: anyApi.meetings.lifecycle.createMeeting,
  addParticipant: anyApi.meetings.lifecycle.addParticipant,
  startMeeting: anyApi.meetings.lifecycle.startMeeting,
  ingest: anyApi.transcripts.ingestion.ingestTranscriptChunk,
  list: anyApi.transcripts.queries.listTranscriptChunks,
};

const PEOPLE = {
  host: { subject: "user_ada", email: "ada@acme.example", name: "Ada Lovelace", org: "org_acme", role: "member" },
  viewer: { subject: "user_grace", email: "grace@acme.example", name: "Grace Hopper", org: "org_acme", role: "member" },
};
const WAIT = 10_000;
const N = 40;
const RATE_PER_SEC = 20;
const who = {};

before(async () => {
  ctx.server = await startServer({ label: "transcripts" });
  for (const [key, person] of Object.entries(PEOPLE)) {
    const token = await ctx.server.mintToken(person);
    const client = s.client(ctx.server.url);
    client.setAuth(async () => token);
    who[key] = { client, id: await withTimeout(client.mutation(api.upsertUser, {}), WAIT, `${key} upsertUser`) };
  }
});

test(`${V} a subscriber receives transcript chunks live and in order while another client ingests at 20/s`, { ...T, timeout: 60_000 }, async () => {
  const { meetingId } = await withTimeout(
    who.host.client.mutation(api.createMeeting, { title: "Transcribed sync" }),
    WAIT,
    "createMeeting",
  );
  await withTimeout(
    who.host.client.mutation(api.addParticipant, { meetingId, userId: who.viewer.id, role: "observer" }),
    WAIT,
    "addParticipant",
  );
  await withTimeout(who.host.client.mutation(api.startMeeting, { meetingId }), WAIT, "startMeeting");

  const sub = new Subscription(who.viewer.client, api.list, { meetingId, fromSequence: 0, limit: 500 });
  await sub.waitFor((v) => Array.isArray(v.chunks) && v.chunks.length === 0, { what: "an empty transcript" });

  // Observers read but never write.
  const denied = await settle(
    who.viewer.client.mutation(api.ingest, { meetingId, text: "not mine", confidence: 0.9, startTime: Date.now() - 2000, endTime: Date.now() - 1000 }),
    WAIT,
    "observer ingest",
  );
  assert.equal(denied.ok, false);
  assert.ok(denied.error instanceof ConvexError, show(denied.error));
  assert.equal(denied.error.data?.code, "INSUFFICIENT_PERMISSIONS");

  const started = Date.now();
  const sends = [];
  for (let i = 1; i <= N; i++) {
    const now = Date.now();
    sends.push(
      withTimeout(
        who.host.client.mutation(api.ingest, { meetingId, text: `chunk number ${i}`, confidence: 0.9, startTime: now - 900, endTime: now - 100 }),
        WAIT,
        `ingest ${i}`,
      ),
    );
    const next = started + (i * 1000) / RATE_PER_SEC;
    await sleep(Math.max(0, next - Date.now()));
  }
  const results = await Promise.all(sends);
  const elapsed = (Date.now() - started) / 1000;
  assert.ok(N / elapsed >= 10, `ingest rate ${(N / elapsed).toFixed(1)}/s`);
  assert.deepEqual(results.map((r) => r.sequence), Array.from({ length: N }, (_, i) => i + 1));
  for (const r of results) assert.equal(r.success, true);

  const final = await sub.waitFor((v) => v.chunks.length === N, { timeout: WAIT, what: `${N} chunks` });
  assert.equal(final.nextSequence, N);
  assert.deepEqual(final.chunks.map((c) => c.text), Array.from({ length: N }, (_, i) => `chunk number ${i + 1}`));
  for (const c of final.chunks) {
    assert.equal(c.speakerId, who.host.id, show(c));
    assert.equal(c.wordCount, 3, show(c));
    assert.equal(c.language, "en", show(c));
  }
  // Every update the subscriber saw was an in-order, gap-free prefix, and it
  // saw the transcript grow while it was being spoken (not only at the end).
  for (const v of sub.values) {
    assert.deepEqual(v.chunks.map((c) => c.sequence), Array.from({ length: v.chunks.length }, (_, i) => i + 1), show(v, 200));
  }
  const partial = sub.values.filter((v) => v.chunks.length > 0 && v.chunks.length < N);
  assert.ok(partial.length >= 3, `only ${partial.length} intermediate updates: ${sub.describe()}`);
  sub.unsubscribe();
});
