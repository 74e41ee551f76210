// jobhost dashboard. Plain JavaScript, no dependencies. Everything shown comes
// from the JSON API under /api/v1/. Data from the daemon (job names, messages,
// plugin output) is untrusted: it only ever reaches the page as text nodes
// (textContent) or attribute values, never as HTML.
'use strict';

const API = '/api/v1/';
const TOKEN_KEY = 'jobhost.token';
const PAGE_SIZE = 50;
const RUNS_PAGE = 25;
const POLL_MS = 1000;

// ---- small DOM helpers -------------------------------------------------

// el('a', {href: '#/'}, 'text', child): attributes by setAttribute, children
// as nodes or text. Never parses HTML.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  append(node, children);
  return node;
}
function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
const SVG_NS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
const $ = (id) => document.getElementById(id);

// ---- formatting ----------------------------------------------------------

function fmtDuration(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return '–';
  if (ms < 1000) return Math.round(ms) + ' ms';
  const s = ms / 1000;
  if (s < 60) return (s < 10 ? s.toFixed(2) : s.toFixed(1)) + ' s';
  const m = Math.floor(s / 60), rs = Math.round(s % 60);
  if (m < 60) return m + 'm ' + String(rs).padStart(2, '0') + 's';
  return Math.floor(m / 60) + 'h ' + String(m % 60).padStart(2, '0') + 'm';
}
function fmtPercent(x) {
  if (x === null || x === undefined || !isFinite(x)) return '–';
  const p = x * 100;
  return (p === 0 || p === 100 ? p.toFixed(0) : p.toFixed(1)) + ' %';
}
function fmtBytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}
function parseTime(t) {
  if (t === null || t === undefined) return null;
  const ms = typeof t === 'number' ? t : Date.parse(t);
  return isFinite(ms) ? ms : null;
}
function fmtRelative(ms) {
  const d = Math.round((ms - Date.now()) / 1000), a = Math.abs(d);
  let text;
  if (a < 1) return 'now';
  if (a < 60) text = a + ' s';
  else if (a < 3600) text = Math.round(a / 60) + ' min';
  else if (a < 86400 * 2) text = Math.round(a / 3600) + ' h';
  else text = Math.round(a / 86400) + ' d';
  return d > 0 ? 'in ' + text : text + ' ago';
}
function fmtClock(ms) {
  const d = new Date(ms);
  const sameDay = new Date().toDateString() === d.toDateString();
  const time = d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false});
  return sameDay ? time : d.toLocaleDateString([], {year: 'numeric', month: 'short', day: 'numeric'}) + ' ' + time;
}
// A <time> with the local clock, the relative time, and the exact instant as tooltip.
function timeCell(t, relative) {
  const ms = parseTime(t);
  if (ms === null) return el('span', {class: 'muted'}, '–');
  const text = relative ? fmtRelative(ms) + ' (' + fmtClock(ms) + ')' : fmtClock(ms);
  return el('time', {datetime: new Date(ms).toISOString(), title: new Date(ms).toISOString(),
    'data-relative': relative ? 'true' : null}, text);
}
// Relative times ("3 s ago") move on between redraws.
function updateRelativeTimes() {
  for (const t of document.querySelectorAll('time[data-relative]')) {
    const ms = Date.parse(t.getAttribute('datetime'));
    if (isFinite(ms)) t.textContent = fmtRelative(ms) + ' (' + fmtClock(ms) + ')';
  }
}
function outcomeBadge(outcome) {
  const o = outcome || 'running';
  return el('span', {class: 'badge ' + o.replace(/[^a-z_]/g, '')}, o.replace(/_/g, ' '));
}
const FAILED = new Set(['failed', 'crashed', 'timed_out', 'stalled', 'limit_exceeded', 'interrupted']);
function runDuration(run) {
  if (run.duration_ms !== null && run.duration_ms !== undefined) return run.duration_ms;
  const a = parseTime(run.started_at), b = parseTime(run.finished_at);
  return a !== null && b !== null ? b - a : null;
}
function lateness(run) {
  const a = parseTime(run.started_at), s = parseTime(run.scheduled_for);
  return a !== null && s !== null ? a - s : null;
}
const jobHref = (name) => '#/jobs/' + encodeURIComponent(name);
const runHref = (id) => '#/runs/' + encodeURIComponent(id);
const shortId = (id) => (id && id.length > 12 ? id.slice(0, 6) + '…' + id.slice(-4) : id || '');

// ---- API ------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}
async function api(path, options) {
  let response;
  try {
    response = await fetch(API + path, Object.assign({cache: 'no-store'}, options || {}));
  } catch (e) {
    throw new ApiError(0, 'the daemon is not reachable (' + e.message + ')');
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (!response.ok) {
    const message = body && typeof body.error === 'string' ? body.error : response.statusText;
    throw new ApiError(response.status, message);
  }
  return body;
}
function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
}

// ---- token and actions ---------------------------------------------------

