// tests/http/openai_sdk.mjs — drives sdserve with the official `openai` npm
// package (test_openai_sdk.sh installs it and starts the server):
//   node openai_sdk.mjs SDK_DIR BASE_URL KEY   (SDK_DIR: .../node_modules/openai)
// Prints one "ok - ..." or "FAIL - ...: why" line per check, like lib.sh.
import { createRequire } from "node:module";
import { deflateSync, inflateSync } from "node:zlib";

const [sdkDir, base, key] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const OpenAI = require(sdkDir);
const { toFile } = OpenAI;

let failed = 0;
const ok = (name) => console.log(`ok - ${name}`);
const fail = (name, why) => { failed++; console.log(`FAIL - ${name}: ${why}`); };
const check = (name, cond, why) => (cond ? ok(name) : fail(name, why));

// "WxH" of a PNG from its IHDR, or "not-png"
function pngSize(buf) {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (buf.length < 24 || !buf.subarray(0, 8).equals(sig) || buf.toString("latin1", 12, 16) !== "IHDR") return "not-png";
  return `${buf.readUInt32BE(16)}x${buf.readUInt32BE(20)}`;
}

// A w x h RGB PNG (a gradient), for images.edit; with hole [x0, y0, x1, y1]:
// RGBA, the hole fully transparent, opaque elsewhere (an OpenAI mask).
function makePng(w, h, hole) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b) => { let c = 0xffffffff; for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = hole ? 6 : 2;
  const rows = [];
  for (let y = 0; y < h; y++) {
    rows.push(0);
    for (let x = 0; x < w; x++) {
      rows.push((x * 255 / w) | 0, (y * 255 / h) | 0, 128);
      if (hole) rows.push(x >= hole[0] && y >= hole[1] && x < hole[2] && y < hole[3] ? 0 : 255);
    }
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.from(rows))), chunk("IEND", Buffer.alloc(0))]);
}

// The RGB samples of an 8-bit RGB PNG (the server's output), unfiltered.
function pngPixels(buf) {
  const w = buf.readUInt32BE(16), h = buf.readUInt32BE(20), bpp = 3, stride = w * 3;
  const idat = [];
  for (let p = 8; p < buf.length;) {
    const n = buf.readUInt32BE(p), t = buf.toString("latin1", p + 4, p + 8);
    if (t === "IDAT") idat.push(buf.subarray(p + 8, p + 8 + n));
    p += 12 + n;
  }
  const raw = inflateSync(Buffer.concat(idat)), out = Buffer.alloc(h * stride);
  for (let y = 0, i = 0; y < h; y++, i += stride + 1) {
    const f = raw[i], row = out.subarray(y * stride, (y + 1) * stride), prev = y ? out.subarray((y - 1) * stride, y * stride) : null;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? row[x - bpp] : 0, b = prev ? prev[x] : 0, c = prev && x >= bpp ? prev[x - bpp] : 0;
      let v = raw[i + 1 + x];
      if (f === 1) v += a; else if (f === 2) v += b; else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) { const q = a + b - c, pa = Math.abs(q - a), pb = Math.abs(q - b), pc = Math.abs(q - c); v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c; }
      row[x] = v & 255;
    }
  }
  return { w, h, px: out };
}

const client = new OpenAI({ baseURL: base + "/v1", apiKey: key, maxRetries: 0 });
const b64 = (item) => Buffer.from(item.b64_json, "base64");
const prompt = "a lighthouse at dusk";

async function step(name, fn) {
  try { await fn(); } catch (e) { fail(name, `threw ${e && e.constructor && e.constructor.name}: ${e && e.message}`); }
}

await step("models.list", async () => {
  const list = await client.models.list();
  const ids = list.data.map((m) => m.id);
  check("models.list gives this server's model (object model, owned_by sdserve)",
    ids.length >= 1 && list.data.every((m) => m.object === "model" && m.owned_by === "sdserve"), JSON.stringify(list.data));
  const m = await client.models.retrieve(ids[0]);
  check("models.retrieve(id) gives it back", m.id === ids[0], JSON.stringify(m));
});

let a;
await step("generate b64_json (default)", async () => {
  const r = await client.images.generate({ prompt, size: "64x64", seed: 42, steps: 2 });
  a = b64(r.data[0]);
  check("images.generate: b64_json by default, a 64x64 PNG", r.data.length === 1 && pngSize(a) === "64x64",
    `${r.data.length} items, ${pngSize(a)}`);
  check("images.generate: created is unix seconds", Math.abs(r.created - Date.now() / 1000) < 600, `created ${r.created}`);
  check("images.generate: output_format and size echoed", r.output_format === "png" && r.size === "64x64",
    `${r.output_format} ${r.size}`);
});

