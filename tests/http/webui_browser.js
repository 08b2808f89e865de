// webui_browser.js — drives Debian's chromium (headless, via puppeteer-core)
// through sdserve's web page; run by test_webui_browser.sh, which starts the
// server.  Prints "ok - " / "FAIL - " lines.
//   node webui_browser.js open BASE ARTIFACT_DIR   (a server without keys)
//   node webui_browser.js key  BASE ARTIFACT_DIR KEY  (a server with that key)
//   node webui_browser.js lora BASE ARTIFACT_DIR   (a server with --lora-dir)
//   node webui_browser.js rate BASE ARTIFACT_DIR   (a server with --rate-limit 60)
// Environment: PUPPETEER (the puppeteer-core folder), CHROMIUM (its binary).
'use strict';
const {execFileSync} = require('child_process');
const fs = require('fs');
const path = require('path');
const puppeteer = require(process.env.PUPPETEER);

const [mode, base, artifacts, key] = process.argv.slice(2);
const origin = new URL(base).origin;
const check = (name, cond, detail) => console.log(cond ? 'ok - ' + name : 'FAIL - ' + name + ': ' + detail);

// Everything the page does: console errors, page errors, every request's URL
// and the job statuses it read.
function watch(page) {
  const w = {errors: [], urls: [], methods: [], statuses: []};
  page.on('console', (m) => { if (m.type() === 'error') w.errors.push(m.text()); });
  page.on('pageerror', (e) => w.errors.push('page error: ' + e.message));
  page.on('request', (r) => { w.urls.push(r.url()); w.methods.push(r.method() + ' ' + r.url()); });
  page.on('response', async (r) => {
    if (r.request().method() === 'GET' && /\/jobs\/[0-9a-f]{32}$/.test(r.url()))
      try { w.statuses.push(await r.json()); } catch (e) { /* a body cut short by navigation */ }
  });
  return w;
}

const foreign = (w) => w.urls.filter((u) => !u.startsWith('data:') && new URL(u).origin !== origin);

// Records every value the page gives the progress bar.
async function recordProgress(page) {
  await page.evaluate(() => {
    const p = document.getElementById('progress');
    window.progressSeen = [];
    new MutationObserver(() => window.progressSeen.push([p.value, p.max]))
      .observe(p, {attributes: true, attributeFilter: ['value', 'max']});
  });
}

// Records every preview the page shows (live previews: #preview's src
// while #preview-fig is visible).
async function recordPreviews(page) {
  await page.evaluate(() => {
    const im = document.getElementById('preview'), fig = document.getElementById('preview-fig');
    window.previewsSeen = [];
    new MutationObserver(() => { if (!fig.hidden && im.src) window.previewsSeen.push(im.src); })
      .observe(im, {attributes: true, attributeFilter: ['src']});
  });
}

async function setField(page, id, value) {
  await page.$eval('#' + id, (e, v) => { e.value = v; e.dispatchEvent(new Event('input', {bubbles: true})); }, value);
}

async function fillForm(page, f) {
  await page.click('#prompt', {clickCount: 3});
  await page.keyboard.press('Backspace');
  await page.type('#prompt', f.prompt);
  for (const id of ['width', 'height', 'steps', 'seed']) if (f[id] !== undefined) await setField(page, id, String(f[id]));
}

// Waits for the gallery to hold n loaded images; the newest one's facts.
async function galleryImage(page, n) {
  await page.waitForFunction((n) => {
    const imgs = document.querySelectorAll('#gallery img');
    return imgs.length >= n && imgs[0].complete && imgs[0].naturalWidth > 0;
  }, {timeout: 120000}, n);
  return page.$eval('#gallery figure', (f) => {
    const i = f.querySelector('img');
    return {src: i.src, w: i.naturalWidth, h: i.naturalHeight, href: f.querySelector('a').href,
            caption: f.querySelector('figcaption').textContent};
  });
}

const lastImages = (w) => {
  const done = w.statuses.filter((s) => s.state === 'succeeded');
  return done.length ? done[done.length - 1].images : [];
};