const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (t) => sessionStorage.setItem(TOKEN_KEY, t),
  forget: () => sessionStorage.removeItem(TOKEN_KEY),
};
// Opens the token dialog; resolves to the token entered, or null when cancelled.
function askToken() {
  const dialog = $('token-dialog');
  const input = $('token-input');
  input.value = token.get() || '';
  return new Promise((resolve) => {
    const done = (value) => {
      cleanup();
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      const t = input.value.trim();
      if (!t) return;
      token.set(t);
      updateTokenButton();
      done(t);
    };
    const onCancel = () => done(null);
    const onForget = () => { token.forget(); updateTokenButton(); done(null); };
    const onClose = () => done(null);
    function cleanup() {
      $('token-form').removeEventListener('submit', onSubmit);
      $('token-cancel').removeEventListener('click', onCancel);
      $('token-forget').removeEventListener('click', onForget);
      dialog.removeEventListener('close', onClose);
    }
    $('token-form').addEventListener('submit', onSubmit);
    $('token-cancel').addEventListener('click', onCancel);
    $('token-forget').addEventListener('click', onForget);
    dialog.addEventListener('close', onClose);
    dialog.showModal();
    input.focus();
  });
}
function updateTokenButton() {
  $('token-button').textContent = token.get() ? 'API token ✓' : 'Set API token';
}
// POSTs an action with the bearer token, asking for it first when there is none.
async function action(path, what) {
  let t = token.get();
  if (!t) t = await askToken();
  if (!t) return null;
  try {
    const result = await api(path, {method: 'POST', headers: {'Authorization': 'Bearer ' + t}});
    notice(what + ': done.', 'info');
    return result;
  } catch (e) {
    if (e.status === 401) {
      token.forget();
      updateTokenButton();
      notice(what + ' refused (401): the token was missing or wrong. Enter the token from [http] token_file and try again.');
    } else if (e.status === 403) {
      notice(what + ' refused (403): ' + e.message);
    } else {
      notice(what + ' failed' + (e.status ? ' (' + e.status + ')' : '') + ': ' + e.message);
    }
    return null;
  }
}
let noticeTimer = null;
function notice(text, kind) {
  const n = $('notice');
  n.textContent = text;
  n.className = 'notice' + (kind ? ' ' + kind : '');
  n.hidden = false;
  clearTimeout(noticeTimer);
  if (kind === 'info') noticeTimer = setTimeout(() => { n.hidden = true; }, 4000);
}
function clearNotice() { $('notice').hidden = true; }

// ---- charts ----------------------------------------------------------------

