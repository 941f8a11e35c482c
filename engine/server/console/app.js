// wagate's console: one page, no dependencies, every figure from wagate's own API (the admin
// API, reached with the session cookie), live figures by server-sent events.
"use strict";

const main = document.getElementById("main");
let session = { role: "", csrf: "" };
let live = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    // Through the style object: the console's policy allows no inline style attribute.
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options) {
  const init = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
  if (init.method && init.method !== "GET") {
    init.headers["x-csrf-token"] = session.csrf;
    init.headers["content-type"] = "application/json";
  }
  const answer = await fetch(path, init);
  if (answer.status === 401) { window.location = "/console"; throw new Error("signed out"); }
  const text = await answer.text();
  let body = null;
  try { body = JSON.parse(text); } catch (_) { body = { text }; }
  return { status: answer.status, body };
}

function when(secs) {
  return secs ? new Date(secs * 1000).toISOString().replace(".000Z", "Z") : "—";
}

function errorOf(answer) {
  const e = answer.body && answer.body.error;
  return e ? `${e.message} ${e.error_data ? e.error_data.details : ""}` : `HTTP ${answer.status}`;
}

// ---- Numbers ----------------------------------------------------------------------------

function usageBar(n) {
  const used = n.unique_recipients_24h, limit = n.limit_24h;
  const share = limit ? Math.min(1, used / limit) : 0;
  const bar = el("div", { class: "bar" + (limit && used >= limit ? " full" : ""), id: `usage-bar-${n.id}`,
    role: "meter", "aria-valuemin": 0, "aria-valuemax": limit || 0, "aria-valuenow": used,
    "aria-label": `unique recipients in 24 h on ${n.id}` });
  bar.append(el("span", { style: { width: `${(share * 100).toFixed(1)}%` } }));
  return bar;
}

function numberRow(n) {
  const upgrade = n.upgrade_threshold_7d
    ? `${n.unique_recipients_7d_estimate} / ${n.upgrade_threshold_7d}` +
      (n.projected_upgrade_at ? ` → ${n.projected_tier} at ${when(n.projected_upgrade_at)}` : "")
    : "—";
  return el("tr", { id: `number-${n.id}` },
    el("td", {}, el("a", { href: `#/numbers/${n.id}` }, n.id)),
    el("td", {}, el("span", { class: `badge ${n.quality}` }, n.quality)),
    el("td", {}, n.tier, el("div", { class: "figure" },
      n.limit_scope === "portfolio" ? `portfolio ${n.portfolio_id}` : "this number")),
    el("td", {}, usageBar(n), el("span", { class: "figure", id: `usage-${n.id}` }, usageText(n))),
    el("td", { class: "figure" }, upgrade),
    el("td", { class: "figure" }, `${n.throughput_mps}/s`),
    el("td", { class: "figure" }, n.restricted_until ? `restricted until ${when(n.restricted_until)}` : "—"));
}

function usageText(n) {
  return `${n.unique_recipients_24h} / ${n.limit_24h === null ? "unlimited" : n.limit_24h}`;
}

// The numbers page's rows anew; elsewhere (a number's page) its bar and figure.
function updateNumbers(numbers) {
  for (const n of numbers) {
    const row = document.getElementById(`number-${n.id}`);
    if (row) { row.replaceWith(numberRow(n)); continue; }
    const bar = document.getElementById(`usage-bar-${n.id}`);
    if (bar) bar.replaceWith(usageBar(n));
    const figure = document.getElementById(`usage-${n.id}`);
    if (figure) figure.textContent = usageText(n);
  }
}

