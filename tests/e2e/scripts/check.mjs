#!/usr/bin/env node
// Syntax-checks every .mjs file of the suite (node --check), and makes sure the
// shared libs load against both client versions.

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const files = ["lib", "test", "scripts"].flatMap((d) =>
  fs.readdirSync(path.join(E2E_DIR, d)).filter((f) => f.endsWith(".mjs")).map((f) => path.join(d, f)),
);
for (const f of files) execFileSync(process.execPath, ["--check", f], { cwd: E2E_DIR, stdio: "inherit" });
console.log(`node --check ok: ${files.length} files`);
for (const pkg of ["convex", "convex-1-28"]) {
  const out = execFileSync(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `const m = await import("./lib/client.mjs"); await import("./lib/rawws.mjs");
       if (typeof m.ConvexClient !== "function" || typeof m.ConvexError !== "function") throw new Error("exports missing");
       console.log(m.PKG, m.CLIENT_VERSION, m.getFunctionName(m.fns.list));`,
    ],
    { cwd: E2E_DIR, env: { ...process.env, CONVEX_PKG: pkg } },
  );
  process.stdout.write(`loads with ${out}`);
}