// A sparkline of a job's recent finished runs (oldest left): bar height is
// the duration relative to the longest; failures are red full-height marks.
function sparkline(recent) {
  const runs = (recent || []).slice(-20);
  const w = 120, h = 22, gap = 1, bw = Math.max(2, (w - gap * 19) / 20);
  const max = Math.max(1, ...runs.map((r) => r.duration_ms || 0));
  const failed = runs.filter((r) => FAILED.has(r.outcome)).length;
  const label = runs.length ? runs.length + ' recent runs, ' + failed + ' failed' : 'no runs yet';
  const s = svg('svg', {class: 'spark', width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': label});
  s.append(svg('title', {}, label));
  runs.forEach((r, i) => {
    const x = i * (bw + gap);
    const bad = FAILED.has(r.outcome);
    const bh = bad ? h : Math.max(2, Math.round((h - 2) * (r.duration_ms || 0) / max));
    const color = bad ? '#c62f2f' : r.outcome === 'succeeded' ? '#5a9e6f' : '#b7bec7';
    s.append(svg('rect', {x: x.toFixed(1), y: h - bh, width: bw.toFixed(1), height: bh, fill: color},
      svg('title', {}, (r.outcome || 'running') + ', ' + fmtDuration(r.duration_ms))));
  });
  return s;
}

// A bar chart of `points` ({value, bad, label}) oldest left, with the largest
// value labelled on the axis. Negative values (a run that started before its
// slot) are drawn as zero.
function barChart(points, title, format) {
  const w = 600, h = 140, top = 14, bottom = 18, left = 4;
  const max = Math.max(1, ...points.map((p) => p.value || 0));
  const n = Math.max(points.length, 1), slot = (w - left) / n, bw = Math.max(1, slot - 2);
  const s = svg('svg', {class: 'chart', viewBox: `0 0 ${w} ${h}`, role: 'img',
    'aria-label': title + ': ' + points.length + ' runs, largest ' + format(max)});
  s.append(svg('title', {}, title));
  s.append(svg('line', {class: 'axis', x1: 0, y1: h - bottom, x2: w, y2: h - bottom}));
  s.append(svg('line', {class: 'axis', x1: 0, y1: top, x2: w, y2: top, 'stroke-dasharray': '3 3'}));
  s.append(svg('text', {x: w - 2, y: top - 3, 'text-anchor': 'end'}, format(max)));
  s.append(svg('text', {x: 2, y: h - 4}, points.length ? 'older' : 'no runs'));
  s.append(svg('text', {x: w - 2, y: h - 4, 'text-anchor': 'end'}, 'newer'));
  points.forEach((p, i) => {
    const v = Math.max(0, p.value || 0);
    const bh = Math.max(1, (h - top - bottom) * v / max);
    s.append(svg('rect', {x: (left + i * slot).toFixed(1), y: (h - bottom - bh).toFixed(1), width: bw.toFixed(1),
      height: bh.toFixed(1), fill: p.bad ? '#c62f2f' : '#4f86c6'}, svg('title', {}, p.label + ': ' + format(p.value))));
  });
  return s;
}

// The forecast (GET /api/v1/forecast) as bars, one per interval, left = now:
// bar height = the most runs at once in it, orange where fires wait for a
// run slot; max_concurrency dashed. Hover a bar for its figures.
function forecastChart(data) {
  const buckets = data.buckets || [];
  const w = 600, h = 140, top = 14, bottom = 18, left = 4;
  const limit = data.max_concurrency || 1;
  const max = Math.max(limit, ...buckets.map((b) => b.peak_runs || 0));
  const n = Math.max(buckets.length, 1), slot = (w - left) / n, bw = Math.max(1, slot - 1);
  const y = (v) => h - bottom - (h - top - bottom) * v / max;
  const hhmm = (ms) => new Date(ms).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', hour12: false});
  const peak = (data.summary || {}).peak_runs || 0;
  const s = svg('svg', {class: 'chart', id: 'forecast-chart', viewBox: `0 0 ${w} ${h}`, role: 'img',
    'aria-label': 'Expected runs at once over the next ' + buckets.length + ' intervals, at most ' + peak});
  s.append(svg('title', {}, 'Expected runs at once'));
  s.append(svg('line', {class: 'axis', x1: 0, y1: h - bottom, x2: w, y2: h - bottom}));
  s.append(svg('line', {class: 'limit', x1: 0, y1: y(limit), x2: w, y2: y(limit), 'stroke-dasharray': '4 3'}));
  s.append(svg('text', {x: w - 2, y: y(limit) - 3, 'text-anchor': 'end'}, 'max_concurrency ' + limit));
  const every = Math.max(1, Math.ceil(n / 4));
  buckets.forEach((b, i) => {
    const start = parseTime(b.start);
    const end = start + (data.bucket_minutes || 15) * 60000;
    const v = b.peak_runs || 0;
    const parts = [b.fires + ' fires', 'up to ' + v + ' runs at once'];
    if (b.waited) parts.push(b.waited + ' wait for a run slot');
    if (b.skipped) parts.push(b.skipped + ' skipped');
    s.append(svg('rect', {class: 'bar', x: (left + i * slot).toFixed(1), y: y(v).toFixed(1), width: bw.toFixed(1),
      height: (h - bottom - y(v)).toFixed(1), fill: b.waited ? '#b8740b' : '#4f86c6', 'data-start': b.start},
      svg('title', {}, hhmm(start) + '–' + hhmm(end) + ': ' + parts.join(', '))));
    if (i % every === 0) s.append(svg('text', {x: left + i * slot + 1, y: h - 4}, i === 0 ? 'now' : hhmm(start)));
  });
  return s;
}

// The forecast's figures in words, under the chart.
function forecastSummary(data) {
  const s = data.summary || {};
  const skipped = s.skipped || {};
  const parts = [s.fires + ' fires'];
  parts.push(s.peak_runs ? 'up to ' + s.peak_runs + ' runs at once (first at ' + fmtClock(parseTime(s.peak_at)) + ')'
    : 'no run');
  if (s.waited) parts.push(s.waited + ' wait for a run slot (' + fmtDuration(s.wait_ms) + ' in all)');
  if (skipped.forbid) parts.push(skipped.forbid + ' skipped by concurrency = forbid');
  if (skipped.paused) parts.push(skipped.paused + ' of paused jobs');
  const fresh = data.jobs_without_history;
  if (fresh) parts.push(fresh + (fresh === 1 ? ' job' : ' jobs') + ' without history (1 s a run assumed)');
  if (data.truncated) parts.push('only up to ' + fmtClock(parseTime(data.covered_to)) + ': too many fires to simulate');
  return parts.join(' · ');
}

// The "Next 24 hours" card: fetched when the page opens, then every 5 minutes
// (the forecast moves slowly, and costs the daemon a simulation).
const FORECAST_MS = 5 * 60 * 1000;
function forecastPanel() {
  const body = el('div', {id: 'forecast'}, el('p', {class: 'muted'}, 'Loading…'));
  const summary = el('p', {class: 'muted', id: 'forecast-summary'});
  let fetched = 0;
  async function refresh() {
    if (Date.now() - fetched < FORECAST_MS) return;
    fetched = Date.now();
    try {
      const data = await api('forecast?hours=24&bucket_minutes=15');
      body.replaceChildren(forecastChart(data));
      summary.textContent = forecastSummary(data);
    } catch (e) {
      body.replaceChildren(el('p', {class: 'muted'}, 'Forecast not available: ' + e.message));
      summary.textContent = '';
    }
  }
  return {
    node: el('section', {'aria-labelledby': 'forecast-title'},
      el('h2', {id: 'forecast-title'}, 'Next 24 hours: expected runs at once'), body, summary),
    refresh,
  };
}

// ---- status tiles and live runs -----------------------------------------

function setTile(id, text, cls) {
  const t = $(id);
  t.textContent = text;
  t.className = 'tile-value' + (cls ? ' ' + cls : '');
}
function num(x) { return x === null || x === undefined ? '–' : String(x); }

// Several hosts on one ledger: how many hold a lease, and the skew between
// them (hosts defining the jobs otherwise, plugins built differently).
function renderCluster(cluster) {
  $('tile-hosts-box').hidden = !cluster;
  if (!cluster) return;
  const skew = cluster.skew || {};
  const others = skew.hosts_with_other_definitions || [];
  const plugins = Object.keys(skew.plugins_built_differently || {});
  const problems = [];
  if (others.length) problems.push('definitions differ on ' + others.join(', '));
  if (plugins.length) problems.push('builds differ: ' + plugins.join(', '));
  setTile('tile-hosts', problems.length ? cluster.live_hosts + ' live, skew' : cluster.live_hosts + ' live',
    problems.length ? 'bad' : 'good');
  $('tile-hosts').title = problems.join('; ');
}

function renderStatus(status) {
  const summary = status.summary || {};
  const hour = summary.last_hour || {};
  setTile('tile-in-flight', num(summary.runs_in_flight));
  setTile('tile-queue', num(summary.queue_depth));
  setTile('tile-retries', num(summary.pending_retries));
  const runs = hour.runs || 0;
  setTile('tile-failure-rate', runs ? fmtPercent(hour.failure_rate) : '–',
    runs && hour.failure_rate > 0 ? 'bad' : '');
  setTile('tile-mean-runtime', runs ? fmtDuration(hour.mean_duration_ms) : '–');
  const ledger = summary.ledger || {};
  const ok = ledger.healthy;
  setTile('tile-ledger', ok === undefined ? '–' : ok ? 'healthy' : 'backlog ' + ledger.backlog, ok === false ? 'bad' : ok ? 'good' : '');
  $('tile-ledger').title = ledger.reason || '';
  renderCluster(summary.cluster);
  renderLive(status.running || []);
}

function renderLive(running) {
  const panel = $('live');
  panel.hidden = running.length === 0;
  const rows = running.map((r) => {
    const started = parseTime(r.started_at);
    const elapsed = started === null ? null : Date.now() - started;
    const p = typeof r.progress === 'number' ? Math.min(1, Math.max(0, r.progress)) : null;
    const progress = p === null
      ? el('span', {class: 'muted'}, 'no heartbeat progress')
      : el('span', {}, el('progress', {max: 1, value: p, 'aria-label': 'progress of ' + r.job}), ' ' + Math.round(p * 100) + ' %');
    return el('tr', {},
      el('td', {}, el('a', {href: jobHref(r.job)}, r.job)),
      el('td', {class: 'mono'}, el('a', {href: runHref(r.run_id), title: r.run_id}, shortId(r.run_id))),
      el('td', {}, r.trigger || ''),
      el('td', {class: 'num'}, fmtDuration(elapsed)),
      el('td', {}, progress));
  });
  $('live-rows').replaceChildren(...rows);
}

// ---- views -------------------------------------------------------------------
// A view is {render(), refresh()}: render() builds it, refresh() is called
// every second to update what can change, without touching inputs.

function jobsView(params) {
  const state = {
    q: params.get('q') || '', sort: params.get('sort') || 'name', state: params.get('state') || '',
    offset: Math.max(0, parseInt(params.get('offset') || '0', 10) || 0),
  };
  const tbody = el('tbody', {});
  const summary = el('span', {class: 'muted', 'aria-live': 'polite'});
  const prev = el('button', {type: 'button', class: 'quiet'}, '← Previous');
  const next = el('button', {type: 'button', class: 'quiet'}, 'Next →');
  let last = '';
  // The list costs the server more the more jobs there are (a page of 10,000
  // jobs is a fraction of a second): the poll asks again only when the
  // status says runs changed, or every 15 s (next fires move on), and never
  // more often than 4x what the last answer took.
  let lastFetch = 0, lastCost = 0, dirty = false;
  const forecast = forecastPanel();

  function syncHash() {
    const h = '#/' + query({q: state.q, sort: state.sort === 'name' ? '' : state.sort, state: state.state,
      offset: state.offset || ''});
    if (location.hash !== h) history.replaceState(null, '', h);
  }
  const search = el('input', {id: 'job-search', type: 'search', value: state.q, placeholder: 'part of a job name',
    autocomplete: 'off'});
  let debounce = null;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { state.q = search.value.trim(); state.offset = 0; syncHash(); refresh(); }, 200);
  });
  const stateSelect = el('select', {id: 'job-state'},
    [['', 'all'], ['failing', 'failing'], ['running', 'running'], ['paused', 'paused'], ['enabled', 'enabled'],
      ['disabled', 'disabled']]
      .map(([v, t]) => el('option', {value: v, selected: v === state.state}, t)));
  stateSelect.addEventListener('change', () => { state.state = stateSelect.value; state.offset = 0; syncHash(); refresh(); });
  prev.addEventListener('click', () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); syncHash(); refresh(); });
  next.addEventListener('click', () => { state.offset += PAGE_SIZE; syncHash(); refresh(); });

  const columns = [
    ['name', 'Job'], [null, 'Schedule'], ['next_fire', 'Next fire'], ['last_run', 'Last run'],
    ['success_rate', 'Success rate', 'num'], [null, 'p50', 'num'], [null, 'p95', 'num'], [null, 'Recent runs'],
  ];
  const headRow = el('tr', {});
  function renderHead() {
    headRow.replaceChildren(...columns.map(([key, label, cls]) => {
      if (!key) return el('th', {scope: 'col', class: cls}, label);
      const active = state.sort === key || state.sort === '-' + key;
      const desc = state.sort === '-' + key;
      const b = el('button', {type: 'button', class: 'sort', 'aria-pressed': active ? 'true' : 'false',
        title: 'sort by ' + label}, label + (active ? (desc ? ' ▼' : ' ▲') : ''));
      b.addEventListener('click', () => {
        state.sort = state.sort === key ? '-' + key : key;
        state.offset = 0;
        syncHash(); renderHead(); refresh();
      });
      return el('th', {scope: 'col', class: cls, 'aria-sort': active ? (desc ? 'descending' : 'ascending') : null}, b);
    }));
  }
  renderHead();

  function row(job) {
    return el('tr', {'data-job': job.name},
      el('th', {scope: 'row'}, el('a', {href: jobHref(job.name)}, job.name),
        job.paused ? [' ', outcomeBadge('paused')] : null,
        job.alerting || (job.alert && job.alert.active) ? [' ', el('span', {class: 'badge alerting'}, 'alerting')] : null),
      el('td', {}, job.schedule_description || job.schedule || ''),
      el('td', {}, job.enabled === false ? el('span', {class: 'muted'}, 'disabled') : timeCell(job.next_fire, true)),
      el('td', {}, job.last_outcome ? [el('span', {class: 'outcome'}, outcomeBadge(job.last_outcome)), ' ',
        el('span', {class: 'muted'}, timeCell(job.last_run, true))]
        : job.runs_in_flight ? el('span', {class: 'outcome'}, outcomeBadge('running'))
          : el('span', {class: 'outcome muted'}, 'never run')),
      el('td', {class: 'num'}, fmtPercent(job.success_rate)),
      el('td', {class: 'num'}, fmtDuration(job.p50_duration_ms)),
      el('td', {class: 'num'}, fmtDuration(job.p95_duration_ms)),
      el('td', {}, sparkline((job.recent || []).slice().reverse())));
  }

  async function refresh(poll) {
    forecast.refresh();
    if (poll) {
      dirty = dirty || poll.changed;
      const wait = Math.max(dirty ? 0 : 15000, 4 * lastCost);
      if (Date.now() - lastFetch < wait) return;
    }
    lastFetch = Date.now();
    dirty = false;
    const path = 'jobs' + query({q: state.q, state: state.state, sort: state.sort, limit: PAGE_SIZE, offset: state.offset});
    const started = performance.now();
    const data = await api(path);
    lastCost = performance.now() - started;
    const key = JSON.stringify(data);
    if (key === last) return;
    last = key;
    const jobs = data.jobs || [];
    const total = data.total !== undefined ? data.total : jobs.length;
    tbody.replaceChildren(...(jobs.length ? jobs.map(row)
      : [el('tr', {}, el('td', {colspan: columns.length, class: 'muted'}, state.q ? 'No job matches “' + state.q + '”.' : 'No jobs.'))]));
    summary.textContent = jobs.length
      ? 'Jobs ' + (state.offset + 1) + '–' + (state.offset + jobs.length) + ' of ' + total : total + ' jobs';
    prev.disabled = state.offset === 0;
    next.disabled = state.offset + jobs.length >= total;
  }

  return {
    render() {
      return el('div', {},
        el('section', {'aria-labelledby': 'jobs-title'},
          el('h1', {id: 'jobs-title'}, 'Jobs'),
          el('div', {class: 'toolbar'},
            el('div', {class: 'field'}, el('label', {for: 'job-search'}, 'Search jobs'), search),
            el('div', {class: 'field'}, el('label', {for: 'job-state'}, 'State'), stateSelect)),
          el('table', {class: 'grid', id: 'jobs-table'}, el('thead', {}, headRow), tbody),
          el('div', {class: 'pager'}, prev, next, summary)),
        forecast.node);
    },
    refresh,
  };
}