await step("generate dall-e-2 with the same seed", async () => {
  const r = await client.images.generate({ model: "dall-e-2", prompt, size: "64x64", seed: 42, steps: 2,
    response_format: "b64_json" });
  check("same seed (model dall-e-2: the default model) -> the same bytes", a && b64(r.data[0]).equals(a),
    "bytes differ");
});

await step("generate n=2", async () => {
  const r = await client.images.generate({ model: "gpt-image-1", prompt, size: "96x64", n: 2, seed: 42, steps: 2 });
  const sizes = r.data.map((d) => pngSize(b64(d)));
  check("n: 2 -> two 96x64 PNGs", sizes.length === 2 && sizes.every((s) => s === "96x64"), JSON.stringify(sizes));
  const alone = await client.images.generate({ prompt, size: "96x64", seed: 43, steps: 2 });
  check("image 2 of seed 42 equals seed 43 alone", b64(r.data[1]).equals(b64(alone.data[0])), "bytes differ");
});

await step("generate url", async () => {
  const r = await client.images.generate({ prompt, size: "96x64", response_format: "url", seed: 7, steps: 2 });
  const url = r.data[0].url;
  const got = url ? Buffer.from(await (await fetch(url)).arrayBuffer()) : Buffer.alloc(0);
  check("response_format url: the URL serves a 96x64 PNG", !r.data[0].b64_json && pngSize(got) === "96x64",
    `url ${url}, ${pngSize(got)}`);
});

// null = not given for every optional field (the SDKs send null for some they omit)
await step("generate with nulls", async () => {
  const r = await client.images.generate({ prompt, size: "64x64", seed: 42, steps: 2, n: null, response_format: null,
    quality: null, style: null, user: null, background: null, moderation: null, output_compression: null,
    output_format: null, partial_images: null, stream: null, model: null });
  check("images.generate with null optional fields = without them (the same bytes)",
    r.data.length === 1 && a && b64(r.data[0]).equals(a) && r.quality === "auto", `${r.data.length} items, quality ${r.quality}`);
  const n = await client.images.generate({ prompt, size: null, seed: 42, steps: 1 });
  const got = pngSize(b64(n.data[0]));
  check("size: null -> the model's native size, as without size", got === n.size && /^\d+x\d+$/.test(got), `${got} size ${n.size}`);
  const q = await client.images.generate({ prompt, size: "64x64", seed: 42, steps: 2, quality: "low", partial_images: 2,
    stream: false });
  check("partial_images 2 with stream false is accepted", q.data.length === 1, `${q.data.length} items`);
});

await step("edit", async () => {
  const file = await toFile(makePng(40, 24), "in.png", { type: "image/png" });
  const r = await client.images.edit({ image: file, prompt: "the same in winter", size: "64x48", steps: 2, seed: 1 });
  check("images.edit (toFile PNG, size 64x48) -> a 64x48 PNG", pngSize(b64(r.data[0])) === "64x48",
    pngSize(b64(r.data[0])));
  const r2 = await client.images.edit({ image: await toFile(makePng(40, 24), "in.png", { type: "image/png" }),
    prompt: "the same in winter", steps: 2, strength: 0.5 });
  check("images.edit without size -> the image's own 40x24", pngSize(b64(r2.data[0])) === "40x24" &&
    r2.size === "40x24", `${pngSize(b64(r2.data[0]))} size ${r2.size}`);
});

await step("wrong key", async () => {
  const bad = new OpenAI({ baseURL: base + "/v1", apiKey: "wrong-key-000000000000", maxRetries: 0 });
  try {
    await bad.images.generate({ prompt, size: "64x64" });
    fail("a wrong key raises AuthenticationError", "no error");
  } catch (e) {
    check("a wrong key raises AuthenticationError (401, code invalid_api_key)",
      e instanceof OpenAI.AuthenticationError && e.status === 401 && e.code === "invalid_api_key",
      `${e.constructor.name} ${e.status} ${e.code}`);
  }
});

