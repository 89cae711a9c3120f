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

const time = (t) => (t ? new Date(t).toLocaleString() : "");
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

function Login() {
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
    location.hash = "#/overview";
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
  if (!data) return html`<section><p class="error">${error}</p></section>`;
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
          <tr><td>policy</td><td>${data.policy.source}</td></tr>
          <tr><td>tiers</td><td>${data.policy.tiers.join(", ")}</td></tr>
          <tr><td>live viewers</td><td>${data.liveSubscribers}</td></tr>
        </table>
      </div>
    </div>
  </section>`;
}

/** A secret shown once, with a copy button. */
function Secret({ secret }) {
  const [copied, setCopied] = useState(false);
  if (!secret) return null;
  return html`<div class="secret" data-testid="secret">
    <p>The secret, shown once: copy it now.</p>
    <code id="new-secret">${secret}</code>
    <button
      type="button"
      onClick=${() => navigator.clipboard?.writeText(secret).then(() => setCopied(true))}
    >
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
      <button type="submit">Create key</button>
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

function KeyPage({ id }) {
  const [secret, setSecret] = useState("");
  const [error, setError] = useState("");
  const [data, loadError, reload] = useLoad(async () => {
    const end = new Date();
    const start = new Date(end.getTime() - 3600_000);
    const [key, usage, events] = await Promise.all([
      rpc("GetKey", { id }),
      rpc("GetUsage", {
        keyId: id,
        startTime: start.toISOString(),
        endTime: end.toISOString(),
        granularity: "USAGE_GRANULARITY_MINUTE",
      }).catch(() => ({ buckets: [] })),
      rpc("ListEvents", { subject: id, pageSize: 20 }).catch(() => ({ events: [] })),
    ]);
    return { key: key.key, usage, events: events.events ?? [] };
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
  if (!data) return html`<section><p class="error">${loadError}</p></section>`;
  const k = data.key;
  const buckets = data.usage.buckets ?? [];
  return html`<section>
    <h1>Key ${k.id}</h1>
    <table id="key-fields">
      <tr><td>owner</td><td>${k.owner}</td></tr>
      <tr><td>tier</td><td>${k.tier}</td></tr>
      <tr><td>status</td><td id="key-status">${shortStatus(k.status)}</td></tr>
      <tr><td>scopes</td><td>${(k.scopes ?? []).join(", ")}</td></tr>
      <tr><td>created</td><td>${time(k.createTime)}</td></tr>
      <tr><td>expires</td><td>${time(k.expireTime)}</td></tr>
      <tr><td>revoked</td><td>${time(k.revokeTime)} ${k.revokedReason ?? ""}</td></tr>
    </table>
    <h2>Usage (last hour, requests per minute)</h2>
    <${Chart}
      title=""
      series=${[{ label: "requests", stroke: "#1f5fbf" }]}
      data=${[buckets.map((b) => Date.parse(b.startTime) / 1000), buckets.map((b) => Number(b.requests ?? 0))]}
    />
    <p class="muted">Limits: see the tier ${k.tier} in the policy (tollgate check-config).</p>
    <h2>Rotate</h2>
    <form onSubmit=${act(async () => setSecret((await rpc("RotateKey", { keyId: id }, "tollgate.v1.TollgateService")).secret))}>
      <button type="submit">Rotate secret</button>
    </form>
    <${Secret} secret=${secret} />
    <h2>Revoke</h2>
    <form id="revoke" onSubmit=${act((f) => rpc("RevokeKey", { id, reason: f.reason.value.trim() }))}>
      <label>Reason<input name="reason" required /></label>
      <button type="submit">Revoke key</button>
    </form>
    <p class="error">${error}</p>
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
    <table>
      <tr><th>subject</th><th>kind</th><th>level</th><th>until</th><th></th></tr>
      ${(data?.blocks ?? []).map(
        (b) => html`<tr>
          <td>${b.subject}</td><td>${b.subjectKind}</td><td>${b.level}</td><td>${time(b.endTime)}</td>
          <td><button type="button" onClick=${() => lift(b)}>Lift</button></td>
        </tr>`,
      )}
    </table>
    <h2>Recent alerts</h2>
    <table>
      <tr><th>fired</th><th>rule</th><th>severity</th><th>subject</th><th>message</th></tr>
      ${(data?.alerts ?? []).map(
        (a) =>
          html`<tr><td>${time(a.fireTime)}</td><td>${a.rule}</td><td>${a.severity}</td><td>${a.subject}</td><td>${a.message}</td></tr>`,
      )}
    </table>
  </section>`;
}

/** Most lines the tail keeps on screen. */
const TAIL_LINES = 200;

function Tail() {
  const [filter, setFilter] = useState({ key: "", denied: false });
  const [lines, setLines] = useState([]);
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
    return () => es.close();
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
      ${lines.map(
        (l) => html`<tr class=${l.allowed ? "allowed" : "denied"}>
          <td>${new Date(l.at).toLocaleTimeString()}</td><td>${l.rpc}</td>
          <td>${l.allowed ? "allow" : "deny"}</td><td>${l.reason}</td><td>${l.keyId ?? ""}</td>
          <td>${l.endpoint ?? ""}</td><td>${l.clientIp ?? ""}</td><td>${l.latencyMs}</td>
        </tr>`,
      )}
    </table>
  </section>`;
}

const PAGES = [
  ["overview", "Overview"],
  ["keys", "Keys"],
  ["blocks", "Alerts and blocks"],
  ["tail", "Live tail"],
];

function App() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  const [, page = "overview", arg = ""] = hash.split("/");
  if (!sessionStorage.getItem(TOKEN) && page !== "login") {
    // Dev mode (no token configured) still logs in, with an empty token.
    if (!sessionStorage.getItem(WHO)) return html`<${Login} />`;
  }
  if (page === "login") return html`<${Login} />`;
  const who = JSON.parse(sessionStorage.getItem(WHO) ?? "{}");
  const body =
    page === "keys"
      ? html`<${Keys} />`
      : page === "key"
        ? html`<${KeyPage} id=${decodeURIComponent(arg)} />`
        : page === "blocks"
          ? html`<${Blocks} />`
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

render(html`<${App} />`, document.getElementById("app"));