function jobView(name) {
  const root = el('div', {});
  let job = null;
  let firstPage = [];   // the newest runs, refreshed every second
  let older = [];       // pages loaded with "Older runs", kept as they are
  let cursor = null;    // next_cursor after the last page loaded
  let lastJob = '', lastRuns = '';
  const runsBody = el('tbody', {});
  const charts = el('div', {class: 'cols'});
  const olderButton = el('button', {type: 'button', class: 'quiet'}, 'Older runs');
  olderButton.addEventListener('click', async () => {
    if (!cursor) return;
    const data = await api('runs' + query({job: name, limit: RUNS_PAGE, cursor}));
    older = older.concat(data.runs || []);
    cursor = data.next_cursor || null;
    renderRuns();
  });

  const buttons = {
    run: el('button', {type: 'button', id: 'run-now'}, 'Run now'),
    pause: el('button', {type: 'button', id: 'pause', class: 'quiet'}, 'Pause'),
    resume: el('button', {type: 'button', id: 'resume', class: 'quiet'}, 'Resume'),
  };
  const path = 'jobs/' + encodeURIComponent(name);
  buttons.run.addEventListener('click', async () => {
    buttons.run.disabled = true;
    try {
      const r = await action(path + '/trigger', 'Run now of ' + name);
      if (r) await refresh();
    } finally { buttons.run.disabled = false; }
  });
  buttons.pause.addEventListener('click', async () => { if (await action(path + '/pause', 'Pause ' + name)) await refresh(); });
  buttons.resume.addEventListener('click', async () => { if (await action(path + '/resume', 'Resume ' + name)) await refresh(); });

  function allRuns() {
    const seen = new Set(), out = [];
    for (const r of firstPage.concat(older)) if (!seen.has(r.run_id)) { seen.add(r.run_id); out.push(r); }
    return out;
  }
  function renderRuns() {
    const runs = allRuns();
    runsBody.replaceChildren(...(runs.length ? runs.map((r) => el('tr', {'data-run': r.run_id},
      el('td', {class: 'mono'}, el('a', {href: runHref(r.run_id), title: r.run_id}, shortId(r.run_id))),
      el('td', {}, outcomeBadge(r.outcome)),
      el('td', {}, r.trigger || ''),
      el('td', {class: 'num'}, String(r.attempt || 1)),
      el('td', {}, timeCell(r.scheduled_for)),
      el('td', {}, timeCell(r.started_at)),
      el('td', {class: 'num'}, fmtDuration(runDuration(r))),
      el('td', {class: 'num'}, fmtDuration(lateness(r))),
      el('td', {class: 'message-cell'}, r.message || ''))) : [el('tr', {}, el('td', {colspan: 9, class: 'muted'}, 'No runs yet.'))]));
    olderButton.hidden = !cursor;
    const finished = runs.filter((r) => r.outcome && r.outcome !== 'skipped').slice().reverse();
    charts.replaceChildren(
      el('div', {}, el('h2', {}, 'Duration'), barChart(finished.map((r) => ({value: runDuration(r), bad: FAILED.has(r.outcome),
        label: fmtClock(parseTime(r.started_at)) + ' ' + r.outcome})), 'Duration of recent runs', fmtDuration)),
      el('div', {}, el('h2', {}, 'Lateness (start − slot)'), barChart(finished.map((r) => ({value: lateness(r), bad: false,
        label: fmtClock(parseTime(r.started_at))})), 'Lateness of recent runs', fmtDuration)));
  }
  function renderJob() {
    const fires = job.next_fires || [];
    const alerts = job.alerts || job.alert || null;
    buttons.pause.hidden = !!job.paused;
    buttons.resume.hidden = !job.paused;
    root.replaceChildren(
      el('section', {},
        el('div', {class: 'headline'},
          el('h1', {}, job.name),
          job.paused ? outcomeBadge('paused') : null,
          job.enabled === false ? el('span', {class: 'badge'}, 'disabled') : null,
          el('div', {class: 'buttons'}, buttons.run, buttons.pause, buttons.resume)),
        el('div', {class: 'cols'},
          el('dl', {class: 'facts'},
            el('dt', {}, 'Schedule'), el('dd', {}, job.schedule_description || '–',
              job.schedule ? el('span', {class: 'muted mono'}, ' (' + job.schedule +
                (job.schedule_resolved !== job.schedule ? ' = ' + job.schedule_resolved : '') + ')') : null),
            el('dt', {}, 'Plugin'), el('dd', {}, job.plugin || '–'),
            el('dt', {}, 'Last outcome'), el('dd', {}, job.last_outcome ? outcomeBadge(job.last_outcome) : '–'),
            el('dt', {}, 'Consecutive failures'), el('dd', {}, num(job.consecutive_failures)),
            el('dt', {}, 'Success rate'), el('dd', {}, fmtPercent(job.success_rate)),
            el('dt', {}, 'Duration p50 / p95'), el('dd', {}, fmtDuration(job.p50_duration_ms) + ' / ' + fmtDuration(job.p95_duration_ms)),
            el('dt', {}, 'Alerts'), el('dd', {}, alerts ? alertText(alerts) : 'none configured')),
          el('div', {},
            el('h2', {}, 'Next fires'),
            fires.length ? el('ol', {class: 'fires'}, fires.map((f) => el('li', {}, timeCell(f, true))))
              : el('p', {class: 'muted'}, job.paused ? 'Paused: fires are recorded as skipped.' : 'None scheduled.')))),
      el('section', {}, charts),
      el('section', {'aria-labelledby': 'runs-title'},
        el('h2', {id: 'runs-title'}, 'Recent runs'),
        el('table', {class: 'grid', id: 'runs-table'},
          el('thead', {}, el('tr', {}, ['Run', 'Outcome', 'Trigger', 'Attempt', 'Slot', 'Started', 'Duration', 'Lateness', 'Message']
            .map((h) => el('th', {scope: 'col', class: ['Attempt', 'Duration', 'Lateness'].includes(h) ? 'num' : null}, h)))),
          runsBody),
        el('div', {class: 'pager'}, olderButton)));
  }
  async function refresh() {
    const [j, runs] = await Promise.all([api(path), api('runs' + query({job: name, limit: RUNS_PAGE}))]);
    const jk = JSON.stringify(j);
    if (jk !== lastJob) { lastJob = jk; job = j; renderJob(); }
    const rk = JSON.stringify(runs);
    if (rk !== lastRuns) {
      lastRuns = rk;
      firstPage = runs.runs || [];
      if (!older.length) cursor = runs.next_cursor || null;
      renderRuns();
    }
  }
  return { render: () => root, refresh };
}

