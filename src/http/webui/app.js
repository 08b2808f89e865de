// app.js — the web page's logic: fills the pickers from the API, generates
// through the async jobs API (POST /jobs/txt2img or /jobs/img2img, then
// GET /jobs/{id} until it ends) with a progress bar and a cancel button,
// the job's live preview while it runs (GET /jobs/{id}/preview),
// shows the results newest first, and turns the form into the equivalent
// synchronous curl command.  Every call goes to this server's origin and
// carries the API key kept in localStorage.  One job at a time (a second
// submit while one is being sent or runs is ignored); the running job's id
// is kept in sessionStorage so a reload follows it on; a 429 (--rate-limit)
// while following waits its Retry-After and polls slower, without previews.
'use strict';

const KEY_STORE = 'sdserve.apiKey';
const JOB_STORE = 'sdserve.job';   // sessionStorage: the running job {id, prompt}, for a reload
const POLL_MS = 100;
const POLL_MAX_MS = 5000;
const $ = (id) => document.getElementById(id);
let job = null;        // the job being sent or run: {id (null while sending), cancel (asked while sending)}

function apiKey() { return localStorage.getItem(KEY_STORE) || ''; }

function headers(extra) {
  const h = Object.assign({Accept: 'application/json'}, extra || {});
  if (apiKey()) h.Authorization = 'Bearer ' + apiKey();
  return h;
}

// fetch + JSON; throws {status, body} for an answer that is not 2xx
async function api(method, path, body, extraHeaders) {
  const resp = await fetch(path, {method, headers: headers(extraHeaders), body});
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) throw {status: resp.status, body: data, retryAfter: Number(resp.headers.get('Retry-After')) || 0};
  return data;
}

function showError(err) {
  const box = $('error');
  if (!err) { box.hidden = true; box.textContent = ''; return; }
  const b = (err && err.body) || {};
  let text;
  if (err.status === 401)
    text = 'This server needs an API key: enter it in the "API key" field at the top' +
      (apiKey() ? ' (the one entered was refused: ' + (b.message || 'not valid') + ')' : '') + '.';
  else if (b.message)
    text = b.message + (b.field ? ' (field: ' + b.field + ')' : '');
  else
    text = err.message || ('the server answered ' + (err.status || 'nothing'));
  box.textContent = text;
  box.hidden = false;
}

function setProgress(value, max, text) {
  const p = $('progress');
  p.max = Math.max(1, max);
  p.value = Math.min(value, p.max);
  $('status').textContent = text;
}

function fillSelect(sel, items, chosen) {
  sel.replaceChildren();
  for (const it of items) {
    const o = document.createElement('option');
    o.value = it.value;
    o.textContent = it.label || it.value;
    if (it.value === chosen) o.selected = true;
    sel.appendChild(o);
  }
}

// The pickers: samplers always; models and LoRAs when the server lists them
// (GET / names its endpoints, so the page asks for nothing that is absent).
async function loadLists() {
  showError(null);
  try {
    const root = await api('GET', '/');
    const has = (ep) => (root.endpoints || []).includes(ep);
    const s = await api('GET', '/samplers');
    const names = [];
    for (const x of s.samplers || []) names.push({value: x.name});
    fillSelect($('sampler'), names, $('sampler').value || s.default);
    $('model-row').hidden = true;
    if (has('GET /models')) {
      const m = await api('GET', '/models');
      const list = (m.models || []).filter((x) => x.usable !== false);   // refused ones: GET /models says why
      const def = list.find((x) => x.default);
      fillSelect($('model'), list.map((x) => ({value: x.name, label: x.name + (x.family ? ' (' + x.family + ')' : '')})),
        def ? def.name : undefined);
      $('model-row').hidden = list.length === 0;
    }
    $('lora-row').hidden = true;
    if (has('GET /loras')) {
      const l = await api('GET', '/loras');
      const fit = (l.loras || []).filter((x) => x.fits);
      fillSelect($('lora'), fit.map((x) => ({value: x.name})));
      $('lora-row').hidden = fit.length === 0;
    }
  } catch (err) {
    showError(err);
  }
}

async function loadServer() {
  try {
    const h = await fetch('/health', {headers: {Accept: 'application/json'}}).then((r) => r.json());
    const m = h.model || {};
    $('server').textContent = (m.name ? 'model: ' + m.name : '') + (m.family ? ' (' + m.family + ')' : '') +
      (h.version ? ' · sdserve ' + h.version : '');
  } catch (e) { /* the header line is a courtesy */ }
}

