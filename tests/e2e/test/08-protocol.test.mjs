// Wire-level conformance with a raw WebSocket: the message shapes the official
// client depends on (reference §2), checked frame by frame.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { useServer } from "../lib/server.mjs";
import { RawSocket, decodeTs } from "../lib/rawws.mjs";
import { T, scope, uniq, show, CLIENT_VERSION, PKG } from "../lib/client.mjs";

const ctx = useServer({ before, after }, { label: "protocol" });
const V = `[${PKG}@${CLIENT_VERSION}]`;
const ZERO_TS = "AAAAAAAAAAA=";

function assertStateVersion(v, what) {
  assert.ok(v && typeof v === "object", `${what}: ${show(v)}`);
  assert.ok(Number.isInteger(v.querySet), `${what}.querySet: ${show(v)}`);
  assert.ok(Number.isInteger(v.identity), `${what}.identity: ${show(v)}`);
  assert.equal(typeof v.ts, "string", `${what}.ts: ${show(v)}`);
  assert.equal(v.ts.length % 4, 0, `${what}.ts must be padded base64: ${show(v.ts)}`);
  decodeTs(v.ts);
}

function assertLogLines(lines, what) {
  assert.ok(Array.isArray(lines), `${what}: logLines must be an array, got ${show(lines)}`);
  for (const l of lines) assert.match(l, /^\[[A-Z]+\] /, `${what}: log line format: ${show(l)}`);
}

test(`${V} raw sync session: Transition chain, QueryUpdated, MutationResponse then Transition, ActionResponse, QueryRemoved`, T, async (t) => {
  const s = scope(t);
  const channel = uniq("raw");
  const raw = s.track(await RawSocket.open(ctx.server.url));
  raw.connect();
  raw.send({
    type: "ModifyQuerySet",
    baseVersion: 0,
    newVersion: 1,
    modifications: [{ type: "Add", queryId: 0, udfPath: "testing/messages:list", args: [{ channel }] }],
  });
  const t1 = await raw.waitForMessage((m) => m.type === "Transition", { what: "the first Transition" });
  assert.deepEqual(t1.startVersion, { querySet: 0, identity: 0, ts: ZERO_TS }, "the first Transition on a socket starts at zero");
  assertStateVersion(t1.endVersion, "endVersion");
  assert.equal(t1.endVersion.querySet, 1);
  assert.equal(t1.endVersion.identity, 0);
  const q0 = t1.modifications.find((m) => m.queryId === 0);
  assert.ok(q0, `QueryUpdated for queryId 0: ${show(t1)}`);
  assert.equal(q0.type, "QueryUpdated");
  assert.deepEqual(q0.value, []);
  assertLogLines(q0.logLines, "QueryUpdated");
  assert.equal(q0.journal, null, "journal is null for non-paginated queries");
  assert.ok(!("errorData" in q0));

  // Mutation: response first (with ts), then a Transition covering it.
  const idx = raw.messages.length;
  raw.send({ type: "Mutation", requestId: 0, udfPath: "testing/messages:send", args: [{ channel, body: "raw" }] });
  const resp = await raw.waitForMessage((m) => m.type === "MutationResponse", { from: idx, what: "MutationResponse" });
  assert.equal(resp.requestId, 0);
  assert.equal(resp.success, true, show(resp));
  assert.equal(typeof resp.result, "string");
  assert.equal(typeof resp.ts, "string", `a successful MutationResponse carries ts: ${show(resp)}`);
  assertLogLines(resp.logLines, "MutationResponse");
  const respIdx = raw.messages.indexOf(resp);
  const t2 = await raw.waitForMessage((m) => m.type === "Transition" && decodeTs(m.endVersion.ts) >= decodeTs(resp.ts), {
    from: respIdx + 1,
    what: "a Transition at or after the mutation's ts, after the MutationResponse",
  });
  // Transitions chain exactly.
  const transitions = raw.messages.filter((m) => m.type === "Transition");
  for (let i = 1; i < transitions.length; i++) {
    assert.deepEqual(transitions[i].startVersion, transitions[i - 1].endVersion, `Transition ${i} must start where ${i - 1} ended`);
    assert.ok(decodeTs(transitions[i].endVersion.ts) >= decodeTs(transitions[i].startVersion.ts), "ts never decreases");
  }
  const updated = transitions.flatMap((tr) => tr.modifications).filter((m) => m.queryId === 0 && m.type === "QueryUpdated").at(-1);
  assert.equal(updated.value.length, 1, `the query was updated with the new doc: ${show(t2)}`);
  assert.equal(updated.value[0]._id, resp.result);

  // Action with an $integer argument; logLines carry the action's log.
  raw.send({ type: "Action", requestId: 1, udfPath: "testing/actions:echo", args: [{ value: { $integer: "BQAAAAAAAAA=" } }] });
  const act = await raw.waitForMessage((m) => m.type === "ActionResponse" && m.requestId === 1, { what: "ActionResponse" });
  assert.equal(act.success, true, show(act));
  assertLogLines(act.logLines, "ActionResponse");
  assert.ok(!("ts" in act) || act.ts === undefined || act.ts === null, "ActionResponse has no ts");

  // Failures: a plain error has no errorData; an application error has it.
  raw.send({ type: "Mutation", requestId: 2, udfPath: "testing/nope:missing", args: [{}] });
  const miss = await raw.waitForMessage((m) => m.type === "MutationResponse" && m.requestId === 2, { what: "failed MutationResponse" });
  assert.equal(miss.success, false);
  assert.equal(typeof miss.result, "string");
  assert.ok(!("errorData" in miss), `no errorData for a non-application error: ${show(miss)}`);
  assertLogLines(miss.logLines, "failed MutationResponse");
  raw.send({ type: "Mutation", requestId: 3, udfPath: "testing/errors:failMutation", args: [{ code: "FORBIDDEN", message: "x" }] });
  const app = await raw.waitForMessage((m) => m.type === "MutationResponse" && m.requestId === 3, { what: "app-error MutationResponse" });
  assert.equal(app.success, false);
  assert.equal(app.errorData?.code, "FORBIDDEN", show(app));

  // Non-canonical udfPath for a Mutation (".js" suffix) is canonicalized by the server.
  raw.send({ type: "Mutation", requestId: 4, udfPath: "testing/messages.js:send", args: [{ channel, body: "js" }] });
  const js = await raw.waitForMessage((m) => m.type === "MutationResponse" && m.requestId === 4, { what: "MutationResponse for .js path" });
  assert.equal(js.success, true, show(js));

  // Remove the query.
  const before = raw.messages.length;
  raw.send({ type: "ModifyQuerySet", baseVersion: 1, newVersion: 2, modifications: [{ type: "Remove", queryId: 0 }] });
  const t3 = await raw.waitForMessage((m) => m.type === "Transition" && m.endVersion.querySet === 2, { from: before, what: "Transition for querySet 2" });
  assert.ok(t3.modifications.some((m) => m.type === "QueryRemoved" && m.queryId === 0), `QueryRemoved: ${show(t3)}`);

  // Telemetry events are ignored, not errors.
  raw.send({ type: "Event", eventType: "ClientConnect", event: {} });
  raw.send({ type: "ModifyQuerySet", baseVersion: 2, newVersion: 3, modifications: [] });
  await raw.waitForMessage((m) => m.type === "Transition" && m.endVersion.querySet === 3, { what: "Transition for querySet 3 after an Event" });
  assert.equal(raw.closeInfo, undefined, "the socket is still open");

  // Checked last so that a failure here does not hide the checks above.
  assert.deepEqual(act.result, { $integer: "BQAAAAAAAAA=" }, `ActionResponse.result keeps int64 as $integer: ${show(act)}`);
});

