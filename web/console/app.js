// The Tollgate web console: one page, hash-routed. Keys, usage, events,
// alerts and blocks go through KeyService over Connect JSON on this origin
// with the management token as a Bearer header (held in sessionStorage, never
// in a cookie); the live tail and the overview's numbers come from
// /console/api/, behind the session cookie the login sets.
import { html, render, useEffect, useRef, useState } from "./vendor/preact-htm.js";
import uPlot from "./vendor/uPlot.esm.js";

const TOKEN = "tollgate.console.token";
const WHO = "tollgate.console.who";

/** Calls a KeyService RPC over Connect JSON; throws an Error with the server's message. */
async function rpc(method, body = {}, service = "tollgate.v1.KeyService") {
  const r = await fetch(`/${service}/${method}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${sessionStorage.getItem(TOKEN) ?? ""}`,
    },
    body: JSON.stringify(body),
  });
  const out = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(out.message ?? `${method}: HTTP ${r.status}`);
  return out;
}

/** GETs a console endpoint (session cookie). */
async function consoleGet(path) {
  const r = await fetch(`/console/api/${path}`, { credentials: "same-origin" });
  if (r.status === 401) {
    logout();
    throw new Error("session expired: log in again");
  }
  return r.json();
}

function logout() {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(WHO);
  fetch("/console/api/logout", { method: "POST" }).catch(() => undefined);
  location.hash = "#/login";
}

/** True when the session's token is read-only: the page then offers no change it would refuse. */
const readOnly = () => JSON.parse(sessionStorage.getItem(WHO) ?? "{}").readOnly === true;
const changeHint = () => (readOnly() ? "changes need a full management token" : undefined);

const time = (t) => (t ? new Date(t).toLocaleString() : "");
/** A duration in ms in words: `850 ms`, `12 s`, `3 min`, `5 h`, `2 d`. */
const span = (ms) =>
  ms < 1000
    ? `${ms} ms`
    : ms < 120_000
      ? `${Math.round(ms / 1000)} s`
      : ms < 7_200_000
        ? `${Math.round(ms / 60_000)} min`
        : ms < 172_800_000
          ? `${Math.round(ms / 3_600_000)} h`
          : `${Math.round(ms / 86_400_000)} d`;
const enumName = (v, prefix) =>
  String(v ?? "")
    .replace(prefix, "")
    .toLowerCase();
const shortStatus = (s) => String(s ?? "").replace(/^KEY_STATUS_/, "");

/** Hook: runs `load` now and whenever `deps` change; returns [data, error, reload]. */
function useLoad(load, deps = []) {
  const [state, setState] = useState({ data: undefined, error: "" });
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (data) => live && setState({ data, error: "" }),
      (e) => live && setState({ data: undefined, error: e.message }),
    );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  return [state.data, state.error, () => setN(n + 1)];
}

/** A uPlot time-series chart; `series` is [{label, stroke}], `data` uPlot's columns. */
function Chart({ series, data, title }) {
  const el = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    if (!el.current) return;
    plot.current?.destroy();
    plot.current = new uPlot(
      {
        title,
        width: Math.min(720, el.current.clientWidth || 720),
        height: 220,
        series: [{}, ...series.map((s) => ({ ...s, width: 2 }))],
      },
      data,
      el.current,
    );
    return () => plot.current?.destroy();
  }, [JSON.stringify(data)]);
  return html`<div ref=${el} class="chart"></div>`;
}

