// The official convex client, loaded from the package named by CONVEX_PKG
// ("convex" = latest, "convex-1-28" = oldest supported), plus helpers shared by
// the test files: timeouts, quiet loggers, subscriptions that can be awaited,
// scopes that always close their clients, and a spying WebSocket class.

import fs from "node:fs";
import path from "node:path";
import WS from "ws";
import { E2E_DIR } from "./server.mjs";

/** The npm package (or alias) under test. */
export const PKG = process.env.CONVEX_PKG || "convex";

const browser = await import(`${PKG}/browser`);
const serverMod = await import(`${PKG}/server`);
const valuesMod = await import(`${PKG}/values`);

export const { ConvexClient, ConvexHttpClient } = browser;
export const { anyApi, makeFunctionReference, getFunctionName } = serverMod;
export const { ConvexError } = valuesMod;

/** The client's own version, as it puts it in `/api/<version>/sync`. */
export const CLIENT_VERSION = JSON.parse(
  fs.readFileSync(path.join(E2E_DIR, "node_modules", PKG, "package.json"), "utf8"),
).version;

/** Function references of the `--test-functions` set. */
export const fns = {
  list: anyApi.testing.messages.list,
  send: anyApi.testing.messages.send,
  paginate: anyApi.testing.messages.paginate,
  scheduleSend: anyApi.testing.messages.scheduleSend,
  sendInternal: makeFunctionReference("testing/messages:sendInternal"),
  counterGet: anyApi.testing.counter.get,
  counterIncrement: anyApi.testing.counter.increment,
  failQuery: anyApi.testing.errors.failQuery,
  failMutation: anyApi.testing.errors.failMutation,
  whoami: anyApi.testing.auth.whoami,
  echo: anyApi.testing.actions.echo,
  sendViaMutation: anyApi.testing.actions.sendViaMutation,
};

/** Per-test options: every test gives up after 20 s instead of hanging. */
export const T = { timeout: 20_000 };

// ---------------------------------------------------------------------------
// Small utilities.

/** JSON.stringify that survives bigint, ArrayBuffer and long values. */
export function show(value, max = 600) {
  let s;
  try {
    s = JSON.stringify(value, (_k, v) => {
      if (typeof v === "bigint") return `${v}n`;
      if (v instanceof ArrayBuffer) return `ArrayBuffer(${v.byteLength})`;
      if (typeof v === "number" && !Number.isFinite(v)) return String(v);
      return v;
    });
  } catch (e) {
    s = `<unprintable: ${e}>`;
  }
  if (s === undefined) s = String(value);
  return s.length > max ? s.slice(0, max) + `…(${s.length} chars)` : s;
}

/** Rejects with a descriptive error if `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, label = "operation") {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${label}`)), ms);
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns a truthy value; resolves that value. */
export async function waitUntil(fn, ms, label, intervalMs = 25) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting until ${label}`);
    await sleep(intervalMs);
  }
}

let uniqCounter = 0;
/** A name unique to this run (channels, counters). */
export function uniq(prefix) {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${uniqCounter++}`;
}

/** Settles `promise` into `{ok, value}` / `{ok:false, error}` within `ms`. */
export async function settle(promise, ms, label) {
  try {
    return { ok: true, value: await withTimeout(promise, ms, label) };
  } catch (error) {
    if (/^Timed out after/.test(error?.message ?? "")) throw error;
    return { ok: false, error };
  }
}

/** A logger for the convex client that records instead of printing. */
export function quietLogger(name = "client") {
  const lines = [];
  const verbose = !!process.env.E2E_CLIENT_LOG;
  const rec = (level) => (...args) => {
    const line = args.map((a) => (typeof a === "string" ? a : show(a))).join(" ");
    lines.push(`[${level}] ${line}`);
    if (lines.length > 500) lines.shift();
    if (verbose) process.stderr.write(`[${name} ${level}] ${line}\n`);
  };
  return {
    lines,
    log: rec("info"),
    warn: rec("warn"),
    error: rec("error"),
    logVerbose: verbose ? rec("debug") : () => {},
    addLogLineListener: () => () => {},
  };
}

// ---------------------------------------------------------------------------
// Subscriptions.

/**
 * Wraps `client.onUpdate` (always with an onError) and records every value and
 * error, so tests can await a state: `await sub.waitFor(v => v.length === 2)`.
 */
export class Subscription {
  constructor(client, ref, args, label) {
    this.label = label ?? `${getFunctionName(ref)}(${show(args, 120)})`;
    this.values = [];
    this.errors = [];
    this.events = []; // {kind:"value"|"error", value|error, at}
    this.current = null;
    this.waiters = new Set();
    this.unsubscribe = client.onUpdate(
      ref,
      args,
      (value) => this.#push({ kind: "value", value, at: Date.now() }),
      (error) => this.#push({ kind: "error", error, at: Date.now() }),
    );
  }