// The request's fields, as the API names them.
function fields() {
  const f = {prompt: $('prompt').value};
  if ($('negative').value.trim()) f.negative_prompt = $('negative').value;
  if (!$('init').files.length) {   // blank: the model's native size (512 SD1/2, 1024 SDXL)
    if ($('width').value.trim() !== '') f.width = Number($('width').value);
    if ($('height').value.trim() !== '') f.height = Number($('height').value);
  } else {
    f.strength = Number($('strength').value);
  }
  f.num_inference_steps = Number($('steps').value);
  f.guidance_scale = Number($('guidance').value);
  if ($('sampler').value) f.sampler = $('sampler').value;
  if ($('seed').value.trim() !== '') f.seed = Number($('seed').value);
  if (!$('model-row').hidden && $('model').value) f.model = $('model').value;
  return f;
}

function requestBody(f) {
  const init = $('init').files[0];
  if (!init) return {path: 'txt2img', body: JSON.stringify(f), headers: {'Content-Type': 'application/json'}};
  const form = new FormData();
  for (const [k, v] of Object.entries(f)) form.append(k, String(v));
  form.append('init_image', init, init.name);
  return {path: 'img2img', body: form, headers: {}};
}

function addResult(img, f) {
  const fig = document.createElement('figure');
  const a = document.createElement('a');
  a.href = img.image_url;
  a.target = '_blank';
  a.rel = 'noopener';
  const im = document.createElement('img');
  im.src = img.image_url;
  im.alt = f.prompt;
  a.appendChild(im);
  const cap = document.createElement('figcaption');
  cap.textContent = 'seed ' + img.seed + ' · ' + f.prompt;
  fig.append(a, cap);
  $('gallery').prepend(fig);
  $('empty').hidden = true;
}

function busy(on) {
  $('generate').disabled = on;
  $('cancel').disabled = !on;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Live previews (docs/SERVER.md "Previews"): the running job's picture so
// far, fetched with the key (an <img> cannot send it) and shown as a data:
// URL (the page's CSP allows img-src data:); 204 = none now.
async function showPreview(id, step) {
  const resp = await fetch('/jobs/' + id + '/preview', {headers: headers({Accept: 'image/png'})});
  if (resp.status !== 200) return;
  const blob = await resp.blob();
  const url = await new Promise((ok, bad) => {
    const rd = new FileReader();
    rd.onload = () => ok(rd.result);
    rd.onerror = bad;
    rd.readAsDataURL(blob);
  });
  if (!job || job.id !== id) return;   // the job ended meanwhile
  $('preview').src = url;
  $('preview-cap').textContent = 'preview after step ' + (resp.headers.get('X-Preview-Step') || step);
  $('preview-fig').hidden = false;
}

function hidePreview() {
  $('preview-fig').hidden = true;
  $('preview').removeAttribute('src');
}

async function follow(id, f) {
  let shown = -1;   // the step of the last preview asked for
  let pause = POLL_MS, previews = true;
  for (;;) {
    let st;
    try {
      st = await api('GET', '/jobs/' + id);
    } catch (err) {
      if (err.status !== 429) throw err;
      // over the server's rate limit: the job runs on; wait, then poll slower without previews
      const wait = Math.max(1, err.retryAfter) * 1000;
      pause = Math.min(POLL_MAX_MS, Math.max(2 * pause, 2 * wait));
      previews = false;
      setProgress(0, 1, 'waiting: the server limits requests (retry in ' + wait / 1000 + ' s)');
      await sleep(wait);
      continue;
    }
    if (st.state === 'queued') {
      setProgress(0, 1, 'queued' + (st.queue_position != null ? ' (position ' + st.queue_position + ')' : ''));
    } else if (st.state === 'running') {
      setProgress(st.step, st.total_steps, 'step ' + st.step + ' / ' + st.total_steps +
        (st.eta_seconds != null ? ' · about ' + st.eta_seconds + ' s left' : ''));
      if (previews && st.preview_url && st.step !== shown) {
        shown = st.step;
        try { await showPreview(id, st.step); } catch (e) { /* a preview is a courtesy */ }
      }
    } else if (st.state === 'succeeded') {
      setProgress(st.total_steps, st.total_steps, 'done in ' + st.elapsed_seconds + ' s');
      for (const img of (st.images || []).slice().reverse()) addResult(img, f);
      return;
    } else {
      setProgress(0, 1, st.state);
      if (st.state !== 'cancelled') showError({body: st});
      return;
    }
    await sleep(pause);
  }
}

// Follows job id (its request's fields f) to its end; the page is busy meanwhile.
async function run(id, f) {
  job.id = id;
  sessionStorage.setItem(JOB_STORE, JSON.stringify({id, prompt: f.prompt}));
  if (job.cancel) await cancel();   // Cancel was pressed while the request was being sent
  await follow(id, f);
}

async function generate(ev) {
  ev.preventDefault();
  if (job) return;   // one at a time: Ctrl+Enter twice, or while one runs
  job = {id: null, cancel: false};
  showError(null);
  busy(true);
  setProgress(0, 1, 'submitting');
  try {
    const f = fields();
    const req = requestBody(f);
    const created = await api('POST', '/jobs/' + req.path, req.body, req.headers);
    await run(created.id, f);
  } catch (err) {
    setProgress(0, 1, 'failed');
    showError(err);
  } finally {
    finished();
  }
}

function finished() {
  job = null;
  sessionStorage.removeItem(JOB_STORE);
  hidePreview();   // replaced by the final image (or gone with the job)
  busy(false);
}

// A job this tab started before a reload: followed on while the server still has it.
async function resume() {
  let saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(JOB_STORE)); } catch (e) { saved = null; }
  if (!saved || typeof saved.id !== 'string' || !/^[0-9a-f]{32}$/.test(saved.id)) {
    sessionStorage.removeItem(JOB_STORE);
    return;
  }
  job = {id: saved.id, cancel: false};
  busy(true);
  setProgress(0, 1, 'following the job started before the reload');
  try {
    await run(saved.id, {prompt: String(saved.prompt || '')});
  } catch (err) {
    if (err.status === 404) setProgress(0, 1, 'idle');   // ended and forgotten meanwhile
    else { setProgress(0, 1, 'failed'); showError(err); }
  } finally {
    finished();
  }
}