async function numbersPage() {
  const answer = await api("/wagate/admin/numbers");
  const rows = (answer.body.data || []).map(numberRow);
  main.replaceChildren(el("h1", {}, "Numbers"),
    el("table", { id: "numbers" },
      el("thead", {}, el("tr", {}, ["Number", "Quality", "Tier (where the limit lives)", "Unique recipients, 24 h",
        "7 days / upgrade", "Throughput", "Restriction"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows)));
  watch();
}

// A bar chart of `values` (one per hour from now) as SVG, labelled for screen readers.
function hourChart(id, values, label, first = 0) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 720, height = 160, gap = 4, bar = width / values.length - gap;
  const top = Math.max(1, ...values);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("id", id);
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 20}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  values.forEach((value, hour) => {
    const h = Math.round((value / top) * height);
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", hour * (bar + gap));
    rect.setAttribute("y", height - h);
    rect.setAttribute("width", bar);
    rect.setAttribute("height", h);
    rect.setAttribute("fill", "#1a5fb4");
    rect.setAttribute("data-value", value);
    const title = document.createElementNS(ns, "title");
    title.textContent = `${first + hour} h: ${value}`;
    rect.append(title);
    svg.append(rect);
    if (hour % 6 === 0) {
      const text = document.createElementNS(ns, "text");
      text.setAttribute("x", hour * (bar + gap));
      text.setAttribute("y", height + 16);
      text.setAttribute("font-size", "12");
      text.setAttribute("fill", "#5b6675");
      const offset = first + hour;
      text.textContent = `${offset < 0 ? "" : "+"}${offset} h`;
      svg.append(text);
    }
  });
  return svg;
}

async function numberPage(id) {
  const capacity = await api(`/wagate/admin/numbers/${encodeURIComponent(id)}/capacity`);
  const waiting = await api(`/wagate/v1/scheduled?phone_number_id=${encodeURIComponent(id)}&limit=100`);
  const answer = await api(`/wagate/admin/numbers/${encodeURIComponent(id)}/usage`);
  if (answer.status !== 200) { main.replaceChildren(el("p", { class: "error" }, errorOf(answer))); return; }
  const n = answer.body;
  const facts = [["Quality", n.quality], ["Tier", n.tier], ["Limit, 24 h", n.limit_24h ?? "unlimited"],
    ["Unique recipients, 24 h", n.unique_recipients_24h], ["Capacity frees next", when(n.next_capacity_at)],
    ["Unique recipients, 7 days (estimate)", n.unique_recipients_7d_estimate],
    ["Upgrade threshold, 7 days", n.upgrade_threshold_7d ?? "—"], ["Next tier", n.next_tier ?? "—"],
    ["Projected upgrade", n.projected_upgrade_at ? `${n.projected_tier} at ${when(n.projected_upgrade_at)}` : "—"],
    ["Restricted until", when(n.restricted_until)], ["Name status", n.name_status]];
  main.replaceChildren(el("h1", {}, `Number ${n.id}`),
    el("table", { id: "number" }, el("tbody", {}, el("tr", { id: `number-usage-${n.id}` },
      el("th", { scope: "row" }, "Usage"),
      el("td", {}, usageBar(n), el("span", { class: "figure", id: `usage-${n.id}` }, usageText(n)))),
      facts.map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, v))))),
    el("h2", {}, "Seven days toward the next tier"),
    n.upgrade_threshold_7d
      ? el("div", {}, progress(n.unique_recipients_7d_estimate, n.upgrade_threshold_7d, `upgrade-${n.id}`),
        el("span", { class: "figure" }, `${n.unique_recipients_7d_estimate} of ${n.upgrade_threshold_7d}` +
          (n.projected_upgrade_at ? `; ${n.projected_tier} expected ${when(n.projected_upgrade_at)}` : "")))
      : el("p", {}, "No usage upgrade from this tier."),
    el("h2", {}, "Counted over the last 24 h"),
    el("p", { class: "figure" }, "Unique recipients by the hour they were last counted (each stays counted 24 h)."),
    hourChart(`counted-${n.id}`, capacity.body.frees_by_hour || [], `recipients counted each hour of the last day on ${n.id}`, -24),
    el("h2", {}, "Capacity freeing over the next 24 h"),
    el("p", { class: "figure" }, "Recipients counted in each hour of the last day leave the rolling 24 h an hour apart: "
      + "the bars show how many leave in each coming hour."),
    hourChart(`capacity-${n.id}`, capacity.body.frees_by_hour || [], `recipients leaving the window each hour on ${n.id}`),
    el("h2", {}, "Its queue"), queuedTable("number-queued", [waiting.body.data || []]));
  watch();
}

// Live figures: one stream for the page, closed when another page is shown.
// The queued sends released so far, sampled each second while a page watches: (ms, count).
let releases = [];

