// Application errors (ConvexError data), unknown/internal functions, kind
// mismatches and argument validation, over WebSocket and HTTP.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { useServer } from "../lib/server.mjs";
import {
  T,
  fns,
  scope,
  uniq,
  withTimeout,
  settle,
  show,
  errInfo,
  makeFunctionReference,
  ConvexError,
  CLIENT_VERSION,
  PKG,
} from "../lib/client.mjs";

const ctx = useServer({ before, after }, { label: "errors" });
const V = `[${PKG}@${CLIENT_VERSION}]`;

function assertAppError(err, code, message, statusCode, where) {
  assert.ok(err instanceof Error, `${where}: expected an Error, got ${show(err)}`);
  assert.ok(
    err instanceof ConvexError,
    `${where}: expected a ConvexError (errorData present), got ${show(errInfo(err))}`,
  );
  assert.equal(typeof err.data, "object", `${where}: err.data should be an object: ${show(err.data)}`);
  assert.equal(err.data?.code, code, `${where}: err.data = ${show(err.data)}`);
  assert.equal(err.data?.message, message, `${where}: err.data = ${show(err.data)}`);
  assert.equal(err.data?.statusCode, statusCode, `${where}: err.data = ${show(err.data)}`);
}

/** Awaits a promise that must reject (within 10 s); returns the error. */
async function mustReject(promise, label) {
  const r = await settle(promise, 10_000, label);
  assert.equal(r.ok, false, `${label}: expected a rejection, got value ${show(r.value)}`);
  return r.error;
}

const missing = makeFunctionReference("testing/nope:missing");
const missingExport = makeFunctionReference("testing/messages:doesNotExist");

test(`${V} ConvexError from a query: onUpdate onError and one-shot query (WS)`, T, async (t) => {
  const s = scope(t);
  const c = s.client(ctx.server.url);
  const sub = s.subscribe(c, fns.failQuery, { code: "FORBIDDEN", message: "no entry" });
  const err = await sub.waitForError({ timeout: 10_000 });
  assertAppError(err, "FORBIDDEN", "no entry", 403, "onUpdate onError");
  assert.equal(sub.values.length, 0, "no value callback for a failing query");

  const err2 = await mustReject(c.query(fns.failQuery, { code: "NOT_FOUND", message: "gone" }), "WS one-shot failQuery");
  assertAppError(err2, "NOT_FOUND", "gone", 404, "WS client.query");

  // The socket is still healthy: the failure was a function error, not a protocol error.
  const channel = uniq("after-error");
  const id = await withTimeout(c.mutation(fns.send, { channel, body: "still alive" }), 10_000, "mutation after query error");
  assert.equal(typeof id, "string");
  assert.equal(c.connectionState().isWebSocketConnected, true);
});

test(`${V} ConvexError from a mutation (WS) keeps the client usable`, T, async (t) => {
  const s = scope(t);
  const c = s.client(ctx.server.url);
  const err = await mustReject(c.mutation(fns.failMutation, { code: "FORBIDDEN", message: "not yours" }), "WS failMutation");
  assertAppError(err, "FORBIDDEN", "not yours", 403, "WS mutation");

  for (const [code, status] of [
    ["UNAUTHORIZED", 401],
    ["CONFLICT", 409],
  ]) {
    const e = await mustReject(c.mutation(fns.failMutation, { code, message: `m-${code}` }), `WS failMutation ${code}`);
    assertAppError(e, code, `m-${code}`, status, `WS mutation ${code}`);
  }
  const name = uniq("ctr");
  assert.equal(await withTimeout(c.mutation(fns.counterIncrement, { name }), 10_000, "increment after errors"), 1);
});

test(`${V} ConvexError from a query and a mutation (HTTP)`, T, async (t) => {
  const s = scope(t);
  const http = s.http(ctx.server.url);
  const e1 = await mustReject(http.query(fns.failQuery, { code: "FORBIDDEN", message: "q-denied" }), "HTTP failQuery");
  assertAppError(e1, "FORBIDDEN", "q-denied", 403, "HTTP query");
  const e2 = await mustReject(http.mutation(fns.failMutation, { code: "FORBIDDEN", message: "m-denied" }), "HTTP failMutation");
  assertAppError(e2, "FORBIDDEN", "m-denied", 403, "HTTP mutation");
  const e3 = await mustReject(http.query(fns.failQuery, { code: "CONFLICT", message: "c" }), "HTTP failQuery CONFLICT");
  assertAppError(e3, "CONFLICT", "c", 409, "HTTP query CONFLICT");
});

