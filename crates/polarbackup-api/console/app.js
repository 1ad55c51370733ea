// The console's pages: sign-in, clusters, and one cluster (backups, policy, restore). Every
// figure shown comes from a public API call signed in this tab; every refusal is shown as the
// API stated it.

import { ApiError, all, call, credentials, forget, saveCredentials } from "./api.js";
import { humanBytes, humanSeconds, setsChart } from "./chart.js";

const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const PHASES = ["NoStart", "Preparing", "Waiting", "Uploading", "Checking", "Finished"];
const TERMINAL = new Set(["Finished", "Failed"]);

const main = document.getElementById("main");
let timer = null; // the cluster page's poll
let generation = 0; // bumped on every navigation; stale async work checks it

/** Element helper: h("div", {class: "x", onclick: f}, child, "text", …). */
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** A refusal as the API stated it: status, Code, Message, RequestId, and RAM's detail. */
function errorBox(err, what) {
  if (!(err instanceof ApiError)) err = new ApiError(0, { Code: "Error", Message: String(err && err.message ? err.message : err) });
  const b = err.body || {};
  const detail = b.AccessDeniedDetail;
  return h(
    "div",
    { class: "error", role: "alert", "data-code": err.code },
    h("strong", {}, what ? `${what}: ` : "", err.code),
    err.status ? h("span", { class: "status" }, ` (HTTP ${err.status})`) : null,
    h("div", { class: "message" }, b.Message || ""),
    detail
      ? h(
          "dl",
          { class: "detail" },
          Object.entries(detail).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]),
        )
      : null,
    err.requestId ? h("div", { class: "muted small" }, `RequestId ${err.requestId}`) : null,
  );
}

function setMain(...children) {
  main.replaceChildren(...children);
}

function stopPolling() {
  if (timer) clearTimeout(timer);
  timer = null;
}

// ---------- time helpers ----------

/** `YYYY-MM-DDThh:mmZ` (the API's query-range format). */
function apiMinute(d) {
  return d.toISOString().slice(0, 16) + "Z";
}

function parseApiTime(s) {
  if (!s) return null;
  const d = new Date(s);
  return isNaN(d) ? null : d;
}

function ago(d) {
  if (!d) return "";
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  const abs = Math.abs(s);
  const text = abs < 90 ? `${abs} s` : abs < 5400 ? `${Math.round(abs / 60)} min` : abs < 172800 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
  return s >= 0 ? `${text} ago` : `in ${text}`;
}

function timeCell(s) {
  const d = parseApiTime(s);
  return d ? [h("time", { datetime: s }, s), h("span", { class: "muted small" }, ` (${ago(d)})`)] : "—";
}

/** Every set of a cluster, newest first. */
async function allSets(cluster, extra = {}) {
  const now = new Date(Date.now() + 86400e3);
  const sets = await all(
    "DescribeBackups",
    { DBClusterId: cluster, StartTime: "2000-01-01T00:00Z", EndTime: apiMinute(now), ...extra },
    (b) => b.Items && b.Items.Backup,
  );
  return sets.sort((a, b) => (b.BackupStartTime || "").localeCompare(a.BackupStartTime || "") || Number(b.BackupId) - Number(a.BackupId));
}

// ---------- sign-in ----------

async function defaultRegion() {
  try {
    const r = await fetch("/console/settings.json", { cache: "no-store" });
    return (await r.json()).region || "";
  } catch {
    return "";
  }
}

async function showLogin(problem) {
  stopPolling();
  document.getElementById("who").hidden = true;
  const region = h("input", { id: "region", name: "region", required: true, autocomplete: "off", value: (credentials() || {}).region || (await defaultRegion()) });
  const id = h("input", { id: "key-id", name: "key-id", required: true, autocomplete: "username", spellcheck: "false" });
  const secret = h("input", { id: "key-secret", name: "key-secret", type: "password", required: true, autocomplete: "current-password" });
  const out = h("div", { id: "login-error" }, problem ? errorBox(problem, "Sign-in refused") : null);
  const form = h(
    "form",
    {
      id: "login-form",
      class: "card narrow",
      onsubmit: async (ev) => {
        ev.preventDefault();
        out.replaceChildren(h("p", { class: "muted" }, "Checking the key…"));
        saveCredentials({ id: id.value.trim(), secret: secret.value, region: region.value.trim() });
        secret.value = "";
        try {
          // Any signed call proves the pair; listing clusters is what the next page needs.
          await call("DescribeDBClusters", { RegionId: region.value.trim(), PageSize: "30" });
        } catch (e) {
          // A key refused by authentication is no sign-in; anything else (RAM, an API this
          // server lacks) still lets the user open a cluster by id.
          if (e instanceof ApiError && (e.status === 0 || isAuthFailure(e))) {
            forget();
            out.replaceChildren(errorBox(e, "Sign-in refused"));
            return;
          }
        }
        go("#/clusters");
      },
    },
    h("h1", {}, "Sign in"),
    h(
      "p",
      { class: "muted" },
      "Use an AccessKey pair of your account or of a RAM user. The console signs each call in this browser tab; the secret stays in this tab's session storage and is never sent to the server.",
    ),
    h("label", { for: "key-id" }, "AccessKey ID"),
    id,
    h("label", { for: "key-secret" }, "AccessKey secret"),
    secret,
    h("label", { for: "region" }, "Region"),
    region,
    h("button", { type: "submit", id: "login-submit", class: "primary" }, "Sign in"),
    out,
  );
  setMain(form);
  id.focus();
}