// Refusals decided from the headers (a wrong key, an unknown path) while a
// big upload is still on its way: the SDK must get the answer (its own
// error class), not a reset connection (APIConnectionError), every time.
await step("refused big uploads", async () => {
  const big = Buffer.concat([makePng(40, 24), Buffer.alloc(3 << 20)]);
  const bad = new OpenAI({ baseURL: base + "/v1", apiKey: "wrong-key-000000000000", maxRetries: 0 });
  const seen = [];
  for (let i = 0; i < 3; i++) {
    try { await bad.images.edit({ image: await toFile(big, "big.png", { type: "image/png" }), prompt }); seen.push("no error"); }
    catch (e) { seen.push(e.constructor.name); }
  }
  check("a wrong key with a 3 MiB upload raises AuthenticationError (3 of 3), not a connection error",
    seen.every((n) => n === "AuthenticationError"), seen.join(","));
  seen.length = 0;
  for (let i = 0; i < 3; i++) {
    try { await client.images.createVariation({ image: await toFile(big, "big.png", { type: "image/png" }) }); seen.push("no error"); }
    catch (e) { seen.push(e.constructor.name + (e.status ? " " + e.status : "")); }
  }
  check("images.createVariation (not served) with a 3 MiB upload raises NotFoundError (3 of 3)",
    seen.every((n) => n === "NotFoundError 404"), seen.join(","));
  const huge = Buffer.concat([makePng(40, 24), Buffer.alloc(21 << 20)]);   // over --max-body-mb 20
  let got;
  try { await client.images.edit({ image: await toFile(huge, "huge.png", { type: "image/png" }), prompt }); got = "no error"; }
  catch (e) { got = `${e.constructor.name} ${e.status} ${e.error && e.error.message}`; }
  check("images.edit with a 21 MiB image (over --max-body-mb) gets the 413 and its message, not a connection error",
    /^APIError 413 .*larger than the limit/.test(got), got);
});

await step("bad n", async () => {
  try {
    await client.images.generate({ prompt, n: 0 });
    fail("n: 0 raises BadRequestError", "no error");
  } catch (e) {
    check("n: 0 raises BadRequestError with param 'n'",
      e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "n" && e.type === "invalid_request_error",
      `${e.constructor.name} ${e.status} param ${e.param} type ${e.type}`);
  }
});

await step("mask", async () => {
  const png = makePng(16, 16);
  try {
    await client.images.edit({ image: await toFile(png, "a.png", { type: "image/png" }),
      mask: await toFile(png, "m.png", { type: "image/png" }), prompt });
    fail("a mask without alpha raises BadRequestError", "no error");
  } catch (e) {
    check("images.edit with a mask without alpha raises BadRequestError with param 'mask'",
      e instanceof OpenAI.BadRequestError && e.param === "mask", `${e.constructor.name} param ${e.param}`);
  }
});

await step("edit with an RGBA mask", async () => {
  const hole = [16, 12, 40, 30], img = makePng(56, 40), mask = makePng(56, 40, hole);
  const r = await client.images.edit({ image: await toFile(img, "in.png", { type: "image/png" }),
    mask: await toFile(mask, "mask.png", { type: "image/png" }), prompt: "a round window", size: "56x40", steps: 2, seed: 3 });
  const out = b64(r.data[0]), got = pngPixels(out), want = pngPixels(img);
  let same = 0, opaque = 0, changed = 0;
  for (let y = 0; y < 40; y++)
    for (let x = 0; x < 56; x++) {
      const i = 3 * (y * 56 + x), inHole = x >= hole[0] && y >= hole[1] && x < hole[2] && y < hole[3];
      const eq = got.px[i] === want.px[i] && got.px[i + 1] === want.px[i + 1] && got.px[i + 2] === want.px[i + 2];
      if (inHole) changed += !eq; else { opaque++; same += eq; }
    }
  check("images.edit with an RGBA mask (toFile) -> a 56x40 PNG", pngSize(out) === "56x40" && r.size === "56x40",
    `${pngSize(out)} size ${r.size}`);
  check("images.edit with an RGBA mask: every opaque-mask pixel equals the input, the transparent ones are repainted",
    same === opaque && changed > 0, `${same}/${opaque} opaque pixels equal, ${changed} transparent ones changed`);
});

await step("unknown model id", async () => {
  try {
    await client.models.retrieve("no-such-model");
    fail("models.retrieve of an unknown id raises NotFoundError", "no error");
  } catch (e) {
    check("models.retrieve of an unknown id raises NotFoundError", e instanceof OpenAI.NotFoundError,
      `${e.constructor.name} ${e.status}`);
  }
});

// docs/CLIENTS.md's Node example (model: a name from GET /v1/models), at 64x64
// and 2 steps instead of 512x512 and the default 30 (80 s on the demo model)
await step("CLIENTS.md example", async () => {
  const model = (await client.models.list()).data[0].id;
  const r = await client.images.generate({
    model, prompt: "a lighthouse at dusk, oil painting", size: "64x64", n: 1,
    seed: 42, steps: 2,
  });
  check("docs/CLIENTS.md Node example (64x64, 2 steps): data[0].b64_json is a PNG", pngSize(b64(r.data[0])) === "64x64",
    pngSize(b64(r.data[0])));
});

process.exit(failed ? 1 : 0);