async function cancel() {
  if (!job) return;
  if (!job.id) { job.cancel = true; setProgress(0, 1, 'cancelling'); return; }
  try { await api('DELETE', '/jobs/' + job.id); } catch (err) { showError(err); }
}

// ' quoted for a POSIX shell
const sq = (s) => "'" + String(s).replace(/'/g, "'\\''") + "'";
// a file name for curl's -F NAME=@FILE: in double quotes (\\ and \" escaped)
// unless plain, as curl would read ; , and " in it as its own syntax
const curlFile = (name) => /^[A-Za-z0-9._+-]+$/.test(name) ? name : '"' + name.replace(/[\\"]/g, '\\$&') + '"';

function curlCommand() {
  const f = fields();
  const init = $('init').files[0];
  const parts = ['curl -s', sq(location.origin + (init ? '/img2img' : '/txt2img'))];
  if (apiKey()) parts.push('-H ' + sq('Authorization: Bearer ' + apiKey()));
  if (!init) {
    parts.push('-H ' + sq('Content-Type: application/json'), '-d ' + sq(JSON.stringify(f)));
  } else {
    parts.push('-F ' + sq('init_image=@' + curlFile(init.name)));
    for (const [k, v] of Object.entries(f)) parts.push('--form-string ' + sq(k + '=' + v));
  }
  return parts.join(' ');
}

async function copyCurl() {
  const box = $('curl');
  box.value = curlCommand();
  box.hidden = false;
  box.select();
  try { await navigator.clipboard.writeText(box.value); $('status').textContent = 'curl command copied'; }
  catch (e) { $('status').textContent = 'curl command below: copy it with Ctrl+C'; }
}

function addLora() {
  const name = $('lora').value;
  if (!name) return;
  const w = $('lora-weight').value || '1';
  const p = $('prompt');
  p.value = (p.value.trim() ? p.value.trimEnd() + ' ' : '') + '<lora:' + name + ':' + w + '>';
  p.focus();
}

function init() {
  $('key').value = apiKey();
  $('key').addEventListener('change', () => {
    const k = $('key').value.trim();
    if (k) localStorage.setItem(KEY_STORE, k); else localStorage.removeItem(KEY_STORE);
    loadLists();
  });
  $('form').addEventListener('submit', generate);
  for (const id of ['prompt', 'negative'])   // Ctrl+Enter in a text area generates
    $(id).addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); $('form').requestSubmit(); }
    });
  $('cancel').addEventListener('click', cancel);
  $('copy-curl').addEventListener('click', copyCurl);
  $('lora-add').addEventListener('click', addLora);
  $('init-clear').addEventListener('click', () => { $('init').value = ''; });
  loadServer();
  loadLists();
  resume();
}

init();