/** Authentication refusals: the key is unknown, disabled, or the signature does not match. */
function isAuthFailure(e) {
  return /^(InvalidAccessKeyId|SignatureDoesNotMatch|IncompleteSignature|InvalidTimeStamp|SignatureNonceUsed|InvalidSignature)/.test(e.code);
}

// ---------- clusters ----------

async function showClusters() {
  const gen = generation;
  const c = credentials();
  const table = h("tbody", { id: "clusters-body" }, h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Loading…")));
  const notice = h("div", { id: "clusters-error" });
  const openId = h("input", { id: "open-cluster-id", placeholder: "pc-…", spellcheck: "false", autocomplete: "off" });
  setMain(
    h("h1", {}, "Clusters"),
    h("p", { class: "muted" }, `Region ${c.region}`),
    notice,
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { id: "clusters", class: "grid-table stack" },
        h("thead", {}, h("tr", {}, h("th", {}, "Cluster"), h("th", {}, "Status"), h("th", {}, "Last successful backup"), h("th", {}, "Next scheduled backup"), h("th", {}, "Recovery window"))),
        table,
      ),
    ),
    h(
      "form",
      {
        class: "inline",
        id: "open-cluster",
        onsubmit: (ev) => {
          ev.preventDefault();
          const v = openId.value.trim();
          if (v) location.hash = `#/cluster/${encodeURIComponent(v)}`;
        },
      },
      h("label", { for: "open-cluster-id" }, "Open a cluster by id"),
      openId,
      h("button", { type: "submit" }, "Open"),
    ),
  );
  let clusters;
  try {
    clusters = await all("DescribeDBClusters", { RegionId: c.region }, (b) => b.Items && b.Items.DBCluster);
  } catch (e) {
    if (gen !== generation) return;
    table.replaceChildren();
    notice.replaceChildren(errorBox(e, "DescribeDBClusters"), h("p", { class: "muted" }, "You can still open a cluster by its id below."));
    return;
  }
  if (gen !== generation) return;
  if (clusters.length === 0) {
    table.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No clusters in this region.")));
    return;
  }
  table.replaceChildren(
    ...clusters.map((cl) => {
      const id = cl.DBClusterId;
      const last = h("td", { class: "last", "data-label": "Last successful backup" }, "…");
      const next = h("td", { class: "next", "data-label": "Next scheduled backup" }, "…");
      const win = h("td", { class: "window", "data-label": "Recovery window" }, "…");
      fillClusterRow(id, last, next, win);
      return h(
        "tr",
        { "data-cluster": id },
        h("td", {}, h("a", { href: `#/cluster/${encodeURIComponent(id)}`, class: "cluster-link" }, id), cl.DBClusterDescription && cl.DBClusterDescription !== id ? h("div", { class: "muted small" }, cl.DBClusterDescription) : null),
        h("td", { "data-label": "Status" }, h("span", { class: `pill ${String(cl.DBClusterStatus).toLowerCase()}` }, cl.DBClusterStatus)),
        last,
        next,
        win,
      );
    }),
  );
}

