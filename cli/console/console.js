// console.js - the OMS console page: one EventSource (/api/events, about
// once a second) renders the snapshot; the order search and Retry call the
// JSON API. Everything is written with textContent, never innerHTML, so a
// reason or an order id from the data cannot become markup.
'use strict';

const HISTORY = 60; // samples kept per sparkline (about a minute)
const state = { token: null, history: new Map(), last: null, source: null };

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function money(cents, currency) {
  const neg = cents < 0;
  const abs = Math.abs(cents);
  const units = Math.floor(abs / 100).toLocaleString('en-US');
  const frac = String(abs % 100).padStart(2, '0');
  return `${neg ? '-' : ''}${units}.${frac}${currency ? ' ' + currency : ''}`;
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

// ---- sparklines ------------------------------------------------------------

function remember(key, value) {
  const h = state.history.get(key) || [];
  h.push(value);
  if (h.length > HISTORY) h.shift();
  state.history.set(key, h);
  return h;
}

// A hand-drawn SVG polyline of the values, scaled to their own maximum.
function sparkline(values) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', '0 0 120 24');
  svg.setAttribute('preserveAspectRatio', 'none');
  const max = Math.max(1, ...values);
  const step = 120 / Math.max(1, HISTORY - 1);
  const x0 = 120 - step * (values.length - 1);
  const pts = values.map((v, i) => `${(x0 + i * step).toFixed(1)},${(23 - (v / max) * 22).toFixed(1)}`);
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  line.setAttribute('points', pts.join(' '));
  svg.append(line);
  const title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
  title.textContent = `now ${values[values.length - 1] ?? 0}, max ${max}`;
  svg.append(title);
  return svg;
}

// Messages per second of a counter between two snapshots.
function rate(key, value, timeMs) {
  const prev = state.history.get(key + ':raw');
  state.history.set(key + ':raw', { value, timeMs });
  if (!prev || timeMs <= prev.timeMs) return remember(key, 0);
  return remember(key, Math.max(0, (value - prev.value) * 1000 / (timeMs - prev.timeMs)));
}

// ---- rendering the snapshot ---------------------------------------------

function fillBody(table, rows) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows);
}

function renderServices(snap) {
  fillBody($('services'), (snap.services || []).map((s) => {
    const health = s.healthy ? el('span', { class: 'ok', text: 'healthy' }) : el('span', { class: 'bad', text: 'down' });
    const readyClass = s.state === 'ready' ? 'ok' : s.state === 'down' ? 'bad' : 'warn';
    const dl = s.dead_letters === null || s.dead_letters === undefined ? '-' : String(s.dead_letters);
    return el('tr', { 'data-service': s.name },
      el('td', { text: s.name }), el('td', {}, health),
      el('td', { class: 'state ' + readyClass, text: s.state }),
      el('td', { class: 'num dead-letters', text: dl }), el('td', { class: 'muted', text: s.url }));
  }));
}

function renderStreams(snap) {
  const nats = snap.nats || {};
  $('conn').textContent = nats.connected ? 'NATS connected' : 'NATS unreachable';
  $('conn').className = 'badge ' + (nats.connected ? 'ok' : 'bad');
  fillBody($('streams'), (nats.streams || []).map((s) => {
    const ok = s.state === 'ok';
    const h = ok ? rate('stream:' + s.name, s.messages, snap.time_ms) : remember('stream:' + s.name, 0);
    return el('tr', { 'data-stream': s.name },
      el('td', { text: s.name + (ok ? '' : ` (${s.state})`) }),
      el('td', { class: 'num messages', text: ok ? String(s.messages) : '-' }),
      el('td', { class: 'num bytes', 'data-value': ok ? String(s.bytes) : '', text: ok ? bytes(s.bytes) : '-' }),
      el('td', {}, sparkline(h)));
  }));
  fillBody($('consumers'), (nats.consumers || []).map((c) => {
    const key = `${c.stream}/${c.name}`;
    return el('tr', { 'data-consumer': key },
      el('td', { text: key }),
      el('td', { class: 'num pending', text: String(c.num_pending) }),
      el('td', { class: 'num ack-pending', text: String(c.ack_pending) }),
      el('td', { class: 'num redelivered', text: String(c.redelivered) }),
      el('td', {}, sparkline(rate('consumer:' + key, c.acked, snap.time_ms))));
  }));
}