function watch() {
  if (live || !window.EventSource) return;
  live = new EventSource("/console/live");
  live.addEventListener("usage", (event) => {
    const figures = JSON.parse(event.data);
    updateNumbers(figures.numbers);
    releases.push([Date.now(), figures.released]);
    releases = releases.filter(([at]) => Date.now() - at <= 60000);
    const rate = document.getElementById("released-per-minute");
    if (rate && releases.length > 1) {
      const [[first, from], [last, to]] = [releases[0], releases[releases.length - 1]];
      const secs = Math.max(1, (last - first) / 1000);
      rate.textContent = secs >= 59 ? `${to - from} in the last minute` : `${to - from} in the last ${Math.round(secs)} s`;
    }
  });
}

function unwatch() {
  if (live) { live.close(); live = null; }
  releases = [];
}

// ---- Templates --------------------------------------------------------------------------

async function templatesPage() {
  const answer = await api("/wagate/admin/templates");
  const deadline = (t) => t.paused_until ? `paused until ${when(t.paused_until)}`
    : t.disabled_unless_recovered_at ? `disabled at ${when(t.disabled_unless_recovered_at)} unless its quality recovers`
    : "—";
  const history = (t) => el("details", {}, el("summary", {}, `${t.history.length} changes`),
    el("ol", { class: "figure" }, t.history.map((c) => el("li", {}, `${when(c.at)}: ${c.status}, quality ${c.quality}`))));
  const rows = (answer.body.data || []).map((t) => el("tr", { id: `template-${t.account}-${t.name}-${t.language}` },
    el("td", {}, t.account), el("td", {}, t.name), el("td", {}, t.language), el("td", {}, t.category),
    el("td", {}, t.status), el("td", {}, t.quality), el("td", { class: "figure" }, t.pauses),
    el("td", { class: "figure" }, deadline(t)), el("td", {}, history(t))));
  const findings = el("ul", { id: "lint", "aria-live": "polite" });
  const result = el("p", { id: "template-result", role: "status" });
  const field = (name, label, input) => el("div", {}, el("label", { for: `t-${name}` }, label), input);
  const form = el("form", { id: "template-form", class: "card" },
    el("h2", {}, "New template"),
    el("div", { class: "inline" },
      field("account", "Account", el("input", { id: "t-account", name: "account", inputmode: "numeric", value: "1", required: "" })),
      field("name", "Name", el("input", { id: "t-name", name: "name", required: "" })),
      field("language", "Language", el("input", { id: "t-language", name: "language", value: "en_US", required: "" })),
      field("category", "Category", el("select", { id: "t-category", name: "category" },
        ["marketing", "utility", "authentication"].map((c) => el("option", { value: c }, c))))),
    field("body", "Body", el("textarea", { id: "t-body", name: "body", required: "" })),
    el("h2", {}, "Lint"), findings,
    el("button", { type: "submit", id: "template-submit" }, "Create"), result);
  const definition = () => ({ account: Number(form.account.value), name: form.name.value,
    language: form.language.value, category: form.category.value, body: form.body.value });
  let pending = null;
  const lint = async () => {
    const asked = definition();
    if (!asked.name || !asked.body) { findings.replaceChildren(); return; }
    const answer = await api("/wagate/admin/templates/lint", { method: "POST", body: JSON.stringify(asked) });
    if (answer.status !== 200) { findings.replaceChildren(el("li", { class: "error" }, errorOf(answer))); return; }
    const list = answer.body.lint || [];
    findings.replaceChildren(...(list.length ? list.map((f) => el("li", { class: "finding", "data-rule": f.rule },
      `${f.rule} (#${f.code}): ${f.message}`)) : [el("li", { class: "ok" }, "No findings")]));
  };
  form.addEventListener("input", () => { clearTimeout(pending); pending = setTimeout(lint, 150); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await api("/wagate/admin/templates", { method: "POST", body: JSON.stringify(definition()) });
    result.className = answer.status === 200 ? "ok" : "error";
    result.textContent = answer.status === 200 ? `Created ${answer.body.name} (${answer.body.language}): submitted for review`
      : errorOf(answer);
  });
  main.replaceChildren(el("h1", {}, "Templates"), form,
    el("table", { id: "templates" }, el("thead", {}, el("tr", {}, ["Account", "Name", "Language", "Category",
      "Status", "Quality", "Pauses", "Deadline", "History"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows)));
}

// ---- Messages and people ----------------------------------------------------------------

function lookup(id, fields, show) {
  const form = el("form", { class: "inline", id: `${id}-form` },
    fields.map(([name, label]) => el("div", {}, el("label", { for: `${id}-${name}` }, label),
      el("input", { id: `${id}-${name}`, name, required: "" }))),
    el("button", { type: "submit", id: `${id}-submit` }, "Look up"));
  const out = el("div", { id: `${id}-result` });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    out.replaceChildren(...await show(Object.fromEntries(fields.map(([name]) => [name, form[name].value.trim()]))));
  });
  return [form, out];
}

