// ACS3-HMAC-SHA256 request signing (PROTOCOL.md §3) with WebCrypto, for the console's calls.
// Pure: no DOM, no storage; the same module runs in the browser and under `node --test`.

export const ALGORITHM = "ACS3-HMAC-SHA256";
export const API_VERSION = "2017-08-01";

const te = new TextEncoder();

function subtle() {
  const s = globalThis.crypto && globalThis.crypto.subtle;
  if (!s) {
    throw new Error(
      "This page cannot sign requests: the browser offers WebCrypto only in a secure context " +
        "(HTTPS, or http://localhost).",
    );
  }
  return s;
}

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Lower-case hex SHA-256 of a string (UTF-8) or bytes. */
export async function sha256Hex(data) {
  const bytes = typeof data === "string" ? te.encode(data) : data;
  return hex(await subtle().digest("SHA-256", bytes));
}

/** Lower-case hex HMAC-SHA256 of `message` under `secret` (the raw secret, no '&'). */
export async function hmacHex(secret, message) {
  const key = await subtle().importKey(
    "raw",
    te.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return hex(await subtle().sign("HMAC", key, te.encode(message)));
}

/** RFC 3986 percent-encoding as the SDKs apply it: only unreserved characters stay literal. */
export function percentEncode(s) {
  let out = "";
  for (const b of te.encode(String(s))) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else out += "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** Sorted, encoded `k=v&…` from [key, value] pairs: both what is sent and what is signed. */
export function canonicalQuery(pairs) {
  const enc = pairs.map(([k, v]) => [percentEncode(k), percentEncode(v)]);
  enc.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return enc.map(([k, v]) => `${k}=${v}`).join("&");
}

/**
 * The Authorization value for one request.
 * `headers`: every header to sign, as {name: value}; names are lower-cased and sorted here.
 * `query`: the canonical query string; `payloadHash`: hex SHA-256 of the body.
 */
export async function authorization({ keyId, secret, method, path, query, headers, payloadHash }) {
  const names = Object.keys(headers)
    .map((n) => n.toLowerCase())
    .sort();
  const lower = {};
  for (const [n, v] of Object.entries(headers)) lower[n.toLowerCase()] = String(v).trim();
  const canonicalHeaders = names.map((n) => `${n}:${lower[n]}\n`).join("");
  const signed = names.join(";");
  const canonical = [method, path, query, canonicalHeaders, signed, payloadHash].join("\n");
  const toSign = `${ALGORITHM}\n${await sha256Hex(canonical)}`;
  const signature = await hmacHex(secret, toSign);
  return `${ALGORITHM} Credential=${keyId},SignedHeaders=${signed},Signature=${signature}`;
}

/** `x-acs-date`: ISO-8601 UTC to the second, no milliseconds. */
export function acsDate(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * A signed RPC call: POST /?<params> with an empty body; returns {url, headers} for fetch.
 * The browser sends Host itself, so `host` must be what it will send (location.host).
 */
export async function signCall({ keyId, secret, host, action, params, date, nonce }) {
  const pairs = Object.entries(params || {})
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => [k, String(v)]);
  const query = canonicalQuery(pairs);
  const payloadHash = await sha256Hex("");
  const signedHeaders = {
    host,
    "x-acs-action": action,
    "x-acs-content-sha256": payloadHash,
    "x-acs-date": acsDate(date),
    "x-acs-signature-nonce": nonce,
    "x-acs-version": API_VERSION,
  };
  const auth = await authorization({
    keyId,
    secret,
    method: "POST",
    path: "/",
    query,
    headers: signedHeaders,
    payloadHash,
  });
  const headers = { ...signedHeaders, accept: "application/json", authorization: auth };
  delete headers.host;
  return { url: query ? `/?${query}` : "/", headers };
}
