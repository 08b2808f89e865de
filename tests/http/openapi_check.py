#!/usr/bin/env python3
"""tests/http/openapi_check.py DOC.json METHOD PATH-TEMPLATE STATUS BODY.json [HEADERS.txt]
Checks one real response against the OpenAPI 3.1 document the server serves:
the status must be documented for that operation (directly or through a
$ref to components/responses), the JSON body must match the schema given for
it (type, required, properties, items, enum, bounds, pattern, $ref — the
subset the document uses) and, when the response headers are given (curl -D),
every header the document marks required must be there.  Prints "ok" or the
first mismatch with its JSON path."""
import json, re, sys

def resolve(doc, s):
    while isinstance(s, dict) and "$ref" in s:
        node = doc
        for part in s["$ref"].lstrip("#/").split("/"):
            node = node[part]
        s = node
    return s

def type_ok(v, t):
    if t == "null": return v is None
    if t == "string": return isinstance(v, str)
    if t == "boolean": return isinstance(v, bool)
    if t == "integer": return isinstance(v, int) and not isinstance(v, bool)
    if t == "number": return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "array": return isinstance(v, list)
    if t == "object": return isinstance(v, dict)
    raise ValueError("schema type %r not handled" % t)

def check(doc, s, v, path):
    s = resolve(doc, s)
    t = s.get("type")
    if t is not None:
        ts = t if isinstance(t, list) else [t]
        if not any(type_ok(v, x) for x in ts): return "%s: %r is not of type %s" % (path, v, t)
    if v is None: return None
    if "enum" in s and v not in s["enum"]: return "%s: %r not in %r" % (path, v, s["enum"])
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in s and v < s["minimum"]: return "%s: %r < minimum %r" % (path, v, s["minimum"])
        if "maximum" in s and v > s["maximum"]: return "%s: %r > maximum %r" % (path, v, s["maximum"])
        if "exclusiveMinimum" in s and v <= s["exclusiveMinimum"]: return "%s: %r <= exclusiveMinimum" % (path, v)
    if isinstance(v, str) and "pattern" in s and not re.search(s["pattern"], v):
        return "%s: %r does not match %s" % (path, v, s["pattern"])
    if isinstance(v, dict):
        for k in s.get("required", []):
            if k not in v: return "%s: required key %r missing" % (path, k)
        props = s.get("properties", {})
        if s.get("additionalProperties") is False:
            for k in v:
                if k not in props: return "%s: key %r not in the schema" % (path, k)
        for k, sub in props.items():
            if k in v:
                e = check(doc, sub, v[k], path + "." + k)
                if e: return e
    if isinstance(v, list):
        if "minItems" in s and len(v) < s["minItems"]: return "%s: fewer than %d items" % (path, s["minItems"])
        if "maxItems" in s and len(v) > s["maxItems"]: return "%s: more than %d items" % (path, s["maxItems"])
        if "items" in s:
            for i, x in enumerate(v):
                e = check(doc, s["items"], x, "%s[%d]" % (path, i))
                if e: return e
    return None

doc = json.load(open(sys.argv[1]))
method, tmpl, status, body = sys.argv[2].lower(), sys.argv[3], sys.argv[4], sys.argv[5]
op = doc["paths"].get(tmpl, {}).get(method)
if op is None: print("operation %s %s not documented" % (method.upper(), tmpl)); sys.exit()
resp = resolve(doc, op["responses"].get(status))
if resp is None: print("status %s not documented for %s %s" % (status, method.upper(), tmpl)); sys.exit()
if len(sys.argv) > 6:
    got = {l.split(":", 1)[0].strip().lower() for l in open(sys.argv[6], errors="replace") if ":" in l}
    for h, spec in resp.get("headers", {}).items():
        if spec.get("required") and h.lower() not in got:
            print("required header %s missing from the %s answer" % (h, status)); sys.exit()
content = resp.get("content", {}).get("application/json")
if content is None: print("no JSON schema documented for %s %s %s" % (method.upper(), tmpl, status)); sys.exit()
try:
    v = json.load(open(body))
except Exception as e:
    print("body is not JSON: %s" % e); sys.exit()
e = check(doc, content["schema"], v, "$")
print(e or "ok")