function alertText(alerts) {
  if (Array.isArray(alerts)) return alerts.length ? alerts.map(alertText).join('; ') : 'none configured';
  if (typeof alerts !== 'object') return String(alerts);
  const parts = [];
  for (const [k, v] of Object.entries(alerts)) {
    if (v === null || typeof v === 'object') continue;
    parts.push(k.replace(/_/g, ' ') + ': ' + v);
  }
  return parts.join(', ') || 'none';
}

function runView(id) {
  const root = el('div', {});
  let last = '';
  function facts(pairs) {
    return el('dl', {class: 'facts'}, pairs.filter((p) => p).map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  }
  function render(run) {
    const metrics = run.metrics || {};
    const metricRows = Array.isArray(metrics)
      ? metrics.map((m) => [m.name, m.value])
      : Object.entries(metrics);
    const attempts = run.attempts || run.trace || [];
    const events = run.events || [];
    const output = run.output_tail || '';
    root.replaceChildren(
      el('section', {},
        el('div', {class: 'headline'},
          el('h1', {}, 'Run ', el('span', {class: 'mono'}, run.run_id)),
          outcomeBadge(run.outcome)),
        el('p', {}, 'Job ', el('a', {href: jobHref(run.job)}, run.job), ' · attempt ' + (run.attempt || 1) + ' · trigger ' + (run.trigger || '–')),
        el('h2', {}, 'Message'),
        el('p', {class: 'message', id: 'run-message'}, run.message || el('span', {class: 'muted'}, '(none)'))),
      el('section', {class: 'cols'},
        facts([
          ['Slot', timeCell(run.scheduled_for)],
          ['Started', timeCell(run.started_at)],
          ['Finished', run.finished_at ? timeCell(run.finished_at) : 'still running'],
          ['Duration', fmtDuration(runDuration(run))],
          ['Lateness', fmtDuration(lateness(run))],
          ['Exit code', run.exit_code === null || run.exit_code === undefined ? '–' : String(run.exit_code)],
          run.signal ? ['Signal', run.signal] : null,
          !run.outcome ? ['Progress', typeof run.progress === 'number'
            ? el('progress', {max: 1, value: run.progress, 'aria-label': 'progress'}) : '–'] : null,
          !run.outcome ? ['Last heartbeat', timeCell(run.last_heartbeat, true)] : null,
        ]),
        facts([
          ['CPU time', run.cpu_seconds === null || run.cpu_seconds === undefined ? '–' : run.cpu_seconds.toFixed(3) + ' s'],
          ['Peak memory', fmtBytes(run.max_rss_bytes)],
          ['Plugin', (run.plugin || '–') + (run.plugin_version ? ' ' + run.plugin_version : '')],
          ['Trace', el('span', {class: 'mono'}, run.trace_id || '–')],
          run.replay_of ? ['Replay of', el('a', {href: runHref(run.replay_of)}, run.replay_of)] : null,
        ])),
      el('section', {},
        el('h2', {}, 'Plugin metrics'),
        metricRows.length ? el('table', {class: 'grid'},
          el('thead', {}, el('tr', {}, el('th', {scope: 'col'}, 'Name'), el('th', {scope: 'col', class: 'num'}, 'Value'))),
          el('tbody', {}, metricRows.map(([k, v]) => el('tr', {}, el('td', {class: 'mono'}, k), el('td', {class: 'num'}, v === null || v === undefined ? '–' : String(v))))))
          : el('p', {class: 'muted'}, 'The plugin reported no metrics.')),
      el('section', {},
        el('h2', {}, 'Output (tail)'),
        // textContent: plugin output is shown as the bytes it printed, never as markup.
        output ? el('pre', {class: 'output', id: 'run-output'}, output) : el('p', {class: 'muted'}, 'No output.')),
      el('section', {},
        el('h2', {}, 'Other attempts of this fire'),
        attempts.length ? el('table', {class: 'grid'},
          el('thead', {}, el('tr', {}, ['Attempt', 'Run', 'Outcome', 'Started', 'Duration', 'Message'].map((h) => el('th', {scope: 'col'}, h)))),
          el('tbody', {}, attempts.map((a) => el('tr', {},
            el('td', {}, String(a.attempt || '')),
            el('td', {class: 'mono'}, a.run_id === run.run_id ? shortId(a.run_id) + ' (this run)'
              : el('a', {href: runHref(a.run_id)}, shortId(a.run_id))),
            el('td', {}, outcomeBadge(a.outcome)),
            el('td', {}, timeCell(a.started_at)),
            el('td', {}, fmtDuration(runDuration(a))),
            el('td', {}, a.message || '')))))
          : el('p', {class: 'muted'}, 'None: this is the only attempt.')),
      el('section', {},
        el('h2', {}, 'Events'),
        events.length ? el('table', {class: 'grid'},
          el('thead', {}, el('tr', {}, ['Time', 'Kind', 'Detail'].map((h) => el('th', {scope: 'col'}, h)))),
          el('tbody', {}, events.map((e) => el('tr', {},
            el('td', {}, timeCell(e.at)), el('td', {}, e.kind || ''),
            el('td', {class: 'mono'}, typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail)))))) 
          : el('p', {class: 'muted'}, 'No events.')));
  }
  async function refresh() {
    const run = await api('runs/' + encodeURIComponent(id));
    const key = JSON.stringify(run);
    if (key === last) return;
    last = key;
    render(run);
  }
  return { render: () => root, refresh };
}