function Login({ onLogin }) {
  const [error, setError] = useState("");
  const submit = async (ev) => {
    ev.preventDefault();
    const token = ev.target.token.value.trim();
    const r = await fetch("/console/api/login", {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    });
    const out = await r.json().catch(() => ({}));
    if (!r.ok) return setError(out.error ?? `HTTP ${r.status}`);
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(WHO, JSON.stringify(out));
    // Go on to the page asked for (a bookmark, a link), or the overview; the
    // same hash fires no hashchange, so the app is told to render again.
    if (!/^#\/(?!login)\w/.test(location.hash)) location.hash = "#/overview";
    onLogin();
  };
  return html`<section>
    <h1>Tollgate console</h1>
    <form onSubmit=${submit}>
      <label>Management token<input name="token" type="password" autocomplete="off" /></label>
      <button type="submit">Log in</button>
    </form>
    <p class="error">${error}</p>
    <p class="muted">A read-only token can look; changes need a full token.</p>
  </section>`;
}

function Overview() {
  const [data, error, reload] = useLoad(() => consoleGet("overview"));
  useEffect(() => {
    const t = setInterval(reload, 2000);
    return () => clearInterval(t);
  });
  if (!data) return html`<section><h1>Overview</h1><p class="error">${error}</p></section>`;
  const xs = data.perSecond.map((p) => p.at / 1000);
  const reasons = Object.entries(data.byReason).sort((a, b) => b[1] - a[1]);
  return html`<section>
    <h1>Overview</h1>
    <${Chart}
      title="Decisions per second"
      series=${[{ label: "allowed", stroke: "#067647" }, { label: "denied", stroke: "#b42318" }]}
      data=${[xs, data.perSecond.map((p) => p.allowed), data.perSecond.map((p) => p.denied)]}
    />
    <div class="grid">
      <div>
        <h2>Decisions by reason (since start)</h2>
        <table>
          ${reasons.map(([r, n]) => html`<tr><td class=${r === "OK" ? "allowed" : "denied"}>${r}</td><td>${n}</td></tr>`)}
        </table>
      </div>
      <div>
        <h2>Top denied keys (last hour)</h2>
        <table>
          ${data.topDeniedKeys.map((e) => html`<tr><td><a href=${`#/key/${e.subject}`}>${e.subject}</a></td><td>${e.denials}</td></tr>`)}
        </table>
      </div>
      <div>
        <h2>Top denied IPs (last hour)</h2>
        <table>
          ${data.topDeniedIps.map((e) => html`<tr><td>${e.subject}</td><td>${e.denials}</td></tr>`)}
        </table>
      </div>
      <div>
        <h2>Store and policy</h2>
        <table>
          ${data.breakers.map((b) => html`<tr><td>breaker ${b.breaker}</td><td>${b.state}</td></tr>`)}
          ${data.breakers.length === 0 && html`<tr><td>store</td><td>embedded (no Redis connection)</td></tr>`}
          <tr><td>policy</td><td>${data.policy.source}</td></tr>
          <tr><td>policy version</td><td id="policy-version">${data.policy.version}</td></tr>
          <tr><td>tiers</td><td>${data.policy.tiers.join(", ")}</td></tr>
          <tr><td>live viewers</td><td>${data.liveSubscribers}</td></tr>
        </table>
      </div>
    </div>
  </section>`;
}

/**
 * Copies text to the clipboard; resolves to whether it worked. The Clipboard
 * API needs a secure context (localhost counts); elsewhere, the older
 * select-and-copy of the secret's own element.
 */
async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const el = document.getElementById("new-secret");
    if (!el) return false;
    getSelection()?.selectAllChildren(el);
    return document.execCommand("copy");
  }
}

/** A secret shown once, with a copy button. */
function Secret({ secret }) {
  const [copied, setCopied] = useState(false);
  if (!secret) return null;
  return html`<div class="secret" data-testid="secret">
    <p>The secret, shown once: copy it now.</p>
    <code id="new-secret">${secret}</code>
    <button type="button" id="copy-secret" onClick=${() => copy(secret).then(setCopied)}>
      ${copied ? "Copied" : "Copy"}
    </button>
  </div>`;
}

function Keys() {
  const [filter, setFilter] = useState({ owner: "", tier: "", status: "" });
  const [secret, setSecret] = useState("");
  const [error, setError] = useState("");
  const [data, loadError, reload] = useLoad(
    () => rpc("ListKeys", { owner: filter.owner, includeRevoked: true, pageSize: 500 }),
    [filter.owner],
  );
  const keys = (data?.keys ?? []).filter(
    (k) =>
      (!filter.tier || k.tier === filter.tier) &&
      (!filter.status || shortStatus(k.status) === filter.status),
  );
  const search = (ev) => {
    ev.preventDefault();
    const f = ev.target;
    setFilter({ owner: f.owner.value.trim(), tier: f.tier.value.trim(), status: f.status.value });
  };
  const createKey = async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    try {
      const scopes = f.scopes.value
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      const r = await rpc("CreateKey", {
        owner: f.owner.value.trim(),
        tier: f.tier.value.trim(),
        scopes,
      });
      setSecret(r.secret);
      setError("");
      f.reset();
      reload();
    } catch (e) {
      setError(e.message);
    }
  };
  return html`<section>
    <h1>Keys</h1>
    <h2>Create a key</h2>
    <form onSubmit=${createKey} id="create-key">
      <label>Owner<input name="owner" required /></label>
      <label>Tier<input name="tier" placeholder="policy default" /></label>
      <label>Scopes (comma-separated)<input name="scopes" /></label>
      <button type="submit" disabled=${readOnly()} title=${changeHint()}>Create key</button>
    </form>
    <${Secret} secret=${secret} />
    <p class="error">${error || loadError}</p>
    <h2>Search</h2>
    <form onSubmit=${search}>
      <label>Owner<input name="owner" /></label>
      <label>Tier<input name="tier" /></label>
      <label
        >Status<select name="status">
          <option value="">any</option>
          <option>ACTIVE</option>
          <option>REVOKED</option>
          <option>EXPIRED</option>
        </select></label
      >
      <button type="submit">Search</button>
    </form>
    <table id="keys">
      <tr><th>id</th><th>owner</th><th>tier</th><th>status</th><th>created</th></tr>
      ${keys.map(
        (k) => html`<tr>
          <td><a href=${`#/key/${k.id}`}>${k.id}</a></td>
          <td>${k.owner}</td>
          <td>${k.tier}</td>
          <td>${shortStatus(k.status)}</td>
          <td>${time(k.createTime)}</td>
        </tr>`,
      )}
    </table>
  </section>`;
}