// The "copy as curl" command, run by a shell as pasted.
async function runCurl(page) {
  await page.click('#copy-curl');
  const cmd = await page.$eval('#curl', (e) => e.value);
  let out;
  try { out = JSON.parse(execFileSync('bash', ['-c', cmd], {encoding: 'utf8', timeout: 120000})); }
  catch (e) { out = {error: String(e)}; }
  return {cmd, out};
}

async function openCase(browser) {
  const page = await browser.newPage();
  await page.setViewport({width: 1100, height: 760});
  const w = watch(page);
  await page.goto(base + '/', {waitUntil: 'networkidle0'});
  check('a browser opening / lands on /ui/', page.url() === base + '/ui/', page.url());
  await page.waitForFunction(() => document.querySelectorAll('#sampler option').length > 0, {timeout: 20000});
  const samplers = await page.$$eval('#sampler option', (os) => os.map((o) => o.value));
  check('the sampler picker is filled from GET /samplers (default euler_a)',
    samplers.includes('euler_a') && samplers.includes('DPM++ 2M') &&
    await page.$eval('#sampler', (s) => s.value) === 'euler_a', samplers.join(','));
  const opts = await page.$$eval('#model option', (os) => os.map((o) => o.value));
  check('the model picker is filled from the real GET /models (the one model, chosen)',
    w.urls.some((u) => u.endsWith('/models')) && !(await page.$eval('#model-row', (e) => e.hidden)) &&
    opts.length === 1 && await page.$eval('#model', (s) => s.value) === opts[0], opts.join(',') + ' ' + w.urls.join(' '));

  const unlabelled = await page.$$eval('input, select, textarea, progress', (es) =>
    es.filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map((e) => e.id));
  check('every control has a label (or aria-label)', unlabelled.length === 0, unlabelled.join(','));
  await recordProgress(page);
  await recordPreviews(page);
  // enough steps that 100 ms polls see the middle: ~3 ms each here, ~60 under ASan
  const steps = process.env.SD_SANITIZED ? 40 : 150;
  await fillForm(page, {prompt: 'a lighthouse at dawn', width: 64, height: 64, steps, seed: 1234});
  await page.click('#generate');
  const img = await galleryImage(page, 1);
  const images = lastImages(w);
  check('a 64x64 txt2img through the page: the gallery shows a 64x64 <img>', img.w === 64 && img.h === 64,
    JSON.stringify(img));
  check("the gallery's <img> src and link are the job's image URL",
    images.length === 1 && img.src === images[0].image_url && img.href === images[0].image_url,
    JSON.stringify({img, images}));
  check('the gallery shows the seed (1234)', img.caption.includes('seed 1234'), img.caption);
  const seen = await page.evaluate(() => window.progressSeen);
  const mid = seen.filter(([v, m]) => m === steps && v > 0 && v < m);
  check('the progress bar moved: an intermediate value 0 < v < ' + steps + ' was shown, then the end',
    mid.length > 0 && seen.some(([v, m]) => m === steps && v === m), JSON.stringify(seen));
  console.log('# progress values shown: ' + seen.filter(([, m]) => m === steps).map(([v]) => v).join(' '));
  const previews = await page.evaluate(() => window.previewsSeen);
  check('the live preview <img> appeared during the job (a PNG from GET /jobs/{id}/preview)',
    previews.length > 0 && previews.every((u) => u.startsWith('data:image/png;base64,')) &&
    w.urls.some((u) => /\/jobs\/[0-9a-f]{32}\/preview$/.test(u)), previews.length + ' shown');
  check('the preview is replaced by the final image once the job ends',
    await page.$eval('#preview-fig', (e) => e.hidden), 'still shown');
  check('no console errors while loading and generating', w.errors.length === 0, w.errors.join(' | '));
  const shot = path.join(artifacts, 'webui.png');
  await page.screenshot({path: shot, fullPage: true});
  check('screenshot saved: ' + shot, fs.statSync(shot).size > 1000, 'no file');

  // copy as curl: the synchronous request makes the very same image
  const c = await runCurl(page);
  check('"copy as curl" runs as pasted and makes the same image (same URL)',
    c.out.status === 'success' && c.out.images[0].image_url === images[0].image_url && c.out.images[0].seed === 1234,
    c.cmd + ' -> ' + JSON.stringify(c.out).slice(0, 300));

  // img2img: the generated image uploaded back, at a strength
  const init = path.join(artifacts, 'webui-init.png');
  fs.writeFileSync(init, Buffer.from(await page.evaluate(async (u) =>
    Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer())), images[0].image_url)));
  const input = await page.$('#init');
  await input.uploadFile(init);
  await setField(page, 'strength', '0.5');
  await fillForm(page, {prompt: 'the same lighthouse at night', steps: 8, seed: 77});
  const posts = () => w.urls.filter((u) => u.endsWith('/jobs/img2img')).length;
  await page.click('#generate');
  const img2 = await galleryImage(page, 2);
  check('img2img through the page (multipart upload): a second 64x64 image, newest first',
    posts() === 1 && img2.w === 64 && img2.caption.includes('seed 77') && img2.src === lastImages(w)[0].image_url,
    JSON.stringify(img2));
  const c2 = await runCurl(page);
  check('"copy as curl" for img2img names the uploaded file and its fields',
    c2.cmd.includes("-F 'init_image=@webui-init.png'") && c2.cmd.includes("--form-string 'strength=0.5'"), c2.cmd);
  // a file name with curl's -F syntax in it (; , ") and a quote: the command still runs where the file is
  const odd = path.join(artifacts, 'web;ui, "init\'s".png');
  fs.copyFileSync(init, odd);
  await input.uploadFile(odd);
  await page.click('#copy-curl');
  const cmd3 = await page.$eval('#curl', (e) => e.value);
  let out3;
  try { out3 = JSON.parse(execFileSync('bash', ['-c', cmd3], {encoding: 'utf8', timeout: 120000, cwd: artifacts})); }
  catch (e) { out3 = {error: String(e).slice(0, 200)}; }
  check('"copy as curl" for an upload named web;ui, "init\'s".png runs as pasted where the file is',
    out3.status === 'success', cmd3 + ' -> ' + JSON.stringify(out3).slice(0, 200));
  fs.unlinkSync(odd);
  await page.click('#init-clear');

  // cancel: a long job, cancelled from the page
  await fillForm(page, {prompt: 'a long one', width: 256, height: 256, steps: 150, seed: 5});
  await page.click('#generate');
  await page.waitForFunction(() => /^step [1-9]/.test(document.getElementById('status').textContent), {timeout: 60000});
  await page.click('#cancel');
  await page.waitForFunction(() => document.getElementById('status').textContent === 'cancelled', {timeout: 60000});
  const deletes = w.methods.filter((m) => /^DELETE .*\/jobs\/[0-9a-f]{32}$/.test(m));
  check('Cancel sends DELETE /jobs/{id}; the job ends cancelled, Generate is enabled again',
    deletes.length === 1 && !(await page.$eval('#generate', (b) => b.disabled)), deletes.join(' '));

  // an error from the API is shown with its field
  const before = w.errors.length;
  await fillForm(page, {prompt: 'x <lora:nope:1>', width: 64, height: 64, steps: 2});
  await page.click('#generate');
  await page.waitForSelector('#error:not([hidden])', {timeout: 20000});
  const msg = await page.$eval('#error', (e) => e.textContent);
  check('an API error is shown in the page with its field', /LoRA/.test(msg) && msg.includes('(field: loras)'), msg);
  const extra = w.errors.slice(before).filter((e) => !/status of 400/.test(e));
  check('no console errors but the 400 itself', extra.length === 0 && w.errors.length === before + 1, w.errors.join(' | '));
  await oneJobCases(page, w);
  check('every request went to the server\'s own origin (' + w.urls.length + ' requests)', foreign(w).length === 0,
    foreign(w).join(' '));
  await page.close();
  await modelCase(browser);
}

