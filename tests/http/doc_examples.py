#!/usr/bin/env python3
"""tests/http/doc_examples.py REPO BUILD HOME [SDK] — runs the examples of
the docs that say they run as pasted against README's default server (the
demo model), the way a reader pastes them: test_doc_examples.sh calls it.

The examples are read from the docs at run time, so an edited example is the
one that runs:
  README.md   every ```sh block of "Use the API" and the commands of
              "Generate from the command line";
  docs/KDIFFUSION.md, docs/PROMPTS.md, docs/INPAINTING.md, docs/SDXL.md,
  docs/CLIENTS.md   every ```sh block that calls the default server
              (127.0.0.1:8080 or $BASE), less those that serve a real
              checkpoint's path and the few in SKIP below (each printed as
              "not run"); and CLIENTS.md's Node `openai` SDK snippet (SDK:
              the package's folder, .../node_modules/openai).
A block is cut into commands where bash says one is complete (`bash -n`),
and each runs in HOME (a fresh folder whose build/ is this build and whose
data/demo-model is the tests' demo model) with only what a reader would
change: the port (http://127.0.0.1:8080 -> the test's), `sdserve` ->
build/sdserve, the
placeholders MODEL (-> data/demo-model), ID and NAME (-> the last job id and
image name answered), /tmp/demo (-> a folder of HOME).  A `build/sdserve
serve ...` line (re)starts the server as written (plus --port and --bind
127.0.0.1); before any, it runs as README starts it, `build/sdserve serve`.

Each command must exit 0 and answer what the doc says: its `# {...}` comment
line when it has one (the same JSON), else no error body (`"status":"error"`,
OpenAI's `{"error": ...}`, A1111's `{"detail": ...}`), a 2xx status line for
`curl -I` / `-D -`, a non-empty file for `curl -o`.  A request for a large
picture (a side above 128 px, or none given: the demo model's 512x512 of
20-30 steps takes a minute or more) still running after WAIT seconds passes
when it was accepted — the server has it queued or running, or `sdserve
generate` is printing its steps — and is then stopped (its client hangs up,
which cancels the job), so the test stays short; every other command is
waited for (up to LIMIT seconds).
Prints "ok - " / "FAIL - " lines and "# " notes."""
import json, os, re, shlex, signal, subprocess, sys, time, urllib.request

REPO, BUILD, HOME = sys.argv[1:4]
SDK = sys.argv[4] if len(sys.argv) > 4 else ""
WAIT = float(os.environ.get("SD_DOC_WAIT", "8"))   # long enough to be queued or running, sanitized too
LIMIT = 300
DOCS = ["docs/KDIFFUSION.md", "docs/PROMPTS.md", "docs/INPAINTING.md", "docs/SDXL.md", "docs/CLIENTS.md"]
# (file, text the block starts with): blocks that need more than the demo
# server has, besides those that serve a real checkpoint's path
# (`sdserve serve --model /...`); the reason is printed
SKIP = [
    ("docs/PROMPTS.md", "sdserve serve --model MODEL --embeddings-dir",
     "embeddings of a real checkpoint's width (768); tests/http/test_embeddings.sh"),
]
def ok(msg):
    print("ok - " + msg, flush=True)


def fail(msg, why):
    print("FAIL - %s: %s" % (msg, why), flush=True)


def note(msg):
    print("# " + msg, flush=True)


def fenced(path):
    """[(line, info, text)] of the ``` blocks of a markdown file."""
    return fenced_text(open(os.path.join(REPO, path)).read())


def section(path, start, end):
    text = open(os.path.join(REPO, path)).read()
    a = text.index(start)
    b = text.index(end, a)
    return text[:a].count("\n"), text[a:b]


def blocks():
    """[(where, text)] of the examples to run, in order."""
    out = []
    base, use = section("README.md", "\n## Use the API", "\n## Generate from the command line")
    for line, info, text in fenced_text(use):
        if info == "sh":
            out.append(("README.md:%d" % (base + line), text))
    base, cli = section("README.md", "\n## Generate from the command line", "\n## Speed and precision")
    ind = [l[4:] for l in cli.split("\n") if l.startswith("    build/sdserve ")]
    out.append(("README.md:%d" % (base + cli.split("\n").index("    " + ind[0]) + 1), "\n".join(ind)))
    for path in DOCS:
        for line, info, text in fenced(path):
            if info not in ("", "sh") or not re.search(r"127\.0\.0\.1:8080|\$BASE", text):
                continue
            skip = [r for f, start, r in SKIP if f == path and text.startswith(start)]
            if re.search(r"^(build/)?sdserve serve --model /", text, re.M):
                skip = ["serves a real checkpoint's path"]
            if skip:
                note("not run: %s:%d (%s)" % (path, line, skip[0]))
                continue
            out.append(("%s:%d" % (path, line), text))
    return out