function bar(label, cls, done, total, failed) {
  const pct = total > 0 ? Math.min(100, (100 * done) / total) : 0;
  const b = el('div', { class: 'bar ' + cls });
  b.append(el('span', { style: `width:${pct.toFixed(1)}%` }));
  if (failed) b.append(el('span', { class: 'fail', style: `left:${(100 * (done - failed) / Math.max(1, total)).toFixed(1)}%;width:${(100 * failed / Math.max(1, total)).toFixed(1)}%` }));
  b.append(el('em', { text: label }));
  return b;
}

function renderImports(snap) {
  const list = snap.imports || [];
  $('imports-empty').hidden = list.length > 0;
  $('imports').replaceChildren(...list.map((i) => {
    const total = i.rows_total >= 0 ? i.rows_total : '?';
    const orders = i.orders >= 0 ? i.orders : i.orders_created;
    const settled = i.paid + i.failed;
    const stateText = i.done ? 'done' : i.completed ? 'settling' : 'receiving rows';
    return el('div', { class: 'import', 'data-import': i.import_id, 'data-done': String(i.done) },
      el('strong', { text: i.import_id }), ' ',
      el('span', { class: 'muted state', text: stateText }),
      bar(`rows ${i.rows_received} / ${total}`, 'rows', i.rows_received, i.rows_total >= 0 ? i.rows_total : i.rows_received),
      bar(`orders created ${i.orders_created}${i.orders >= 0 ? ' / ' + i.orders : ''}`, 'created', i.orders_created, Math.max(orders, 1)),
      bar(`paid ${i.paid}, failed ${i.failed} / ${orders}`, 'settled', settled, Math.max(orders, 1), i.failed),
      el('span', { class: 'counts', 'data-rows': String(i.rows_received), 'data-rows-total': String(i.rows_total),
        'data-created': String(i.orders_created), 'data-paid': String(i.paid), 'data-failed': String(i.failed),
        'data-orders': String(i.orders) }));
  }));
}

async function retry(service, id, button) {
  button.disabled = true;
  const r = await api('POST', `/api/dead-letters/${encodeURIComponent(service)}/${encodeURIComponent(id)}/retry`);
  const resolved = r.ok && r.body.state === 'resolved';
  const why = r.ok ? r.body.reason : r.body.error || 'failed';
  $('dlq-result').textContent = `${service} dead letter ${id}: ${resolved ? 'resolved' : why}`;
  $('dlq-result').className = resolved ? 'ok' : 'error';
  button.disabled = false;
}

function renderDeadLetters(snap) {
  const rows = [];
  for (const [service, answer] of Object.entries(snap.dead_letters || {})) {
    for (const d of (answer && answer.dead_letters) || []) {
      const button = el('button', { type: 'button', text: 'Retry' });
      button.addEventListener('click', () => retry(service, d.id, button));
      rows.push(el('tr', { 'data-dead-letter': `${service}/${d.id}` },
        el('td', { text: service }), el('td', { class: 'num', text: String(d.id) }),
        el('td', { text: d.subject }), el('td', { class: 'reason', text: d.reason }),
        el('td', { class: 'num attempts', text: String(d.attempts) }), el('td', {}, button)));
    }
  }
  $('dlq-empty').hidden = rows.length > 0;
  $('dead-letters').hidden = rows.length === 0;
  fillBody($('dead-letters'), rows);
}

function renderKpi(snap) {
  const k = snap.kpi || {};
  $('kpi-error').textContent = k.error ? `analytics: ${k.error}` : '';
  const items = k.error ? [] : [
    ['date', k.date, k.date], ['orders', 'order_count', String(k.order_count)],
    ['failed', 'failed_count', String(k.failed_count)], ['revenue', 'revenue_cents', money(k.revenue_cents, k.currency)],
    ['refunds', 'refund_cents', `${money(k.refund_cents, k.currency)} (${k.refund_count})`],
    ['net revenue', 'net_revenue_cents', money(k.net_revenue_cents, k.currency)],
    ['average order', 'average_order_value_cents', money(k.average_order_value_cents, k.currency)],
  ];
  $('kpi').replaceChildren(...items.flatMap(([label, key, text]) => [
    el('dt', { text: label }), el('dd', { id: 'kpi-' + key, 'data-value': String(k[key] ?? ''), text })]));
  const lb = snap.leaderboard || {};
  fillBody($('leaderboard'), (lb.leaders || []).map((l) => el('tr', { 'data-customer': l.customer_id },
    el('td', { class: 'num', text: String(l.rank) }),
    el('td', { text: l.name ? `${l.name} (${l.customer_id})` : l.customer_id }),
    el('td', { class: 'num net', 'data-value': String(l.net_spend_cents), text: money(l.net_spend_cents, lb.currency) }),
    el('td', { class: 'num orders', text: String(l.orders) }))));
}