  #push(ev) {
    this.events.push(ev);
    if (ev.kind === "value") this.values.push(ev.value);
    else this.errors.push(ev.error);
    this.current = ev;
    for (const w of [...this.waiters]) w();
  }

  /** The latest value (undefined before the first one). */
  get latest() {
    return this.values.at(-1);
  }

  describe() {
    const cur = this.current
      ? this.current.kind === "value"
        ? `last value: ${show(this.current.value)}`
        : `last error: ${this.current.error?.message}`
      : "nothing received yet";
    return `${this.label}: ${this.values.length} value(s), ${this.errors.length} error(s); ${cur}`;
  }

  /**
   * Resolves with the current value once it satisfies `pred`. Rejects on
   * timeout, or when an error arrives while waiting (unless `allowErrors`).
   */
  waitFor(pred = () => true, { timeout = 10_000, what = "a matching value", allowErrors = false } = {}) {
    const errorsAtStart = this.errors.length;
    return new Promise((resolve, reject) => {
      let timer;
      const finish = (fn, arg) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        fn(arg);
      };
      const check = () => {
        const cur = this.current;
        if (cur?.kind === "value") {
          let ok = false;
          try {
            ok = pred(cur.value);
          } catch {
            ok = false;
          }
          if (ok) return finish(resolve, cur.value);
        }
        if (!allowErrors && this.errors.length > errorsAtStart) {
          const e = this.errors.at(-1);
          const err = new Error(`${this.label}: got an error while waiting for ${what}: ${e?.message}`);
          err.cause = e;
          return finish(reject, err);
        }
      };
      timer = setTimeout(() => {
        finish(reject, new Error(`Timed out after ${timeout} ms waiting for ${what}; ${this.describe()}`));
      }, timeout);
      this.waiters.add(check);
      check();
    });
  }

  /** Resolves with the next error reported through onError (or the current one if `includeCurrent`). */
  waitForError({ timeout = 10_000, includeCurrent = true } = {}) {
    const start = this.errors.length;
    return new Promise((resolve, reject) => {
      let timer;
      const check = () => {
        const have = includeCurrent && this.current?.kind === "error";
        if (have || this.errors.length > start) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve(this.errors.at(-1));
        }
      };
      timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`Timed out after ${timeout} ms waiting for an error; ${this.describe()}`));
      }, timeout);
      this.waiters.add(check);
      check();
    });
  }
}

// ---------------------------------------------------------------------------
// Scopes: everything a test opens is closed when the test ends.

/**
 * Tracks the clients and sockets of one test. Use
 * `const s = scope(t)` inside `test(…, async (t) => …)`: it registers
 * `t.after(() => s.close())`, which also runs when the test fails.
 */
export class Scope {
  constructor() {
    this.clients = [];
    this.sockets = [];
    this.cleanups = [];
  }

  /** A ConvexClient (WebSocket) with a quiet logger. */
  client(url, options = {}) {
    const logger = options.logger ?? quietLogger(`ws${this.clients.length}`);
    const c = new ConvexClient(url, { ...options, logger });
    c.__logger = logger;
    this.clients.push(c);
    return c;
  }

  /** A ConvexHttpClient with a quiet logger. */
  http(url, options = {}) {
    return new ConvexHttpClient(url, { logger: quietLogger("http"), ...options });
  }

  /** Subscribes on `client` with an onError; see {@link Subscription}. */
  subscribe(client, ref, args, label) {
    return new Subscription(client, ref, args, label);
  }

  track(socket) {
    this.sockets.push(socket);
    return socket;
  }

  defer(fn) {
    this.cleanups.push(fn);
  }

  async close() {
    const errors = [];
    for (const fn of this.cleanups.reverse()) {
      try {
        await fn();
      } catch (e) {
        errors.push(e);
      }
    }
    await Promise.all(
      this.clients.map((c) =>
        withTimeout(c.close(), 5_000, "ConvexClient.close()").catch((e) => errors.push(e)),
      ),
    );
    for (const s of this.sockets) {
      try {
        s.terminate?.();
      } catch {
        // ignore
      }
    }
    this.clients = [];
    this.sockets = [];
    if (errors.length && process.env.E2E_CLIENT_LOG) {
      process.stderr.write(`scope cleanup errors: ${errors.map((e) => e.message).join("; ")}\n`);
    }
  }
}

/** A {@link Scope} closed automatically after the test `t`. */
export function scope(t) {
  const s = new Scope();
  t.after(() => s.close());
  return s;
}

// ---------------------------------------------------------------------------
// A WebSocket class for `webSocketConstructor` that lets a test watch (and
// drop) frames of the official client.

/**
 * Returns `{ SpySocket, spy }`. `spy.sent` / `spy.received` hold parsed
 * frames `{socket, msg}`; `spy.onSend(msg, socket)` is called for every
 * outgoing frame; `spy.onReceive(msg, socket)` may return `false` to drop an
 * incoming frame before the client sees it (simulating a connection that
 * broke at that point).
 */
export function makeSpySocket() {
  const spy = {
    sockets: [],
    sent: [],
    received: [],
    onSend: null,
    onReceive: null,
  };
  class SpySocket extends WS {
    constructor(url, protocols, options) {
      super(url, protocols, options);
      spy.sockets.push(this);
    }

    send(data, ...rest) {
      let msg;
      try {
        msg = JSON.parse(String(data));
      } catch {
        msg = { unparsed: String(data) };
      }
      spy.sent.push({ socket: this, msg });
      spy.onSend?.(msg, this);
      return super.send(data, ...rest);
    }

    emit(event, ...args) {
      if (event === "message") {
        const [data, isBinary] = args;
        let msg;
        try {
          msg = JSON.parse(isBinary ? "" : data.toString());
        } catch {
          msg = { unparsed: String(data) };
        }
        spy.received.push({ socket: this, msg });
        if (spy.onReceive?.(msg, this) === false) return false;
      }
      return super.emit(event, ...args);
    }
  }
  return { SpySocket, spy };
}

// ---------------------------------------------------------------------------
// Error helpers.

/** Asserts-friendly summary of an error. */
export function errInfo(err) {
  return {
    name: err?.constructor?.name,
    message: err?.message,
    data: err?.data,
    isConvexError: err instanceof ConvexError,
  };
}