function fillClusterRow(id, last, next, win) {
  allSets(id, { BackupStatus: "Success" })
    .then((sets) => {
      const newest = sets.reduce((a, s) => (!a || (s.BackupEndTime || "") > (a.BackupEndTime || "") ? s : a), null);
      last.replaceChildren(...(newest ? [timeCell(newest.BackupEndTime)].flat() : ["none yet"]));
    })
    .catch((e) => last.replaceChildren(errorBox(e)));
  call("DescribeBackupPolicy", { DBClusterId: id })
    .then((p) => next.replaceChildren(...[timeCell(p.PreferredNextBackupTime)].flat()))
    .catch((e) => next.replaceChildren(errorBox(e)));
  call("DescribeLocalAvailableRecoveryTime", { DBClusterId: id })
    .then((w) => win.replaceChildren(windowText(w)))
    .catch((e) => win.replaceChildren(errorBox(e)));
}

function windowText(w) {
  if (!w.RecoveryBeginTime || !w.RecoveryEndTime) return "none yet";
  return `${w.RecoveryBeginTime} → ${w.RecoveryEndTime}`;
}

// ---------- one cluster ----------

async function showCluster(id, tab) {
  const gen = generation;
  const tabs = [
    ["backups", "Backups"],
    ["policy", "Policy"],
    ["restore", "Restore"],
  ];
  const actionOut = h("div", { id: "cluster-error" });
  const body = h("section", { id: `tab-${tab}-panel`, class: "panel" });
  const backupNow = h(
    "button",
    {
      type: "button",
      id: "backup-now",
      class: "primary",
      onclick: async () => {
        backupNow.disabled = true;
        actionOut.replaceChildren();
        try {
          const r = await call("CreateBackup", { DBClusterId: id });
          actionOut.replaceChildren(h("p", { class: "ok", id: "backup-started" }, `Backup job ${r.BackupJobId} queued.`));
          if (tab !== "backups") location.hash = `#/cluster/${encodeURIComponent(id)}/backups`;
          else poll(gen, id, 0);
        } catch (e) {
          actionOut.replaceChildren(errorBox(e, "CreateBackup"));
        } finally {
          backupNow.disabled = false;
        }
      },
    },
    "Back up now",
  );
  setMain(
    h("p", { class: "crumbs" }, h("a", { href: "#/clusters" }, "Clusters"), " / "),
    h("div", { class: "title-row" }, h("h1", { id: "cluster-title" }, id), backupNow),
    h("p", { id: "cluster-facts", class: "muted" }),
    actionOut,
    h(
      "nav",
      { class: "tabs" },
      tabs.map(([k, label]) => h("a", { id: `tab-${k}`, href: `#/cluster/${encodeURIComponent(id)}/${k}`, class: k === tab ? "active" : "" }, label)),
    ),
    body,
  );
  call("DescribeDBClusterAttribute", { DBClusterId: id })
    .then((a) => {
      if (gen !== generation) return;
      const facts = document.getElementById("cluster-facts");
      if (facts) facts.textContent = [a.DBClusterDescription !== id && a.DBClusterDescription, a.DBClusterStatus, a.DBType && `${a.DBType} ${a.DBVersion || ""}`].filter(Boolean).join(" · ");
    })
    .catch(() => {});
  if (tab === "policy") return policyTab(gen, id, body);
  if (tab === "restore") return restoreTab(gen, id, body);
  return backupsTab(gen, id, body);
}

// --- backups: jobs with live progress, history, sets, chart ---

function backupsTab(gen, id, body) {
  body.replaceChildren(
    h("h2", {}, "Jobs"),
    h("div", { id: "jobs-error" }),
    h("div", { id: "jobs" }, h("p", { class: "muted" }, "Loading…")),
    h("h2", {}, "Backup sets"),
    h("div", { id: "sets-error" }),
    h("div", { class: "scroll" }, h("table", { id: "sets", class: "grid-table stack" }, h("thead", {}, h("tr", {}, ["Set", "Status", "Mode", "Type", "Started", "Duration", "Size", ""].map((t) => h("th", {}, t)))), h("tbody", {}))),
    h("h2", {}, "Sizes and durations"),
    h("div", { id: "chart" }),
  );
  loadSets(gen, id);
  poll(gen, id, 0);
}

let lastActive = new Set();

function poll(gen, id, delay) {
  stopPolling();
  timer = setTimeout(async () => {
    if (gen !== generation) return;
    let jobs;
    try {
      const r = await call("DescribeBackupTasks", { DBClusterId: id });
      jobs = (r.Items && r.Items.BackupJob) || [];
      document.getElementById("jobs-error")?.replaceChildren();
    } catch (e) {
      if (gen !== generation) return;
      document.getElementById("jobs-error")?.replaceChildren(errorBox(e, "DescribeBackupTasks"));
      poll(gen, id, 5000);
      return;
    }
    if (gen !== generation) return;
    renderJobs(jobs);
    const active = new Set(jobs.filter((j) => !TERMINAL.has(j.BackupProgressStatus)).map((j) => j.BackupJobId));
    // A job that ended since the last poll: its set is new.
    if ([...lastActive].some((j) => !active.has(j))) loadSets(gen, id);
    lastActive = active;
    poll(gen, id, active.size ? 1000 : 5000);
  }, delay);
}