// ---- routing and the poll loop ---------------------------------------------

let view = null;
let routeId = 0;

function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = hash.split('?');
  const params = new URLSearchParams(qs || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'jobs' && parts[1]) return {key: 'job:' + parts[1], make: () => jobView(parts[1]), title: parts[1]};
  if (parts[0] === 'runs' && parts[1]) return {key: 'run:' + parts[1], make: () => runView(parts[1]), title: 'run ' + parts[1]};
  return {key: 'jobs', make: () => jobsView(params), title: 'jobs'};
}

let currentKey = null;
async function show() {
  const r = route();
  if (r.key === currentKey) return;
  currentKey = r.key;
  const id = ++routeId;
  clearNotice();
  view = r.make();
  document.title = 'jobhost · ' + r.title;
  const main = $('view');
  main.replaceChildren(view.render());
  try {
    await view.refresh();
  } catch (e) {
    if (id === routeId) main.replaceChildren(el('section', {}, el('h1', {}, 'Not available'), el('p', {}, e.message)));
  }
  if (id === routeId) main.focus({preventScroll: true});
}

// What changes when a run starts or ends: the jobs list is fetched again then.
let lastSignature = '';
function signature(status) {
  const s = status.summary || {}, h = s.last_hour || {};
  return JSON.stringify([(status.running || []).map((r) => r.run_id), h.runs, h.failed, s.pending_retries]);
}

async function tick() {
  if (!document.hidden) {
    const conn = $('connection');
    try {
      const status = await api('status?jobs=false');
      renderStatus(status);
      const sig = signature(status);
      const changed = sig !== lastSignature;
      lastSignature = sig;
      if (view) await view.refresh({changed});
      updateRelativeTimes();
      conn.textContent = 'live · updated ' + new Date().toLocaleTimeString([], {hour12: false});
      conn.className = 'connection';
    } catch (e) {
      conn.textContent = e.status === 0 ? 'daemon unreachable' : 'error: ' + e.message;
      conn.className = 'connection down';
    }
  }
  setTimeout(tick, POLL_MS);
}

document.addEventListener('DOMContentLoaded', () => {
  updateTokenButton();
  $('token-button').addEventListener('click', () => { askToken(); });
  window.addEventListener('hashchange', show);
  show();
  tick();
});
