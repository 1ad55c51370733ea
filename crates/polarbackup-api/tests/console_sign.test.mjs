// The console's signer (console/sign.js) against PROTOCOL.md's worked example and every
// ACS3-HMAC-SHA256 request the official SDKs sent (tests/fixtures/vectors/requests).
// Run by console_signer.rs: `node --test` with the workspace root in POLARBACKUP_ROOT.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { webcrypto } from "node:crypto";
import {
  authorization,
  canonicalQuery,
  percentEncode,
  signCall,
  acsDate,
} from "../console/sign.js";

// Node 18 (Debian 12's) has WebCrypto only as a module; the browser has it as a global.
if (!globalThis.crypto) globalThis.crypto = webcrypto;

const ROOT = process.env.POLARBACKUP_ROOT;
const VECTORS = join(ROOT, "tests", "fixtures", "vectors", "requests");
const SECRET = "testsecret";

test("PROTOCOL.md worked example 2, through signCall", async () => {
  const { url, headers } = await signCall({
    keyId: "testid",
    secret: SECRET,
    host: "polardb.aliyuncs.com",
    action: "DescribeBackupTasks",
    params: { DBClusterId: "pc-abc123", BackupMode: "Manual" },
    date: new Date("2020-08-08T07:24:01.000Z"),
    nonce: "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
  });
  assert.equal(url, "/?BackupMode=Manual&DBClusterId=pc-abc123");
  assert.equal(headers["x-acs-date"], "2020-08-08T07:24:01Z");
  assert.equal(headers.host, undefined, "the browser sets Host itself");
  assert.equal(
    headers.authorization,
    "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=host;x-acs-action;x-acs-content-sha256;" +
      "x-acs-date;x-acs-signature-nonce;x-acs-version," +
      "Signature=7c7f07a238c931ca22f03f3be918119d331fbc24f49afa297bdec413d2700065",
  );
  assert.ok(!JSON.stringify(headers).includes(SECRET));
});

test("percent-encoding keeps unreserved characters and escapes the rest", () => {
  assert.equal(percentEncode("pc-a b*c~d/e+f"), "pc-a%20b%2Ac~d%2Fe%2Bf");
  assert.equal(percentEncode("Manüal"), "Man%C3%BCal");
  assert.equal(
    canonicalQuery([
      ["b", "2"],
      ["A", "x y"],
      ["a", "1"],
    ]),
    "A=x%20y&a=1&b=2",
  );
  assert.equal(acsDate(new Date("2026-12-02T22:45:01.999Z")), "2026-12-02T22:45:01Z");
});

/** One captured request: method, query pairs, headers (lower-case names), Authorization. */
function parse(raw) {
  const text = raw.toString("latin1");
  const end = text.indexOf("\r\n\r\n") >= 0 ? text.indexOf("\r\n\r\n") : text.indexOf("\n\n");
  const lines = text.slice(0, end).split(/\r?\n/);
  const [method, target] = lines[0].split(" ");
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    const name = line.slice(0, i).trim().toLowerCase();
    const value = Buffer.from(line.slice(i + 1).trim(), "latin1").toString("utf8");
    headers[name] = value;
  }
  const q = target.indexOf("?");
  const pairs = [];
  if (q >= 0) {
    for (const part of target.slice(q + 1).split("&")) {
      if (!part) continue;
      const eq = part.indexOf("=");
      const dec = (s) => decodeURIComponent(s.replace(/\+/g, " "));
      pairs.push(eq < 0 ? [dec(part), ""] : [dec(part.slice(0, eq)), dec(part.slice(eq + 1))]);
    }
  }
  return { method, path: target.slice(0, q < 0 ? undefined : q), pairs, headers };
}

test("every captured ACS3-HMAC-SHA256 request is signed alike", async () => {
  let checked = 0;
  for (const name of readdirSync(VECTORS).sort()) {
    if (!name.endsWith(".raw")) continue;
    const req = parse(readFileSync(join(VECTORS, name)));
    const auth = req.headers.authorization || "";
    if (!auth.startsWith("ACS3-HMAC-SHA256 ")) continue;
    const m = /Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]+)/.exec(auth);
    assert.ok(m, `${name}: ${auth}`);
    const signed = {};
    for (const h of m[2].split(";")) signed[h] = req.headers[h];
    const got = await authorization({
      keyId: m[1],
      secret: SECRET,
      method: req.method,
      path: req.path,
      query: canonicalQuery(req.pairs),
      headers: signed,
      payloadHash: req.headers["x-acs-content-sha256"],
    });
    assert.equal(got, auth, name);
    checked += 1;
  }
  assert.ok(checked >= 10, `only ${checked} captured V3 requests`);
});