test(`${V} raw Authenticate: identity version bumps in a Transition; an invalid token gets AuthError`, T, async (t) => {
  const s = scope(t);
  const token = await ctx.server.mintToken({ subject: "dave" });
  const raw = s.track(await RawSocket.open(ctx.server.url));
  raw.connect();
  raw.send({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: token });
  raw.send({
    type: "ModifyQuerySet",
    baseVersion: 0,
    newVersion: 1,
    modifications: [{ type: "Add", queryId: 0, udfPath: "testing/auth:whoami", args: [{}] }],
  });
  const tr = await raw.waitForMessage((m) => m.type === "Transition" && m.endVersion.querySet === 1, { what: "Transition with the query" });
  assert.equal(tr.endVersion.identity, 1, `identity confirmed: ${show(tr)}`);
  const who = raw.messages.filter((m) => m.type === "Transition").flatMap((m) => m.modifications).filter((m) => m.queryId === 0).at(-1);
  assert.equal(who.value?.subject, "dave", show(who));

  raw.send({ type: "Authenticate", baseVersion: 1, tokenType: "None" });
  const tr2 = await raw.waitForMessage((m) => m.type === "Transition" && m.endVersion.identity === 2, { what: "Transition for identity 2" });
  const who2 = tr2.modifications.find((m) => m.queryId === 0);
  assert.equal(who2?.value, null, `whoami re-run as anonymous: ${show(tr2)}`);

  const bad = s.track(await RawSocket.open(ctx.server.url));
  bad.connect();
  bad.send({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: "garbage" });
  const err = await bad.waitForMessage((m) => m.type === "AuthError", { what: "AuthError" });
  assert.equal(err.authUpdateAttempted, true, show(err));
  assert.equal(err.baseVersion, 0, show(err));
  assert.equal(typeof err.error, "string");
});

test(`${V} documented HTTP API: JSON format envelope, /api/run, GET /health`, T, async () => {
  const url = ctx.server.url;
  const channel = uniq("httpapi");
  const post = async (path, body) => {
    const res = await fetch(`${url}${path}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json().catch(() => null) };
  };
  const m = await post("/api/mutation", { path: "testing/messages:send", args: { channel, body: "hi" }, format: "json" });
  assert.equal(m.status, 200, show(m));
  assert.equal(m.body.status, "success", show(m));
  const q = await post("/api/query", { path: "testing/messages:list", args: { channel }, format: "json" });
  assert.equal(q.body.status, "success", show(q));
  assert.equal(q.body.value[0].body, "hi");
  const run = await post("/api/run/testing/counter/get", { args: { name: uniq("n") }, format: "json" });
  assert.equal(run.body?.status, "success", show(run));
  assert.equal(run.body.value, 0);
  const e = await post("/api/query", { path: "testing/errors:failQuery", args: { code: "FORBIDDEN", message: "m" }, format: "json" });
  assert.equal(e.body?.status, "error", show(e));
  assert.equal(e.body.errorData?.code, "FORBIDDEN", show(e));
  const h = await fetch(`${url}/health`);
  assert.equal(h.status, 200);
  const a = await post("/api/action", { path: "testing/actions:echo", args: { value: { $integer: "BQAAAAAAAAA=" } }, format: "convex_encoded_json" });
  assert.deepEqual(a.body.value, { $integer: "BQAAAAAAAAA=" }, `convex_encoded_json keeps int64 in results: ${show(a)}`);
});