// One job at a time, and the job outlives a reload: a double submit
// (Ctrl+Enter twice) sends one POST; Cancel pressed while the POST is on its
// way cancels the job once it has an id; a reload mid-job follows the job on
// (progress, Cancel enabled); a seed past 2^53 - 1 is refused by the form;
// a 320 px window scrolls no sideways.
async function oneJobCases(page, w) {
  const posts = () => w.methods.filter((m) => /^POST .*\/jobs\/txt2img$/.test(m)).length;
  const deletes = () => w.methods.filter((m) => /^DELETE .*\/jobs\/[0-9a-f]{32}$/.test(m)).length;
  const status = () => page.$eval('#status', (e) => e.textContent);
  const n0 = await page.$$eval('#gallery figure', (fs) => fs.length), p0 = posts();
  await fillForm(page, {prompt: 'twice', width: 64, height: 64, steps: 4, seed: 3});
  await page.evaluate(() => { const f = document.getElementById('form'); f.requestSubmit(); f.requestSubmit(); });
  await galleryImage(page, n0 + 1);
  await new Promise((r) => setTimeout(r, 500));
  check('a double submit (Ctrl+Enter twice) sends one job, one image in the gallery',
    posts() === p0 + 1 && await page.$$eval('#gallery figure', (fs) => fs.length) === n0 + 1,
    (posts() - p0) + ' POSTs');

  const d0 = deletes();
  await fillForm(page, {prompt: 'cancelled while sent', width: 256, height: 256, steps: 150, seed: 4});
  await page.evaluate(() => { document.getElementById('form').requestSubmit(); document.getElementById('cancel').click(); });
  await page.waitForFunction(() => /^(cancelled|failed|done)/.test(document.getElementById('status').textContent),
    {timeout: 60000});
  check('Cancel pressed while the request is being sent cancels the job once it has an id',
    await status() === 'cancelled' && deletes() === d0 + 1, (await status()) + ', ' + (deletes() - d0) + ' DELETEs');

  await fillForm(page, {prompt: 'reloaded mid-job', width: 256, height: 256, steps: 150, seed: 5});
  await page.click('#generate');
  await page.waitForFunction(() => /^step [1-9]/.test(document.getElementById('status').textContent), {timeout: 60000});
  const p1 = posts();
  await page.reload({waitUntil: 'domcontentloaded'});
  let followed = true;
  try {
    await page.waitForFunction(() => /^step [1-9]/.test(document.getElementById('status').textContent), {timeout: 20000});
  } catch (e) { followed = false; }
  check('a reload mid-job follows the running job on (progress shown, Cancel enabled, no new POST)',
    followed && !(await page.$eval('#cancel', (b) => b.disabled)) && posts() === p1,
    (await status()) + ', cancel ' + (await page.$eval('#cancel', (b) => b.disabled) ? 'disabled' : 'enabled'));
  if (followed) {
    await page.click('#cancel');
    await page.waitForFunction(() => document.getElementById('status').textContent === 'cancelled', {timeout: 60000});
    check('... and Cancel after the reload cancels it', await page.evaluate(() => !sessionStorage.getItem('sdserve.job')),
      'the job is still remembered');
  }

  await page.waitForFunction(() => document.querySelectorAll('#sampler option').length > 0, {timeout: 20000});
  const p2 = posts();
  await fillForm(page, {prompt: 'a seed too big', width: 64, height: 64, steps: 2, seed: '18446744073709551615'});
  await page.evaluate(() => document.getElementById('form').requestSubmit());
  await new Promise((r) => setTimeout(r, 500));
  check('a seed above 2^53 - 1 (the API\'s largest) is refused by the form, not sent rounded',
    posts() === p2 && await page.$eval('#seed', (e) => e.validity.rangeOverflow), (posts() - p2) + ' POSTs');

  await page.setViewport({width: 320, height: 640});
  const wide = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  check('a 320 px wide window scrolls no sideways', wide[0] <= wide[1], 'content ' + wide[0] + ' px in ' + wide[1]);
  await page.setViewport({width: 1100, height: 760});
}

