// app.js — the web page's logic: fills the pickers from the API, generates
// through the async jobs API (POST /jobs/txt2img or /jobs/img2img, then
// GET /jobs/{id} until it ends) with a progress bar and a cancel button,
// the job's live preview while it runs (GET /jobs/{id}/preview),
// shows the results newest first, and turns the form into the equivalent
// synchronous curl command.  Every call goes to this server's origin and
// carries the API key kept in localStorage.
'use strict';

const KEY_STORE = 'sdserve.apiKey';
const POLL_MS = 100;
const $ = (id) => document.getElementById(id);
let job = null;        // the running job: {id}

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
  if (!resp.ok) throw {status: resp.status, body: data};
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
  for (;;) {
    const st = await api('GET', '/jobs/' + id);
    if (st.state === 'queued') {
      setProgress(0, 1, 'queued' + (st.queue_position != null ? ' (position ' + st.queue_position + ')' : ''));
    } else if (st.state === 'running') {
      setProgress(st.step, st.total_steps, 'step ' + st.step + ' / ' + st.total_steps +
        (st.eta_seconds != null ? ' · about ' + st.eta_seconds + ' s left' : ''));
      if (st.preview_url && st.step !== shown) {
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
    await sleep(POLL_MS);
  }
}

async function generate(ev) {
  ev.preventDefault();
  if (job) return;
  showError(null);
  const f = fields();
  const req = requestBody(f);
  busy(true);
  setProgress(0, 1, 'submitting');
  try {
    const created = await api('POST', '/jobs/' + req.path, req.body, req.headers);
    job = {id: created.id};
    await follow(created.id, f);
  } catch (err) {
    setProgress(0, 1, 'failed');
    showError(err);
  } finally {
    job = null;
    hidePreview();   // replaced by the final image (or gone with the job)
    busy(false);
  }
}

async function cancel() {
  if (!job) return;
  try { await api('DELETE', '/jobs/' + job.id); } catch (err) { showError(err); }
}

// ' quoted for a POSIX shell
const sq = (s) => "'" + String(s).replace(/'/g, "'\\''") + "'";

function curlCommand() {
  const f = fields();
  const init = $('init').files[0];
  const parts = ['curl -s', sq(location.origin + (init ? '/img2img' : '/txt2img'))];
  if (apiKey()) parts.push('-H ' + sq('Authorization: Bearer ' + apiKey()));
  if (!init) {
    parts.push('-H ' + sq('Content-Type: application/json'), '-d ' + sq(JSON.stringify(f)));
  } else {
    parts.push('-F ' + sq('init_image=@' + init.name));
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
}

init();