def fenced_text(text):
    """[(line, info, text)] of the ``` blocks of a markdown text (line: 1-based)."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        if lines[i].startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append((i + 1, lines[i][3:].strip(), "\n".join(lines[i + 1:j])))
            i = j
        i += 1
    return out


def commands(text):
    """[(command, expected-comment or None)]: lines joined until bash -n
    takes them whole (continuations, quotes, heredocs)."""
    out, cur = [], []
    for l in text.split("\n"):
        if not cur and (not l.strip() or l.lstrip().startswith("#")):
            if l.startswith("# {") and out:
                out[-1] = (out[-1][0], l[2:])
            continue
        cur.append(l)
        src = "\n".join(cur)
        r = subprocess.run(["bash", "-n"], input=src + "\n", capture_output=True, text=True)
        if r.returncode == 0 and not r.stderr and not src.endswith("\\"):
            out.append((src, None))
            cur = []
    if cur:
        out.append(("\n".join(cur), None))
    return out


class Server:
    def __init__(self):
        self.proc, self.port, self.log = None, None, None

    def start(self, words):
        self.stop()
        s = __import__("socket").socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.log = open(os.path.join(HOME, "..", "server-%d.log" % self.port), "w")
        self.proc = subprocess.Popen(words + ["--port", str(self.port), "--bind", "127.0.0.1"], cwd=HOME,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(600):
            if self.health().get("status") == "ok":
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        return False

    def health(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % self.port, timeout=5) as r:
                return json.load(r)
        except Exception:
            return {}

    def idle(self, seconds):
        for _ in range(int(seconds * 10)):
            h = self.health()
            if h.get("running") == 0 and h.get("queue_depth") == 0:
                return True
            time.sleep(0.1)
        return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
            self.proc = None
            return rc
        self.proc = None
        return 0


def json_values(text):
    """The JSON values printed one after another, or None when the text is not that."""
    dec, i, vals = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return vals
        try:
            v, i = dec.raw_decode(text, i)
        except ValueError:
            return None
        vals.append(v)


def error_in(v):
    if isinstance(v, dict):
        if v.get("status") == "error" or "error" in v or "detail" in v:
            return json.dumps(v)[:300]
    return None


def main():
    srv = Server()
    last = {"ID": None, "NAME": None}
    try:
        if not srv.start([BUILD + "/sdserve", "serve"]):
            fail("README's server (build/sdserve serve) starts", "see the server log")
            return
        ok("README's server (build/sdserve serve, on a free port) ready")
        todo = blocks()
        if SDK:
            for line, info, text in fenced("docs/CLIENTS.md"):
                if info == "js":
                    todo.append(("docs/CLIENTS.md:%d" % line, "node:" + text))
        for where, text in todo:
            if text.startswith("node:"):
                run_node(srv, where, text[5:])
                continue
            env = {}           # NAME=value lines of the block hold for its later commands
            for cmd, expect in commands(text):
                run(srv, where, cmd, expect, last, env)
        note("not run: docs/CLIENTS.md's Python snippet (no `openai` Python package in Debian; "
             "its requests are the Node snippet's and the By hand curls')")
    finally:
        rc = srv.stop()
        if rc == 0:
            ok("the server stops cleanly on SIGTERM")
        else:
            fail("the server stops cleanly on SIGTERM", "status %s" % rc)


def adapt(cmd, srv, last):
    c = cmd.replace("http://127.0.0.1:8080", "http://127.0.0.1:%d" % srv.port)
    c = re.sub(r"^sdserve ", "build/sdserve ", c, flags=re.M)
    c = c.replace("--model MODEL", "--model data/demo-model")
    c = c.replace("/tmp/demo", os.path.join(HOME, "cli-demo"))
    for key in ("ID", "NAME"):
        if re.search(r"/(jobs|images)/%s\b" % key, c):
            if not last[key]:
                return None, "no %s answered before it" % key
            c = re.sub(r"/(jobs|images)/%s\b" % key, lambda m: "/%s/%s" % (m.group(1), last[key]), c)
    return c, None


def large(c):
    """True when c asks for a picture larger than 128 px a side (none given = the
    model's 512x512); img2img and edits start from the examples' 64x64 fox.png,
    and an async POST answers at once."""
    if not re.search(r"txt2img|/v1/images/generations|sdserve generate|snippet\.mjs", c):
        return False
    if re.search(r"/jobs/(txt2img|img2img)|--init-image", c):
        return False
    sides = re.findall(r"""(?:width|height)["']?\s*[:=]\s*(\d+)|-[WH] (\d+)|size["']?\s*[:=]\s*["'](\d+)x(\d+)""", c)
    sides = [int(x) for t in sides for x in t if x]
    return not sides or max(sides) > 128


def cli_first_step(p, name):
    """Waits for a `sdserve generate`'s first "step N/M" line on stderr: then
    stops it and says ok ((True, stderr so far)); (False, stderr so far)
    when it ends first, to be judged as any command's end."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(p.stderr, selectors.EVENT_READ)
    err, t0 = "", time.time()
    while time.time() - t0 < LIMIT:
        if not sel.select(timeout=1):
            continue
        line = p.stderr.readline()
        if not line:   # it ended (or closed stderr) before a step
            break
        err += line
        if re.search(r"step \d+/\d+", line):
            os.killpg(p.pid, signal.SIGTERM)
            p.communicate()
            ok("%s (accepted, generating after %.0f s: stopped there)" % (name, time.time() - t0))
            return True, err
    sel.close()
    if time.time() - t0 >= LIMIT:
        os.killpg(p.pid, signal.SIGTERM)
        p.communicate()
        fail(name, "no step printed in %d s: %s" % (LIMIT, err[-300:]))
        return True, err
    return False, err


def run(srv, where, cmd, expect, last, env):
    short = " ".join(cmd.split())
    short = short if len(short) <= 110 else short[:107] + "..."
    name = "%s: %s" % (where, short)
    m = re.match(r"build/sdserve serve(.*)$", cmd.strip())
    if m:
        if srv.start([BUILD + "/sdserve", "serve"] + shlex.split(m.group(1), comments=True)):
            ok(name + " (started on a free port)")
        else:
            fail(name, "the server did not become ready")
        return
    c, why = adapt(cmd, srv, last)
    if c is None:
        fail(name, why)
        return
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)$", c.strip())
    if m:
        env[m.group(1)] = m.group(2)
        ok(name + " (kept for the block's next commands)")
        return
    p = subprocess.Popen(["bash", "-c", c], cwd=HOME, env=dict(os.environ, **env), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    big = large(c)
    cli = c.startswith("build/sdserve generate")
    try:
        if big and cli:
            # sdserve generate is accepted once it prints a step: that is
            # waited for (up to LIMIT: loading and the first step take far
            # longer than WAIT under the sanitizers on a busy machine)
            done, err = cli_first_step(p, name)
            if done:
                return
            out, rest = p.communicate(timeout=LIMIT)   # it ended before a step: judged as any command
            err += rest
        else:
            out, err = p.communicate(timeout=WAIT if big else LIMIT)
    except subprocess.TimeoutExpired:
        h = srv.health()
        os.killpg(p.pid, signal.SIGTERM)
        out, err = p.communicate()
        busy = h.get("running", 0) + h.get("queue_depth", 0) > 0
        if big and ((cli and re.search(r"step \d+/\d+", err)) or (not cli and busy)):
            ok("%s (accepted, still %s after %g s: stopped there)"
               % (name, "generating" if cli else "queued or running", WAIT))
        else:
            fail(name, "still running after %g s%s: health %s, stderr %s"
                 % (WAIT if big else LIMIT, " and not accepted" if big else "", h, err[-300:]))
        if not srv.idle(60):
            note("the server was still busy 60 s after that")
        return
    if p.returncode != 0:
        fail(name, "exit status %d: %s %s" % (p.returncode, out[-300:], err[-300:]))
        return
    for v in json_values(out) or []:
        if isinstance(v, dict):
            if v.get("id"):
                last["ID"] = v["id"]
            for im in v.get("images", []) if isinstance(v.get("images"), list) else []:
                if isinstance(im, dict) and "image_url" in im:
                    last["NAME"] = im["image_url"].rsplit("/", 1)[-1]
    if expect is not None:
        want, got = json_values(expect), json_values(out)
        if want and got == want:
            ok(name + " (answers the doc's comment)")
        else:
            fail(name, "answered %s, the doc says %s" % (out[:300], expect[:300]))
        return
    status = re.findall(r"^HTTP/[\d.]+ (\d+)", out, re.M)
    if re.search(r"curl -s?I |curl .*-D - ", c):
        if status and status[-1].startswith("2"):
            ok("%s (%s)" % (name, status[-1]))
        else:
            fail(name, "status %s: %s" % (status, out[:300]))
        return
    vals = json_values(out)
    bad = [e for e in map(error_in, vals or []) if e]
    if vals is None and re.search(r'"status":"error"|^\{"error":|"detail":', out):
        bad = [out[:300]]
    if bad:
        fail(name, "answered an error: " + bad[0])
        return
    mo = re.search(r"curl [^|]*-o (\S+)", c)
    if mo and not os.path.getsize(os.path.join(HOME, mo.group(1))):
        fail(name, "wrote an empty %s" % mo.group(1))
        return
    ok(name)


def run_node(srv, where, text):
    js = text.replace("http://127.0.0.1:8080", "http://127.0.0.1:%d" % srv.port).replace('"MODEL"', '"demo-model"')
    path = os.path.join(HOME, "snippet.mjs")
    open(path, "w").write(js)
    link = os.path.join(HOME, "node_modules")       # SDK is .../node_modules/openai
    if not os.path.exists(link):
        os.symlink(os.path.dirname(SDK), link)
    # the snippet, on one line, as a comment: what large() reads its size from
    run(srv, where, "node snippet.mjs  # " + " ".join(text.split()), None, {"ID": None, "NAME": None}, {})


main()   # the FAIL lines count; the exit status is non-zero only when the runner itself broke