// A server with --rate-limit 60 (a minute, burst 60): the page's 100 ms polls
// and previews pass it within seconds; the page waits the 429's Retry-After,
// polls slower and the job's image still arrives.
async function rateCase(browser) {
  const page = await browser.newPage();
  const w = watch(page);
  await page.goto(base + '/ui/', {waitUntil: 'networkidle0'});
  const steps = process.env.SD_SANITIZED ? 30 : 150;   // over 6 s either way: the burst of 60 is spent
  await fillForm(page, {prompt: 'a rate-limited lighthouse', width: 256, height: 256, steps, seed: 11});
  await page.click('#generate');
  let img = null, why = '';
  try { img = await galleryImage(page, 1); } catch (e) {
    why = (await page.$eval('#status', (e) => e.textContent)) + ' / ' + (await page.$eval('#error', (e) => e.textContent));
  }
  const limited = w.errors.filter((e) => /status of 429/.test(e)).length;
  check('over --rate-limit while following a job: the page waits and the image arrives (' + limited + ' 429s seen)',
    img && img.w === 256 && limited > 0 && await page.$eval('#error', (e) => e.hidden), why || JSON.stringify(img));
  await page.close();
}

async function keyCase(browser) {
  const ctx = await browser.createBrowserContext();   // empty localStorage
  const page = await ctx.newPage();
  await page.setViewport({width: 1100, height: 760});
  const w = watch(page);
  await page.goto(base + '/', {waitUntil: 'networkidle0'});
  check('keys set: a browser opening / lands on /ui/ without a key', page.url() === base + '/ui/', page.url());
  await page.waitForSelector('#error:not([hidden])', {timeout: 20000});
  const msg = await page.$eval('#error', (e) => e.textContent);
  check('without a key the page says to enter one (the 401)', msg.includes('needs an API key'), msg);
  check('the only console errors are the 401s', w.errors.length > 0 && w.errors.every((e) => /status of 401/.test(e)),
    w.errors.join(' | '));
  await page.type('#key', key);
  await page.keyboard.press('Tab');   // change event: stored, lists reloaded
  await page.waitForFunction(() => document.querySelectorAll('#sampler option').length > 0, {timeout: 20000});
  check('after entering the key the lists load and the message goes',
    await page.$eval('#error', (e) => e.hidden), await page.$eval('#error', (e) => e.textContent));
  await page.reload({waitUntil: 'networkidle0'});
  const errs = w.errors.length;
  await page.waitForFunction(() => document.querySelectorAll('#sampler option').length > 0, {timeout: 20000});
  check('the key survives a reload (localStorage) and is used at once',
    await page.$eval('#key', (e) => e.value) === key && await page.$eval('#error', (e) => e.hidden) &&
    w.errors.length === errs, w.errors.slice(errs).join(' | '));
  await fillForm(page, {prompt: 'a keyed lighthouse', width: 64, height: 64, steps: 4, seed: 9});
  await page.focus('#prompt');   // the keyboard way: Ctrl+Enter in the prompt
  await page.keyboard.down('Control');
  await page.keyboard.press('Enter');
  await page.keyboard.up('Control');
  const img = await galleryImage(page, 1);
  check('with the key a 64x64 generation (Ctrl+Enter in the prompt) completes through the page', img.w === 64 && img.h === 64, JSON.stringify(img));
  const c = await runCurl(page);
  check('"copy as curl" carries the key and works as pasted',
    c.cmd.includes("-H 'Authorization: Bearer " + key + "'") && c.out.status === 'success' &&
    c.out.images[0].image_url === img.src, c.cmd.replace(key, 'KEY') + ' -> ' + JSON.stringify(c.out).slice(0, 200));
  check('every request went to the server\'s own origin (' + w.urls.length + ' requests)', foreign(w).length === 0,
    foreign(w).join(' '));
  await page.screenshot({path: path.join(artifacts, 'webui-key.png'), fullPage: true});
  await ctx.close();
}