/** Samples the key page's live usage chart keeps (one per refresh: 5 minutes). */
const LIMIT_SAMPLES = 150;
/** How often the key page re-reads its limits, ms (a read charges nothing). */
const LIMIT_REFRESH_MS = 2000;

/**
 * A key's limits: every bucket its tier counts it in (runtime overrides applied,
 * with where each limit's numbers come from), with where it stands
 * now (read without charging), and a chart of each bucket's use sampled
 * while the page is open.
 */
function KeyLimits({ id }) {
  const [state, setState] = useState({ data: undefined, error: "", samples: [] });
  useEffect(() => {
    let live = true;
    const load = () =>
      consoleGet(`key-limits?key=${encodeURIComponent(id)}`).then(
        (data) =>
          live &&
          setState((s) =>
            data.error
              ? { ...s, error: data.error }
              : { data, error: "", samples: [...s.samples, data].slice(-LIMIT_SAMPLES) },
          ),
        (e) => live && setState((s) => ({ ...s, error: e.message })),
      );
    load();
    const t = setInterval(load, LIMIT_REFRESH_MS);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [id]);
  const { data, error, samples } = state;
  if (!data) return html`<h2>Limits and current usage</h2><p class="error">${error}</p>`;
  const tied = data.limits.filter((l) => l.usage);
  const usedAt = (sample, l) =>
    sample.limits.find((x) => x.name === l.name && x.bucket === l.bucket)?.usage?.used ?? null;
  return html`<h2>Limits and current usage</h2>
    <p class="muted">
      Tier ${data.effectiveTier}${data.effectiveTier === data.tier ? "" : ` (the key's tier ${data.tier} is no longer in the policy)`};
      read without charging, every ${LIMIT_REFRESH_MS / 1000} s.
    </p>
    <table id="key-limits">
      <tr><th>limit</th><th>from</th><th>endpoints</th><th>counted per</th><th>used</th><th>remaining</th><th>resets in</th></tr>
      ${data.limits.map(
        (l) => html`<tr data-limit=${l.name} class=${l.usage?.full ? "denied" : ""}>
          <td>${l.text}</td>
          <td class="source">${l.source}</td>
          <td>${l.endpoints.join(", ")}</td>
          <td>${l.bucket}</td>
          <td class="used">${l.usage ? `${l.usage.used} / ${l.usage.capacity}` : "–"}</td>
          <td class="remaining">${l.usage ? l.usage.remaining : "–"}</td>
          <td>${l.usage && l.usage.resetMs > 0 ? span(l.usage.resetMs) : "–"}</td>
        </tr>`,
      )}
    </table>
    <p class="error">${error}</p>
    ${
      tied.length > 0 &&
      html`<${Chart}
        title="Used (cost units), since this page opened"
        series=${tied.map((l, i) => ({ label: seriesLabel(tied, l), stroke: PALETTE[i % PALETTE.length] }))}
        data=${[samples.map((s) => s.at / 1000), ...tied.map((l) => samples.map((s) => usedAt(s, l)))]}
      />`
    }`;
}

/** A limit's name, with its endpoints when an endpoint's override shares the name. */
const seriesLabel = (all, l) =>
  all.filter((x) => x.name === l.name).length > 1
    ? `${l.name} (${l.endpoints.join(", ")})`
    : l.name;

/** Series colours of the charts. */
const PALETTE = ["#1f5fbf", "#b42318", "#067647", "#b54708", "#6941c6", "#475467"];

/** How often the key page re-reads its per-minute usage, ms (counters are flushed in batches). */
const USAGE_REFRESH_MS = 10_000;

/** A key's requests per minute over the last hour (GetUsage), re-read while the page is open. */
function KeyUsage({ id }) {
  const [usage, error, reload] = useLoad(() => {
    const end = new Date();
    const start = new Date(end.getTime() - 3600_000);
    return rpc("GetUsage", {
      keyId: id,
      startTime: start.toISOString(),
      endTime: end.toISOString(),
      granularity: "USAGE_GRANULARITY_MINUTE",
    });
  }, [id]);
  useEffect(() => {
    const t = setInterval(reload, USAGE_REFRESH_MS);
    return () => clearInterval(t);
  });
  const buckets = usage?.buckets ?? [];
  return html`<h2>Requests per minute (last hour)</h2>
    <p class="error">${error}</p>
    <${Chart}
      title=""
      series=${[{ label: "requests", stroke: "#1f5fbf" }]}
      data=${[buckets.map((b) => Date.parse(b.startTime) / 1000), buckets.map((b) => Number(b.requests ?? 0))]}
    />`;
}

function KeyPage({ id }) {
  const [secret, setSecret] = useState("");
  const [error, setError] = useState("");
  const [data, loadError, reload] = useLoad(async () => {
    const [key, events] = await Promise.all([
      rpc("GetKey", { id }),
      rpc("ListEvents", { subject: id, pageSize: 20 }).catch(() => ({ events: [] })),
    ]);
    return { key: key.key, events: events.events ?? [] };
  }, [id]);
  const act = (fn) => async (ev) => {
    ev.preventDefault();
    try {
      await fn(ev.target);
      setError("");
      reload();
    } catch (e) {
      setError(e.message);
    }
  };
  if (!data) return html`<section><h1>Key ${id}</h1><p class="error">${loadError}</p></section>`;
  const k = data.key;
  return html`<section>
    <h1>Key ${k.id}</h1>
    <div class="key-top">
      <table id="key-fields">
        <tr><td>owner</td><td>${k.owner}</td></tr>
        <tr><td>tier</td><td>${k.tier}</td></tr>
        <tr><td>status</td><td id="key-status">${shortStatus(k.status)}</td></tr>
        <tr><td>scopes</td><td>${(k.scopes ?? []).join(", ")}</td></tr>
        <tr><td>created</td><td>${time(k.createTime)}</td></tr>
        <tr><td>expires</td><td>${time(k.expireTime)}</td></tr>
        <tr><td>revoked</td><td>${time(k.revokeTime)} ${k.revokedReason ?? ""}</td></tr>
      </table>
      <div>
        <form onSubmit=${act(async () => setSecret((await rpc("RotateKey", { keyId: id }, "tollgate.v1.TollgateService")).secret))}>
          <button type="submit" disabled=${readOnly()} title=${changeHint()}>Rotate secret</button>
        </form>
        <${Secret} secret=${secret} />
        <form id="revoke" onSubmit=${act((f) => rpc("RevokeKey", { id, reason: f.reason.value.trim() }))}>
          <label>Reason for revoking<input name="reason" required /></label>
          <button type="submit" disabled=${readOnly()} title=${changeHint()}>Revoke key</button>
        </form>
        <p class="error">${error}</p>
      </div>
    </div>
    <${KeyLimits} id=${id} />
    <${KeyUsage} id=${id} />
    <h2>Recent events</h2>
    <table>
      ${data.events.map((e) => html`<tr><td>${time(e.time)}</td><td>${e.type}</td><td>${e.endpoint}</td><td>${e.clientIp}</td></tr>`)}
    </table>
  </section>`;
}

function Blocks() {
  const [error, setError] = useState("");
  const [data, loadError, reload] = useLoad(async () => {
    const [b, a] = await Promise.all([rpc("ListBlocks", {}), rpc("ListAlerts", { pageSize: 50 })]);
    return { blocks: b.blocks ?? [], alerts: a.alerts ?? [] };
  });
  const lift = async (b) => {
    try {
      await rpc("DeleteBlock", { subject: b.subject, subjectKind: b.subjectKind });
      reload();
    } catch (e) {
      setError(e.message);
    }
  };
  return html`<section>
    <h1>Alerts and blocks</h1>
    <p class="error">${error || loadError}</p>
    <h2>Active blocks</h2>
    <table id="blocks">
      <tr><th>subject</th><th>kind</th><th>level</th><th>until</th><th></th></tr>
      ${(data?.blocks ?? []).map(
        (b) => html`<tr>
          <td>${b.subject}</td><td>${enumName(b.subjectKind, "SUBJECT_KIND_")}</td><td>${b.level}</td><td>${time(b.endTime)}</td>
          <td><button type="button" disabled=${readOnly()} title=${changeHint()} onClick=${() => lift(b)}>Lift</button></td>
        </tr>`,
      )}
    </table>
    <h2>Recent alerts</h2>
    <table id="alerts">
      <tr><th>fired</th><th>rule</th><th>severity</th><th>subject</th><th>message</th></tr>
      ${(data?.alerts ?? []).map(
        (a) =>
          html`<tr><td>${time(a.fireTime)}</td><td>${a.rule}</td><td>${enumName(a.severity, "SEVERITY_")}</td><td>${a.subject}</td><td>${a.message}</td></tr>`,
      )}
    </table>
  </section>`;
}

/** The effective policy: the rows `tollgate check-config` prints, from the running policy. */
function PolicyPage() {
  const [t, error] = useLoad(() => consoleGet("policy"));
  if (!t || t.error)
    return html`<section><h1>Effective policy</h1><p class="error">${error || t?.error}</p></section>`;
  return html`<section>
    <h1>Effective policy</h1>
    <p class="muted">
      ${t.source} (version ${t.version}), the same table as <code>tollgate check-config</code>.
      Default tier ${t.defaultTier}.
    </p>
    <h2>Tiers</h2>
    <table id="policy-tiers">
      ${t.tiers.map((x) => html`<tr><td>${x.name}</td><td>${x.description}</td></tr>`)}
    </table>
    <h2>Endpoints (first match wins)</h2>
    <table id="policy-endpoints">
      <tr><th>name</th><th>method</th><th>path</th><th>scopes</th><th>cost</th><th>fail</th></tr>
      ${t.endpoints.map(
        (e) =>
          html`<tr><td>${e.name}</td><td>${e.method}</td><td>${e.path}</td><td>${e.scopes}</td><td>${e.cost}</td><td>${e.fail}</td></tr>`,
      )}
    </table>
    <h2>Effective limits (tier × endpoint)</h2>
    <table id="policy-limits">
      <tr><th>tier</th><th>endpoint</th><th>limit</th></tr>
      ${t.limits.map((r) => html`<tr><td>${r.tier}</td><td>${r.endpoint}</td><td>${r.limit}</td></tr>`)}
    </table>
    <h2>Blocking</h2>
    <p id="policy-blocking">${t.blocking}</p>
    <h2>Envoy rate-limit descriptors</h2>
    <table>
      <tr><th>domain</th><th>descriptor</th><th>limit</th></tr>
      ${t.envoy.map((e) => html`<tr><td>${e.domain}</td><td>${e.descriptor}</td><td>${e.limit}</td></tr>`)}
    </table>
    <h2>Detection rules</h2>
    <table>
      <tr><th>name</th><th>kind</th><th>fires when</th><th>events</th><th>severity</th><th>cool-down</th><th>action</th></tr>
      ${t.detection.map(
        (r) =>
          html`<tr><td>${r.name}</td><td>${r.kind}</td><td>${r.firesWhen}</td><td>${r.events}</td><td>${r.severity}</td><td>${r.cooldown}</td><td>${r.action}</td></tr>`,
      )}
    </table>
    <p>Webhooks: ${t.webhooks}</p>
    <h2>Notifications</h2>
    ${
      t.notifications.length === 0
        ? html`<p id="policy-notifications">none</p>`
        : html`<ul id="policy-notifications">${t.notifications.map((l) => html`<li>${l}</li>`)}</ul>`
    }
  </section>`;
}

/** Most lines the tail keeps on screen. */
const TAIL_LINES = 200;

/**
 * What the tail showed, kept while another page is open so coming back shows
 * the recent lines again; a gap line marks the time nobody was watching.
 */
const tailKept = { filter: { key: "", denied: false }, lines: [], leftAt: 0 };

function Tail() {
  const [filter, setFilterState] = useState(tailKept.filter);
  const [lines, setLinesState] = useState(() =>
    tailKept.lines.length > 0 && !tailKept.lines[0].gap
      ? [{ gap: true, from: tailKept.leftAt, at: Date.now() }, ...tailKept.lines].slice(
          0,
          TAIL_LINES,
        )
      : tailKept.lines,
  );
  const setLines = (f) =>
    setLinesState((ls) => {
      tailKept.lines = typeof f === "function" ? f(ls) : f;
      return tailKept.lines;
    });
  const setFilter = (f) => {
    tailKept.filter = f;
    setFilterState(f);
  };
  const [status, setStatus] = useState("connecting");
  useEffect(() => {
    const q = new URLSearchParams();
    if (filter.key) q.set("key", filter.key);
    if (filter.denied) q.set("denied", "1");
    const es = new EventSource(`/console/api/decisions?${q}`);
    es.onopen = () => setStatus("live");
    es.onerror = () => setStatus("disconnected (retrying)");
    es.addEventListener("decision", (ev) => {
      const line = JSON.parse(ev.data);
      setLines((ls) => [line, ...ls].slice(0, TAIL_LINES));
    });
    return () => {
      es.close();
      tailKept.leftAt = Date.now();
    };
  }, [filter.key, filter.denied]);
  const apply = (ev) => {
    ev.preventDefault();
    setLines([]);
    setFilter({ key: ev.target.key.value.trim(), denied: ev.target.denied.checked });
  };
  return html`<section>
    <h1>Live decisions</h1>
    <form onSubmit=${apply}>
      <label>Key id<input name="key" /></label>
      <label>Denials only<input name="denied" type="checkbox" /></label>
      <button type="submit">Filter</button>
      <span class="muted" id="tail-status">${status}</span>
    </form>
    <table id="tail">
      <tr><th>time</th><th>door</th><th>decision</th><th>reason</th><th>key</th><th>endpoint</th><th>client IP</th><th>ms</th></tr>
      ${lines.map((l) =>
        l.gap
          ? html`<tr class="gap"><td colspan="8">not watched from ${new Date(l.from).toLocaleTimeString()} to ${new Date(l.at).toLocaleTimeString()}: decisions in between are not shown</td></tr>`
          : html`<tr class=${l.allowed ? "allowed" : "denied"}>
          <td>${new Date(l.at).toLocaleTimeString()}</td><td>${l.rpc}</td>
          <td>${l.allowed ? "allow" : "deny"}</td><td>${l.reason}</td><td>${l.keyId ?? ""}</td>
          <td>${l.endpoint ?? ""}</td><td>${l.clientIp ?? ""}</td><td>${Number(l.latencyMs).toFixed(2)}</td>
        </tr>`,
      )}
    </table>
  </section>`;
}

const PAGES = [
  ["overview", "Overview"],
  ["keys", "Keys"],
  ["blocks", "Alerts and blocks"],
  ["policy", "Policy"],
  ["tail", "Live tail"],
];

function App() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  // Bumped by a login: renders the page again even when the hash did not change.
  const [, setLogins] = useState(0);
  const login = html`<${Login} onLogin=${() => setLogins((n) => n + 1)} />`;
  const [, page = "overview", arg = ""] = hash.split("/");
  if (!sessionStorage.getItem(TOKEN) && page !== "login") {
    // Dev mode (no token configured) still logs in, with an empty token.
    if (!sessionStorage.getItem(WHO)) return login;
  }
  if (page === "login") return login;
  const who = JSON.parse(sessionStorage.getItem(WHO) ?? "{}");
  const body =
    page === "keys"
      ? html`<${Keys} />`
      : page === "key"
        ? html`<${KeyPage} id=${decodeURIComponent(arg)} />`
        : page === "blocks"
          ? html`<${Blocks} />`
          : page === "policy"
            ? html`<${PolicyPage} />`
            : page === "tail"
              ? html`<${Tail} />`
              : html`<${Overview} />`;
  return html`<div>
    <nav>
      <strong><span>Tollgate</span></strong>
      ${PAGES.map(([p, label]) => html`<a href=${`#/${p}`} class=${p === page ? "active" : ""}>${label}</a>`)}
      <span class="who">${who.name}${who.readOnly ? " (read-only)" : ""}</span>
      <button type="button" onClick=${logout}>Log out</button>
    </nav>
    ${body}
  </div>`;
}

const root = document.getElementById("app");
// The page's "Loading…" is plain text: Preact renders beside it, not over it.
root.textContent = "";
render(html`<${App} />`, root);