test(`${V} an internal function cannot be called by clients (WS and HTTP)`, T, async (t) => {
  const s = scope(t);
  const channel = uniq("internal");
  const c = s.client(ctx.server.url);
  const http = s.http(ctx.server.url);

  const e1 = await mustReject(c.mutation(fns.sendInternal, { channel, body: "x" }), "WS internal mutation");
  assert.ok(e1 instanceof Error && e1.message.length > 0, show(errInfo(e1)));
  const e2 = await mustReject(http.mutation(fns.sendInternal, { channel, body: "y" }), "HTTP internal mutation");
  assert.ok(e2 instanceof Error && e2.message.length > 0, show(errInfo(e2)));

  const list = await withTimeout(http.query(fns.list, { channel }), 10_000, "list");
  assert.deepEqual(list, [], "the internal mutation must not have run");
});

test(`${V} unknown paths fail with an error, not a hang (WS query/mutation/action, HTTP)`, T, async (t) => {
  const s = scope(t);
  const c = s.client(ctx.server.url);
  const http = s.http(ctx.server.url);

  const sub = s.subscribe(c, missing, {});
  const e1 = await sub.waitForError({ timeout: 10_000 });
  assert.ok(e1 instanceof Error && e1.message.length > 0, show(errInfo(e1)));
  assert.equal(sub.values.length, 0);

  const sub2 = s.subscribe(c, missingExport, {});
  await sub2.waitForError({ timeout: 10_000 });

  const e2 = await mustReject(c.mutation(missing, {}), "WS unknown mutation");
  assert.ok(e2 instanceof Error && e2.message.length > 0);
  const e3 = await mustReject(c.action(missing, {}), "WS unknown action");
  assert.ok(e3 instanceof Error && e3.message.length > 0);
  const e4 = await mustReject(http.query(missing, {}), "HTTP unknown query");
  assert.ok(e4 instanceof Error && e4.message.length > 0);
  const e5 = await mustReject(http.mutation(missingExport, {}), "HTTP unknown mutation");
  assert.ok(e5 instanceof Error && e5.message.length > 0);
  const e6 = await mustReject(http.action(missing, {}), "HTTP unknown action");
  assert.ok(e6 instanceof Error && e6.message.length > 0);

  // The WebSocket survived all of that.
  const name = uniq("ctr");
  assert.equal(await withTimeout(c.mutation(fns.counterIncrement, { name }), 10_000, "increment after errors"), 1);
});

test(`${V} kind mismatches fail and have no effect (mutation as query, query as mutation, mutation as action)`, T, async (t) => {
  const s = scope(t);
  const channel = uniq("kind");
  const http = s.http(ctx.server.url);
  const c = s.client(ctx.server.url);

  // HTTP: POST /api/query with a mutation's path.
  const e1 = await mustReject(http.query(fns.send, { channel, body: "via query" }), "HTTP query of a mutation");
  assert.ok(e1 instanceof Error && e1.message.length > 0);
  // HTTP: POST /api/mutation with a query's path.
  const e2 = await mustReject(http.mutation(fns.list, { channel }), "HTTP mutation of a query");
  assert.ok(e2 instanceof Error && e2.message.length > 0);
  // HTTP: POST /api/action with a mutation's path.
  const e3 = await mustReject(http.action(fns.send, { channel, body: "via action" }), "HTTP action of a mutation");
  assert.ok(e3 instanceof Error && e3.message.length > 0);
  // HTTP: POST /api/query with an action's path.
  await mustReject(http.query(fns.echo, { value: 1 }), "HTTP query of an action");

  // WS: subscribing to a mutation, and a Mutation message for a query.
  const sub = s.subscribe(c, fns.send, { channel, body: "via subscription" });
  const e4 = await sub.waitForError({ timeout: 10_000 });
  assert.ok(e4 instanceof Error);
  const e5 = await mustReject(c.mutation(fns.list, { channel }), "WS mutation of a query");
  assert.ok(e5 instanceof Error);
  const e6 = await mustReject(c.action(fns.send, { channel, body: "ws action" }), "WS action of a mutation");
  assert.ok(e6 instanceof Error);

  const list = await withTimeout(http.query(fns.list, { channel }), 10_000, "list");
  assert.deepEqual(list, [], `no mismatched call may have inserted anything: ${show(list)}`);
});

test(`${V} argument validation errors (missing field, wrong type, extra field)`, T, async (t) => {
  const s = scope(t);
  const channel = uniq("args");
  const http = s.http(ctx.server.url);
  const c = s.client(ctx.server.url);
  await mustReject(http.mutation(fns.send, { channel }), "HTTP send without body");
  await mustReject(c.mutation(fns.send, { channel, body: 42 }), "WS send with numeric body");
  await mustReject(c.mutation(fns.send, { channel, body: "x", extra: true }), "WS send with extra field");
  const sub = s.subscribe(c, fns.list, { channel: 7 });
  await sub.waitForError({ timeout: 10_000 });
  const list = await withTimeout(http.query(fns.list, { channel }), 10_000, "list");
  assert.deepEqual(list, []);
});