function render(snap) {
  state.last = snap;
  renderServices(snap);
  renderStreams(snap);
  renderImports(snap);
  renderDeadLetters(snap);
  renderKpi(snap);
  $('updated').textContent = 'updated ' + new Date(snap.time_ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

// ---- API ----------------------------------------------------------------

async function api(method, path) {
  const res = await fetch(path, { method, headers: { 'X-Console-Token': state.token || '' } });
  let body = {};
  try { body = await res.json(); } catch (e) { body = { error: `HTTP ${res.status}` }; }
  return { ok: res.ok, status: res.status, body };
}

function listen() {
  if (state.source) state.source.close();
  const source = new EventSource('/api/events?token=' + encodeURIComponent(state.token));
  source.addEventListener('snapshot', (ev) => {
    $('main').hidden = false;
    render(JSON.parse(ev.data));
  });
  // The server ends each response after one event; EventSource reconnects
  // after the retry it announced. An error is only worth showing while the
  // console itself is gone.
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      $('conn').textContent = 'console unreachable';
      $('conn').className = 'badge bad';
    }
  };
  state.source = source;
}

// ---- order search -----------------------------------------------------

function renderOrder(data) {
  const answer = data.ingest || {};
  const o = answer.order;
  $('order').hidden = false;
  $('order-title').textContent = data.order_id;
  if (o) {
    $('order-summary').textContent = `${o.status}${o.reason ? ': ' + o.reason : ''} · customer ${o.customer_id} · total ${money(o.total_cents, o.currency)}${o.import_id ? ' · import ' + o.import_id : ''}`;
  } else {
    $('order-summary').textContent = `ingest: ${answer.error || 'no such order'}`;
  }
  fillBody($('order-lines'), ((o && o.lines) || []).map((l) => el('tr', {},
    el('td', { text: l.sku }), el('td', { text: l.product_name || '' }),
    el('td', { class: 'num', text: String(l.qty) }), el('td', { class: 'num', text: money(l.unit_price_cents) }))));
  $('order-history').replaceChildren(...((o && o.history) || []).map((h) =>
    el('li', { 'data-status': h.status, text: `${h.at} ${h.status}${h.reason ? ': ' + h.reason : ''}` })));
  const trace = data.trace || {};
  $('trace-note').textContent = trace.note || '';
  $('trace').replaceChildren(...(trace.events || []).map((e) => el('li', { 'data-subject': e.subject },
    el('span', { class: 'since', text: e.since_created_ms === null ? '' : `+${e.since_created_ms} ms` }),
    el('span', { class: 'subject', text: e.subject }),
    el('span', { class: 'producer', text: e.producer }),
    el('span', { class: 'summary', text: e.summary }))));
}

async function openOrder(id) {
  $('order-error').textContent = '';
  const r = await api('GET', '/api/orders/' + encodeURIComponent(id));
  if (!r.ok) {
    $('order-error').textContent = r.body.error || `HTTP ${r.status}`;
    return;
  }
  renderOrder(r.body);
}

// ---- start ---------------------------------------------------------------

async function start() {
  $('search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    openOrder($('order-id').value.trim());
  });
  $('login').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    state.token = $('login-token').value;
    const r = await api('GET', '/api/snapshot');
    if (!r.ok) {
      $('login-error').textContent = r.body.error || `HTTP ${r.status}`;
      return;
    }
    sessionStorage.setItem('oms-console-token', state.token);
    $('login').hidden = true;
    $('main').hidden = false;
    render(r.body);
    listen();
  });
  const session = await (await fetch('/api/session')).json();
  if (session.login_required) {
    state.token = sessionStorage.getItem('oms-console-token');
    if (!state.token) {
      $('login').hidden = false;
      return;
    }
  } else {
    state.token = session.token;
  }
  listen();
}

start();