// The model picker, whose endpoint (GET /models, issue 16 item 3) may not be
// on this server: the page's requests are intercepted so that GET / lists it
// and GET /models names three models, one not usable; the picker shows the
// other two with the default chosen, and the request carries the chosen one
// as `model`.
async function modelCase(browser) {
  const page = await browser.newPage();
  const w = watch(page);
  const models = {models: [{name: 'one', family: 'sd1', loaded: true, default: false, usable: true, reason: null},
                           {name: 'gone', family: 'sd1', loaded: false, default: false, usable: false,
                            reason: 'cannot open'},
                           {name: 'two', family: 'sdxl', loaded: false, default: true}]};
  let posted = null;
  await page.setRequestInterception(true);
  page.on('request', async (r) => {
    const u = new URL(r.url());
    const json = (status, body) => r.respond({status, contentType: 'application/json', body: JSON.stringify(body)});
    if (u.pathname === '/' && r.method() === 'GET')
      return json(200, {name: 'sdserve', endpoints: ['GET /samplers', 'GET /models', 'GET /loras']});
    if (u.pathname === '/models') return json(200, models);
    if (u.pathname === '/jobs/txt2img') {
      posted = JSON.parse(r.postData());
      return json(400, {status: 'error', code: 'invalid_argument', field: 'model', message: 'a test refusal'});
    }
    return r.continue();
  });
  await page.goto(base + '/ui/', {waitUntil: 'networkidle0'});
  await page.waitForSelector('#model-row:not([hidden])', {timeout: 20000});
  const opts = await page.$$eval('#model option', (os) => os.map((o) => o.value + '=' + o.textContent));
  check('GET / lists GET /models: the model picker shows each usable model, the default chosen',
    opts.join(',') === 'one=one (sd1),two=two (sdxl)' && await page.$eval('#model', (e) => e.value) === 'two',
    opts.join(','));
  await page.select('#model', 'one');
  await fillForm(page, {prompt: 'a model test', width: 64, height: 64, steps: 2});
  await page.click('#generate');
  await page.waitForSelector('#error:not([hidden])', {timeout: 20000});
  check('the chosen model is sent as the request\'s `model` field', posted && posted.model === 'one',
    JSON.stringify(posted));
  check('no seed typed: no seed sent (the server picks one)', posted && !('seed' in posted), JSON.stringify(posted));
  check('no console errors but the 400', w.errors.every((e) => /status of 400/.test(e)), w.errors.join(' | '));
  await page.close();
}