function renderJobs(jobs) {
  const box = document.getElementById("jobs");
  if (!box) return;
  if (jobs.length === 0) {
    box.replaceChildren(h("p", { class: "muted" }, "No running or recent jobs."));
    return;
  }
  const sorted = [...jobs].sort((a, b) => Number(b.BackupJobId) - Number(a.BackupJobId));
  box.replaceChildren(
    ...sorted.map((j) => {
      const pct = Math.max(0, Math.min(100, Number(j.Process) || 0));
      const status = j.BackupProgressStatus;
      const failed = status === "Failed";
      const fill = h("div", { class: `fill ${failed ? "failed" : status === "Finished" ? "done" : ""}` });
      fill.style.width = `${pct}%`;
      const at = PHASES.indexOf(status);
      return h(
        "div",
        { class: `job ${TERMINAL.has(status) ? "ended" : "running"}`, "data-job": j.BackupJobId, "data-status": status },
        h("div", { class: "job-head" }, h("strong", {}, `Job ${j.BackupJobId}`), h("span", { class: "muted small" }, ` ${j.JobMode} · ${j.TaskAction} · started ${j.StartTime}`), h("span", { class: `pill ${status.toLowerCase()}` }, status)),
        h("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct, "aria-label": `Job ${j.BackupJobId} progress` }, fill, h("span", { class: "pct" }, `${pct} %`)),
        h(
          "ol",
          { class: "phases" },
          PHASES.map((p, i) => h("li", { class: failed ? (i <= Math.max(at, 0) ? "failed" : "") : i < at ? "past" : i === at ? "now" : "" }, p)),
        ),
      );
    }),
  );
}

async function loadSets(gen, id) {
  let sets;
  try {
    sets = await allSets(id);
    document.getElementById("sets-error")?.replaceChildren();
  } catch (e) {
    if (gen === generation) document.getElementById("sets-error")?.replaceChildren(errorBox(e, "DescribeBackups"));
    return;
  }
  if (gen !== generation) return;
  const tbody = document.querySelector("#sets tbody");
  if (!tbody) return;
  const dur = (s) => {
    const a = parseApiTime(s.BackupStartTime);
    const b = parseApiTime(s.BackupEndTime);
    return a && b ? (b - a) / 1000 : 0;
  };
  tbody.replaceChildren(
    ...(sets.length === 0
      ? [h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No backup sets."))]
      : sets.map((s) => {
          const out = h("div", { class: "row-error" });
          const del = h(
            "button",
            {
              type: "button",
              class: "delete-set danger",
              onclick: async () => {
                if (del.dataset.armed !== "1") {
                  del.dataset.armed = "1";
                  del.textContent = "Really delete?";
                  return;
                }
                del.disabled = true;
                try {
                  await call("DeleteBackup", { DBClusterId: id, BackupId: s.BackupId });
                  loadSets(gen, id);
                } catch (e) {
                  out.replaceChildren(errorBox(e, "DeleteBackup"));
                  del.disabled = false;
                  del.dataset.armed = "";
                  del.textContent = "Delete";
                }
              },
            },
            "Delete",
          );
          return h(
            "tr",
            { "data-backup": s.BackupId, "data-status": s.BackupStatus },
            h("td", {}, s.BackupId, s.Comment ? h("div", { class: "muted small" }, s.Comment) : null),
            h("td", { "data-label": "Status" }, h("span", { class: `pill ${String(s.BackupStatus).toLowerCase()}` }, s.BackupStatus), s.IsAvail === "0" && s.BackupStatus === "Success" ? h("div", { class: "muted small" }, "unavailable") : null),
            h("td", { "data-label": "Mode" }, s.BackupMode),
            h("td", { "data-label": "Type" }, s.BackupType || ""),
            h("td", { "data-label": "Started" }, s.BackupStartTime),
            h("td", { class: "num", "data-label": "Duration" }, humanSeconds(dur(s))),
            h("td", { class: "num", "data-label": "Size", title: `${s.BackupSetSize} bytes` }, humanBytes(s.BackupSetSize || 0)),
            h("td", {}, del, out),
          );
        })),
  );
  const chart = document.getElementById("chart");
  if (chart) {
    const points = sets
      .filter((s) => s.BackupStatus === "Success")
      .map((s) => ({ id: s.BackupId, t: parseApiTime(s.BackupStartTime), size: Number(s.BackupSetSize) || 0, seconds: dur(s) }))
      .filter((p) => p.t);
    chart.replaceChildren(setsChart(points));
  }
}

// --- policy ---

async function policyTab(gen, id, body) {
  body.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  let p;
  try {
    p = await call("DescribeBackupPolicy", { DBClusterId: id });
  } catch (e) {
    if (gen === generation) body.replaceChildren(errorBox(e, "DescribeBackupPolicy"));
    return;
  }
  if (gen !== generation) return;
  const days = new Set(String(p.PreferredBackupPeriod || "").split(",").filter(Boolean));
  const dayBoxes = DAYS.map((d) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "day", value: d, checked: days.has(d) }), d.slice(0, 3)));
  const hours = Array.from({ length: 24 }, (_, i) => {
    const a = String(i).padStart(2, "0");
    const b = String((i + 1) % 24).padStart(2, "0");
    return `${a}:00Z-${b}:00Z`;
  });
  const sel = (idv, options, value) => h("select", { id: idv }, [...new Set([value, ...options])].filter((v) => v !== undefined && v !== "").map((o) => h("option", { value: o, selected: o === value }, o)));
  const time = sel("policy-time", hours, p.PreferredBackupTime);
  const freq = sel("policy-frequency", ["Normal", "2/24H", "3/24H", "4/24H"], p.BackupFrequency);
  const retention = h("input", { id: "policy-retention", type: "number", min: 3, max: 14, value: p.DataLevel1BackupRetentionPeriod });
  const onDelete = sel("policy-on-delete", ["NONE", "LATEST", "ALL"], p.BackupRetentionPolicyOnClusterDeletion);
  const status = h("div", { id: "policy-status" });
  const form = h(
    "form",
    {
      id: "policy-form",
      class: "card",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const chosen = dayBoxes.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
        const wanted = {
          PreferredBackupPeriod: chosen.join(","),
          PreferredBackupTime: time.value,
          BackupFrequency: freq.value,
          DataLevel1BackupRetentionPeriod: String(retention.value),
          BackupRetentionPolicyOnClusterDeletion: onDelete.value,
        };
        // Only what changed: ModifyBackupPolicy is a partial update.
        const change = Object.fromEntries(Object.entries(wanted).filter(([k, v]) => String(p[k] ?? "") !== v));
        if (Object.keys(change).length === 0) {
          status.replaceChildren(h("p", { class: "muted" }, "Nothing changed."));
          return;
        }
        status.replaceChildren(h("p", { class: "muted" }, "Saving…"));
        try {
          await call("ModifyBackupPolicy", { DBClusterId: id, ...change });
          p = await call("DescribeBackupPolicy", { DBClusterId: id });
          document.getElementById("policy-next").textContent = p.PreferredNextBackupTime || "none";
          status.replaceChildren(h("p", { class: "ok", id: "policy-saved" }, `Saved. Next scheduled backup: ${p.PreferredNextBackupTime || "none"}`));
        } catch (e) {
          status.replaceChildren(errorBox(e, "ModifyBackupPolicy"));
        }
      },
    },
    h("fieldset", {}, h("legend", {}, "Backup days (at least two)"), h("div", { class: "days" }, dayBoxes)),
    h("label", { for: "policy-time" }, "Backup window (UTC)"),
    time,
    h("label", { for: "policy-frequency" }, "Frequency"),
    freq,
    h("label", { for: "policy-retention" }, "Keep backup sets for (days, 3–14)"),
    retention,
    h("label", { for: "policy-on-delete" }, "Backups kept when the cluster is deleted"),
    onDelete,
    h("p", { class: "muted" }, "Next scheduled backup: ", h("span", { id: "policy-next" }, p.PreferredNextBackupTime || "none")),
    h("button", { type: "submit", id: "policy-save", class: "primary" }, "Save policy"),
    status,
  );
  body.replaceChildren(form);
}

