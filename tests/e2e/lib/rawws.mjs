// A raw WebSocket speaking the Convex sync protocol by hand (the `ws`
// package), for protocol-conformance and robustness tests.

import { randomUUID } from "node:crypto";
import WS from "ws";
import { CLIENT_VERSION, show, withTimeout } from "./client.mjs";

/** `ws://host:port/api/<version>/sync` for a server URL. */
export function syncUrl(httpUrl, version = CLIENT_VERSION) {
  return `${httpUrl.replace(/^http/, "ws")}/api/${version}/sync`;
}

/** Decodes a base64 little-endian u64 timestamp to a bigint. */
export function decodeTs(b64) {
  const buf = Buffer.from(b64, "base64");
  if (buf.length !== 8) throw new Error(`timestamp ${show(b64)} does not decode to 8 bytes`);
  return buf.readBigUInt64LE();
}

export class RawSocket {
  constructor(url, { maxPayload } = {}) {
    this.url = url;
    this.ws = new WS(url, maxPayload ? { maxPayload } : undefined);
    this.messages = [];
    this.unparsed = [];
    this.waiters = new Set();
    this.errors = [];
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("error", reject);
      this.ws.once("close", (code) => reject(new Error(`closed before open (code ${code})`)));
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
        this.#notify();
      });
    });
    this.ws.on("error", (e) => this.errors.push(e));
    this.ws.on("message", (data, isBinary) => {
      const text = isBinary ? null : data.toString();
      try {
        this.messages.push(JSON.parse(text));
      } catch {
        this.unparsed.push(text);
      }
      this.#notify();
    });
  }

  #notify() {
    for (const w of [...this.waiters]) w();
  }

  static async open(httpUrl, opts = {}) {
    const s = new RawSocket(syncUrl(httpUrl, opts.version), opts);
    await withTimeout(s.opened, 10_000, `WebSocket open ${s.url}`);
    return s;
  }

  /** Sends an object as JSON, or a string as is. */
  send(msg) {
    this.ws.send(typeof msg === "string" ? msg : JSON.stringify(msg));
  }

  /** Sends a Connect for a new session; returns the sessionId. */
  connect({ sessionId = randomUUID(), connectionCount = 0, maxObservedTimestamp } = {}) {
    this.send({
      type: "Connect",
      sessionId,
      connectionCount,
      lastCloseReason: connectionCount === 0 ? "InitialConnect" : null,
      clientTs: Date.now(),
      ...(maxObservedTimestamp ? { maxObservedTimestamp } : {}),
    });
    return sessionId;
  }

  /** Resolves the first received message (from index `from`) matching `pred`. */
  waitForMessage(pred, { timeout = 10_000, from = 0, what = "a matching message" } = {}) {
    return new Promise((resolve, reject) => {
      let timer;
      const check = () => {
        for (let i = from; i < this.messages.length; i++) {
          if (pred(this.messages[i])) {
            clearTimeout(timer);
            this.waiters.delete(check);
            resolve(this.messages[i]);
            return;
          }
        }
        if (this.closeInfo) {
          clearTimeout(timer);
          this.waiters.delete(check);
          reject(
            new Error(
              `socket closed (code ${this.closeInfo.code}, reason ${show(this.closeInfo.reason)}) ` +
                `while waiting for ${what}; received: ${show(this.messages, 1500)}`,
            ),
          );
        }
      };
      timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`Timed out after ${timeout} ms waiting for ${what}; received: ${show(this.messages, 1500)}`));
      }, timeout);
      this.waiters.add(check);
      check();
    });
  }

  /** Resolves `{code, reason}` once the socket is closed (by either side). */
  waitForClose(timeout = 10_000, what = "the server to close the socket") {
    return withTimeout(this.closed, timeout, `${what}; received: ${show(this.messages, 800)}`);
  }

  terminate() {
    this.ws.terminate();
  }
}