async function messageLife({ id }) {
  const answer = await api(`/wagate/v1/messages/${encodeURIComponent(id)}`);
  if (answer.status !== 200) return [el("p", { class: "error" }, errorOf(answer))];
  const m = answer.body;
  const steps = [
    `decided ${when(m.accepted_at)}: ${m.category}, ${(m.price_micros / 1e6).toFixed(4)} USD estimated`,
    `throughput slot ${when(m.send_at)}`,
    `dispatch: ${m.status}` + (m.attempts ? ` after ${m.attempts} attempt(s)` : ""),
    m.upstream_id ? `Meta's id ${m.upstream_id}` : null,
    m.error ? `Meta said: ${m.error}` : null,
    `delivery: ${m.delivery}` + (m.error_code ? ` (#${m.error_code})` : ""),
  ].filter(Boolean);
  const consent = m.consent_relied_on
    ? el("table", { id: "message-consent" }, el("thead", {}, el("tr", {}, ["Topic", "Event", "When", "Through",
        "Source"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, Object.entries(m.consent_relied_on).map(([topic, e]) => el("tr", {},
        el("td", {}, topic), el("td", {}, e.change), el("td", {}, when(e.at)), el("td", {}, e.phone_number_id),
        el("td", {}, e.source)))))
    : el("p", {}, "No consent read (a reply in the window).");
  return [el("h2", {}, `${m.id} to ${m.to} from ${m.phone_number_id}`),
    el("ol", { class: "life", id: "message-life" }, steps.map((s) => el("li", {}, s))),
    el("h2", {}, "Consent it relied on"), consent];
}

async function messagesPage() {
  main.replaceChildren(el("h1", {}, "Messages"), ...lookup("message", [["id", "Message id (wagate.…)"]], messageLife));
}

async function personLife({ number, person }) {
  const base = `/wagate/admin/contacts/${encodeURIComponent(number)}/${encodeURIComponent(person)}`;
  const [view, history] = await Promise.all([api(base), api(`${base}/history`)]);
  if (view.status !== 200) return [el("p", { class: "error" }, errorOf(view))];
  const p = view.body;
  const events = (history.body.events || []).map((e) => el("tr", {}, el("td", {}, when(e.at)),
    el("td", {}, e.change), el("td", {}, (e.topics || []).join(", ")), el("td", {}, e.source)));
  return [el("pre", { id: "person-view" }, JSON.stringify(p, null, 2)),
    el("h2", {}, "Consent history"),
    el("table", { id: "person-history" }, el("tbody", {}, events))];
}

async function peoplePage() {
  main.replaceChildren(el("h1", {}, "People"),
    ...lookup("person", [["number", "Phone number id"], ["person", "Person (E.164)"]], personLife));
}

// ---- Queues and campaigns ---------------------------------------------------------------

function progress(done, of, id) {
  const bar = el("div", { class: "bar", id, role: "meter", "aria-valuemin": 0, "aria-valuemax": of, "aria-valuenow": done });
  bar.append(el("span", { style: { width: `${of ? Math.min(100, (100 * done) / of).toFixed(1) : 0}%` } }));
  return bar;
}

// Queued sends (lists of them, one per number) as a table: what waits and why.
function queuedTable(id, lists) {
  const rows = lists.flat().map((q) => el("tr", {},
    el("td", {}, q.id), el("td", {}, q.phone_number_id), el("td", {}, q.to), el("td", {}, q.reason),
    el("td", {}, when(q.queued_until)), el("td", {}, q.expire_at ? when(q.expire_at) : "—")));
  return el("table", { id }, el("thead", {}, el("tr", {}, ["Message", "Number", "To", "Waits for",
    "Until", "Expires"].map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows));
}

async function queuesPage() {
  const [numbers, campaigns] = await Promise.all([api("/wagate/admin/numbers"), api("/wagate/v1/campaigns")]);
  const queued = await Promise.all((numbers.body.data || []).map(async (n) => {
    const answer = await api(`/wagate/v1/scheduled?phone_number_id=${encodeURIComponent(n.id)}&limit=100`);
    return answer.body.data || [];
  }));
  const rows = (campaigns.body.data || []).map((c) => {
    const planned = c.counts.planned || 0;
    const days = (c.plan.days || []).map((d) => d.sends);
    return el("tr", { id: `campaign-${c.id}` },
      el("td", {}, c.name || c.id), el("td", {}, c.phone_number_id), el("td", {}, c.template.name),
      el("td", {}, c.state + (c.paused_by ? ` (${c.paused_by})` : "")),
      el("td", {}, progress(c.counts.accepted, planned, `campaign-progress-${c.id}`),
        el("span", { class: "figure" }, `${c.counts.accepted} accepted, ${c.counts.delivered} delivered of ${planned}`)),
      el("td", { class: "figure" }, `plan ${days.join(" / ")}; done ${(c.counts.days || []).join(" / ")}`));
  });
  watch();
  main.replaceChildren(el("h1", {}, "Queues and campaigns"),
    el("h2", {}, "Waiting"),
    el("p", {}, "Released: ", el("span", { id: "released-per-minute", class: "figure" }, "measuring…")),
    queuedTable("queued", queued),
    el("h2", {}, "Campaigns"),
    el("table", { id: "campaigns" }, el("thead", {}, el("tr", {}, ["Campaign", "Number", "Template", "State",
      "Progress", "Per day (plan / done)"].map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows)));
}

// ---- Money ------------------------------------------------------------------------------

async function moneyPage() {
  const answer = await api("/wagate/admin/ledger");
  // A row's day is days since 1970-01-01 (UTC).
  const day = (d) => new Date(d * 86400000).toISOString().slice(0, 10);
  const usd = (micros) => (micros / 1e6).toFixed(4);
  const rows = (answer.body.rows || []).map((r) => el("tr", {},
    el("td", {}, day(r.day)), el("td", {}, r.phone_number_id), el("td", {}, r.category),
    el("td", {}, r.market || "—"), el("td", { class: "figure" }, r.messages),
    el("td", { class: "figure" }, usd(r.price_micros)),
    el("td", { class: "figure" }, `${usd(r.reconciled_micros)} (${r.reconciled_messages})`)));
  main.replaceChildren(el("h1", {}, "Money"),
    el("table", { id: "ledger" }, el("thead", {}, el("tr", {}, ["Day", "Number", "Category", "Market",
      "Messages", "Estimated USD", "Reconciled USD"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows)));
}

// ---- Shell ------------------------------------------------------------------------------

const pages = { numbers: numbersPage, templates: templatesPage, messages: messagesPage, people: peoplePage,
  queues: queuesPage, money: moneyPage };

async function route() {
  unwatch();
  const [, page = "numbers", id] = (window.location.hash || "#/numbers").split("/");
  for (const link of document.querySelectorAll("header nav a")) {
    link.toggleAttribute("aria-current", link.id === `nav-${page}`);
    if (link.id === `nav-${page}`) link.setAttribute("aria-current", "page");
  }
  if (page === "numbers" && id) await numberPage(decodeURIComponent(id));
  else await (pages[page] || numbersPage)();
  main.focus();
}

async function start() {
  const answer = await api("/console/session");
  session = answer.body;
  document.getElementById("who").textContent = `signed in: ${session.role}`;
  document.getElementById("sign-out-csrf").value = session.csrf;
  window.addEventListener("hashchange", route);
  await route();
}

start();