// --- restore command ---

/** A shell word: quoted unless it is plainly safe. */
function shellWord(s) {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

async function restoreTab(gen, id, body) {
  body.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  let sets = [];
  let win = null;
  const problems = h("div", { id: "restore-error" });
  try {
    sets = (await allSets(id, { BackupStatus: "Success" })).filter((s) => s.IsAvail !== "0");
  } catch (e) {
    problems.append(errorBox(e, "DescribeBackups"));
  }
  try {
    win = await call("DescribeLocalAvailableRecoveryTime", { DBClusterId: id });
  } catch (e) {
    problems.append(errorBox(e, "DescribeLocalAvailableRecoveryTime"));
  }
  if (gen !== generation) return;
  const hasWindow = win && win.RecoveryBeginTime && win.RecoveryEndTime;
  const bySet = h("input", { type: "radio", name: "restore-kind", id: "restore-by-set", value: "set", checked: true });
  const byTime = h("input", { type: "radio", name: "restore-kind", id: "restore-by-time", value: "time", disabled: !hasWindow });
  const setSel = h("select", { id: "restore-set" }, sets.map((s) => h("option", { value: s.BackupId }, `${s.BackupId} — ${s.BackupStartTime} (${s.BackupMode})`)));
  const timeIn = h("input", { id: "restore-time", spellcheck: "false", placeholder: "2026-12-01T10:00:00Z", value: hasWindow ? win.RecoveryEndTime : "" });
  const target = h("input", { id: "restore-target", spellcheck: "false", value: "/var/lib/postgresql/restored" });
  const cmd = h("code", { id: "restore-command" });
  const note = h("div", { id: "restore-note" });
  const copy = h(
    "button",
    {
      type: "button",
      id: "restore-copy",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(cmd.textContent);
          copy.textContent = "Copied";
        } catch {
          const r = document.createRange();
          r.selectNodeContents(cmd);
          getSelection().removeAllRanges();
          getSelection().addRange(r);
          copy.textContent = "Selected: press Ctrl+C";
        }
      },
    },
    "Copy",
  );
  const update = () => {
    copy.textContent = "Copy";
    note.replaceChildren();
    const dir = target.value.trim() || "DIR";
    if (byTime.checked) {
      const t = timeIn.value.trim();
      const d = parseApiTime(t);
      const lo = parseApiTime(win.RecoveryBeginTime);
      const hi = parseApiTime(win.RecoveryEndTime);
      if (!d || !/Z$|[+-]\d\d:\d\d$/.test(t)) note.append(h("p", { class: "error" }, "Give the time as RFC 3339 with a zone, e.g. 2026-12-01T10:00:00Z."));
      else if (d < lo || d > hi) note.append(h("p", { class: "error" }, `That time is outside the recovery window (${win.RecoveryBeginTime} → ${win.RecoveryEndTime}); restore would refuse it.`));
      cmd.textContent = `polarbackup restore --cluster ${shellWord(id)} --recovery-time ${shellWord(t || "TIME")} --target-dir ${shellWord(dir)}`;
    } else {
      cmd.textContent = setSel.value ? `polarbackup restore --backup-id ${shellWord(setSel.value)} --target-dir ${shellWord(dir)}` : "";
      if (!setSel.value) note.append(h("p", { class: "muted" }, "No available backup set yet."));
    }
  };
  for (const e of [bySet, byTime, setSel, timeIn, target]) {
    e.addEventListener("input", update);
    e.addEventListener("change", update);
  }
  body.replaceChildren(
    problems,
    h(
      "div",
      { class: "card" },
      h("p", {}, "Recovery window: ", h("span", { id: "recovery-window" }, win ? windowText(win) : "unknown")),
      h("div", { class: "choice" }, h("label", { class: "check" }, bySet, " A backup set"), setSel),
      h("div", { class: "choice" }, h("label", { class: "check" }, byTime, " A time in the recovery window (UTC)"), timeIn),
      h("label", { for: "restore-target" }, "Target directory (absent or empty)"),
      target,
      h("p", {}, "Run on a host with the server's data directory (or the same --metadata-url and --repository-url):"),
      h("pre", { class: "command" }, cmd),
      copy,
      note,
    ),
  );
  update();
}

// ---------- routing ----------

function route() {
  generation++;
  stopPolling();
  lastActive = new Set();
  const c = credentials();
  if (!c) return showLogin();
  document.getElementById("who").hidden = false;
  document.getElementById("who-key").textContent = c.id;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "cluster" && parts[1]) return showCluster(parts[1], ["backups", "policy", "restore"].includes(parts[2]) ? parts[2] : "backups");
  return showClusters();
}

document.getElementById("logout").addEventListener("click", () => {
  forget();
  go("#/");
});

/** Navigates to `hash`, rendering it even when it is already the current one. */
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}
window.addEventListener("hashchange", route);
route();