// A server with --lora-dir (tiny-sd1 and its reference LoRAs): the picker
// lists the fitting LoRAs and "Add to prompt" puts A1111's tag in the prompt.
async function loraCase(browser) {
  const page = await browser.newPage();
  const w = watch(page);
  await page.goto(base + '/ui/', {waitUntil: 'networkidle0'});
  await page.waitForSelector('#lora-row:not([hidden])', {timeout: 20000});
  const names = (await page.$$eval('#lora option', (os) => os.map((o) => o.value))).sort();
  check('the LoRA picker lists --lora-dir from GET /loras', names.join(',') ===
    'lora_a_kohya,lora_a_peft,lora_b_kohya,lora_b_peft', names.join(','));
  await fillForm(page, {prompt: 'an astronaut', width: 64, height: 64, steps: 3, seed: 7});
  await page.select('#lora', 'lora_b_kohya');
  await setField(page, 'lora-weight', '0.7');
  await page.click('#lora-add');
  const prompt = await page.$eval('#prompt', (e) => e.value);
  check('"Add to prompt" appends <lora:NAME:WEIGHT>', prompt === 'an astronaut <lora:lora_b_kohya:0.7>', prompt);
  await page.click('#generate');
  const img = await galleryImage(page, 1);
  const text = await page.evaluate(async (u) => new TextDecoder('latin1').decode(await (await fetch(u)).arrayBuffer()),
    img.src);
  check('the LoRA was applied: the image\'s parameters name its hash', img.w === 64 &&
    text.includes('Lora hashes: "lora_b_kohya: '), JSON.stringify(img));
  check('no console errors with LoRAs', w.errors.length === 0, w.errors.join(' | '));
  await page.close();
}

(async () => {
  const args = ['--disable-gpu', '--no-first-run', '--no-default-browser-check', '--disable-extensions'];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  let browser;
  try {
    browser = await puppeteer.launch({executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args});
    await (mode === 'key' ? keyCase(browser) : mode === 'lora' ? loraCase(browser) : mode === 'rate' ? rateCase(browser)
      : openCase(browser));
  } catch (e) {
    check('browser run (' + mode + ')', false, String(e && e.stack || e).split('\n').slice(0, 4).join(' '));
  } finally {
    if (browser) await browser.close();
  }
})();
