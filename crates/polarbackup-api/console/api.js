// The console's API client: every call is a V3-signed POST to this origin's RPC endpoint,
// signed in the browser with the key the user entered. The pair lives only in this tab's
// sessionStorage; the server never sees the secret (only signatures made with it).

import { signCall } from "./sign.js";

const STORE = "polarbackup.console.key";

/** {id, secret, region} of this tab, or null. */
export function credentials() {
  try {
    const v = JSON.parse(sessionStorage.getItem(STORE) || "null");
    return v && v.id && v.secret ? v : null;
  } catch {
    return null;
  }
}

export function saveCredentials(c) {
  sessionStorage.setItem(STORE, JSON.stringify(c));
}

export function forget() {
  sessionStorage.removeItem(STORE);
}

/** A refused call, as the API stated it: HTTP status, Code, Message, RequestId and the rest. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body.Message || body.Code || `HTTP ${status}`);
    this.status = status;
    this.code = body.Code || `HTTP ${status}`;
    this.body = body;
    this.requestId = body.RequestId || "";
  }
}

/** Calls `action` with `params` (strings); resolves to the JSON body or rejects with ApiError. */
export async function call(action, params = {}) {
  const c = credentials();
  if (!c) throw new ApiError(0, { Code: "NotSignedIn", Message: "Sign in with an AccessKey pair." });
  const { url, headers } = await signCall({
    keyId: c.id,
    secret: c.secret,
    host: location.host,
    action,
    params,
    date: new Date(),
    nonce: crypto.randomUUID(),
  });
  let res;
  try {
    res = await fetch(url, { method: "POST", headers, credentials: "omit", cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, { Code: "NetworkError", Message: String(e.message || e) });
  }
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = { Code: `HTTP ${res.status}`, Message: text.slice(0, 500) };
  }
  if (!res.ok || (body && body.Code)) throw new ApiError(res.status, body || {});
  return body;
}

/** Every page of a paged list call: `items(body)` picks a page's rows. At most `limit` rows. */
export async function all(action, params, items, limit = 1000) {
  const out = [];
  for (let page = 1; out.length < limit; page++) {
    const body = await call(action, { ...params, PageSize: "100", PageNumber: String(page) });
    const rows = items(body) || [];
    out.push(...rows);
    const total = Number(body.TotalRecordCount || 0);
    if (rows.length === 0 || out.length >= total) break;
  }
  return out;
}
