/* params.c — collecting and validating request fields (see params.h).
 *
 * The rules come from the product contract: integers may arrive as text or
 * JSON numbers, "512.0" is an integer, "512.5", "abc" and "1e400" are not;
 * names, types, ranges and defaults come from the field table
 * (jobs/request.c), seed -1/empty/absent = random.  Unknown and repeated
 * fields are refused so that typos do not pass silently. */
#include "params.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <microhttpd.h>

void params_bag_init(param_bag *b) { memset(b, 0, sizeof *b); }

void params_bag_free(param_bag *b)
{
    for (int i = 0; i < b->n; i++) {
        free(b->v[i].name);
        free(b->v[i].val);
    }
    free(b->v);
    memset(b, 0, sizeof *b);
}

const param *params_bag_get(const param_bag *b, const char *name)
{
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->v[i].name, name)) return &b->v[i];
    return NULL;
}

int params_bag_move(param_bag *dst, param *p, const char *name, sd_err *err)
{
    if (params_bag_add(dst, name, p->kind, NULL, 0, 1, err)) return -1;
    param *q = &dst->v[dst->n - 1];
    param empty = *q;
    q->val = p->val, q->len = p->len, q->cap = p->cap;
    p->val = empty.val, p->len = empty.len, p->cap = empty.cap;
    dst->total += q->len;
    return 0;
}

/* Quotes a client-supplied name of len bytes safely for messages (printable
 * ASCII only, other bytes and NUL as \xNN, cut). */
static void field_label_n(const char *name, size_t len, char *buf, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < len && k + 5 < size; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') buf[k++] = (char)c;
        else k += (size_t)snprintf(buf + k, size - k, "\\x%02x", c);
        if (k >= 48) { k += (size_t)snprintf(buf + k, size - k, "..."); break; }
    }
    buf[k < size ? k : size - 1] = 0;
}

static void field_label(const char *name, char *buf, size_t size) { field_label_n(name, strlen(name), buf, size); }

/* A field name holding a NUL byte (form "prompt%00junk", JSON "prompt\u0000junk")
 * is no field of ours: refused as unknown, never cut at the NUL. */
static int nul_name_error(const char *name, size_t len, sd_err *err)
{
    char label[64];
    field_label_n(name, len, label, sizeof label);
    return sd_errf(err, SD_EINVAL, label, "unknown field '%s': a field name cannot contain a NUL character", label);
}

int params_bag_add(param_bag *b, const char *name, pv_kind kind, const char *data, size_t len, int first,
                   sd_err *err)
{
    char label[64];
    if (!name)   /* libmicrohttpd's multipart parser gives no name when it cannot read one (e.g. a NUL in it) */
        return sd_errf(err, SD_EINVAL, "", "unknown field: a form-data part has no readable name (none given, "
                       "or one holding a NUL character)");
    param *p = NULL;
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->v[i].name, name)) p = &b->v[i];
    if (p && first) {
        field_label(name, label, sizeof label);
        return sd_errf(err, SD_EINVAL, label, "field '%s' appears more than once; send each field once", label);
    }
    if (!p) {
        int max = b->max_fields > 0 ? b->max_fields : PARAMS_MAX_FIELDS;
        if (b->n >= max) return sd_errf(err, SD_EINVAL, "", "too many fields in the request (at most %d)", max);
        if (b->n == b->cap) {
            int nc = b->cap ? b->cap * 2 : 8;
            param *nv = realloc(b->v, (size_t)nc * sizeof *nv);
            if (!nv) return sd_errf(err, SD_ENOMEM, "", "out of memory reading the request");
            b->v = nv;
            b->cap = nc;
        }
        p = &b->v[b->n];
        memset(p, 0, sizeof *p);
        p->name = strdup(name);
        p->val = malloc(1);
        if (!p->name || !p->val) {
            free(p->name);
            free(p->val);
            return sd_errf(err, SD_ENOMEM, "", "out of memory reading the request");
        }
        p->val[0] = 0;
        p->cap = 1;
        p->kind = kind;
        b->n++;
    }
    if (len) {
        if (p->len + len + 1 > p->cap) {
            size_t nc = p->cap * 2;
            while (nc < p->len + len + 1) nc *= 2;
            char *nv = realloc(p->val, nc);
            if (!nv) return sd_errf(err, SD_ENOMEM, "", "out of memory reading the request");
            p->val = nv;
            p->cap = nc;
        }
        memcpy(p->val + p->len, data, len);
        p->len += len;
        p->val[p->len] = 0;
        b->total += len;
    }
    return 0;
}

/* Deepest nesting of [ and { outside strings; stops counting at limit+1. */
static int json_depth(const char *s, size_t len, int limit)
{
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max) max = depth;
            if (max > limit) return max;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return max;
}

int params_bag_from_urlencoded(param_bag *b, char *body, size_t len, sd_err *err)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && body[j] != '&') j++;
        if (j > i) {
            char *seg = body + i;
            seg[j - i] = 0;   /* overwrites the '&' (or the buffer's NUL) */
            char *eq = memchr(seg, '=', j - i);
            char *val = "";
            if (eq) {
                *eq = 0;
                val = eq + 1;
            }
            for (char *p = seg; *p; p++) if (*p == '+') *p = ' ';
            for (char *p = val; *p; p++) if (*p == '+') *p = ' ';
            size_t kl = MHD_http_unescape(seg);
            size_t vl = *val ? MHD_http_unescape(val) : 0;
            if (kl != strlen(seg)) return nul_name_error(seg, kl, err);
            if (params_bag_add(b, seg, PV_TEXT, val, vl, 1, err)) return -1;
            b->spaces_are_plus = 1;
        }
        i = j + 1;
    }
    return 0;
}

/* The object key whose value ends near byte `pos` of a broken JSON text:
 * the last "name" followed by ':' before pos (a best effort for messages). */
static void json_key_before(const char *s, size_t len, size_t pos, char *key, size_t size)
{
    key[0] = 0;
    if (pos > len) pos = len;
    size_t i = pos;
    while (i > 0 && s[i - 1] != ':' && s[i - 1] != ',' && s[i - 1] != '{') i--;
    if (i == 0 || s[i - 1] != ':') return;
    i--;
    while (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t' || s[i - 1] == '\n' || s[i - 1] == '\r')) i--;
    if (i == 0 || s[i - 1] != '"') return;
    size_t end = --i;
    while (i > 0 && s[i - 1] != '"') i--;
    if (i == 0) return;
    size_t n = end - i, k = 0;
    for (size_t j = 0; j < n && k + 1 < size; j++)
        if (s[i + j] >= 0x20 && s[i + j] < 0x7f && s[i + j] != '\\') key[k++] = s[i + j];
    key[k] = 0;
}

/* jansson refuses a key holding \u0000: find that key's string token, which
 * ends just before byte `pos`, and refuse it as a NUL field name. */
static int json_nul_key_error(const char *s, size_t len, size_t pos, sd_err *err)
{
    if (pos > len) pos = len;
    size_t end = pos;
    while (end > 0 && s[end - 1] != '"') end--;
    size_t start = end ? end - 1 : 0;
    while (start > 0) {
        start--;
        size_t bs = 0;
        while (start >= bs + 1 && s[start - bs - 1] == '\\') bs++;
        if (s[start] == '"' && bs % 2 == 0) break;
    }
    json_error_t je;
    json_t *k = end > start + 1 ? json_loadb(s + start, end - start, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je) : NULL;
    int rc = json_is_string(k) ? nul_name_error(json_string_value(k), json_string_length(k), err)
                               : nul_name_error("", 0, err);
    json_decref(k);
    return rc;
}

int params_bag_from_json(param_bag *b, const char *body, size_t len, sd_err *err)
{
    if (json_depth(body, len, PARAMS_MAX_JSON_DEPTH) > PARAMS_MAX_JSON_DEPTH)
        return sd_errf(err, SD_EINVAL, "", "JSON body is nested deeper than %d levels; send one flat object of fields",
                       PARAMS_MAX_JSON_DEPTH);
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root && json_error_code(&je) == json_error_null_byte_in_key)
        return json_nul_key_error(body, len, (size_t)je.position, err);
    if (!root) {
        /* jansson names a duplicated key in its message; for a bad value, name the key before it. */
        char key[64] = "";
        /* (bytes after a whole object are no field's fault) */
        if (json_error_code(&je) != json_error_end_of_input_expected)
            json_key_before(body, len, (size_t)je.position, key, sizeof key);
        /* \u0000 in a value: said as the form and multipart bodies say it, not as jansson's flag */
        if (json_error_code(&je) == json_error_null_character && key[0])
            return sd_errf(err, SD_EINVAL, key, "%s contains a NUL character (\\u0000)", key);
        return sd_errf(err, SD_EINVAL, key, "request body is not valid JSON: %s (line %d, column %d)%s%s%s", je.text,
                       je.line, je.column, key[0] ? " in the value of '" : "", key, key[0] ? "'" : "");
    }
    if (!json_is_object(root)) {
        const char *what = json_is_array(root) ? "an array" : "not an object";
        json_decref(root);
        return sd_errf(err, SD_EINVAL, "", "JSON body is %s; send one object like {\"prompt\": \"...\"}", what);
    }
    const char *key;
    json_t *v;
    int rc = 0;
    b->json_types = 1;
    json_object_foreach(root, key, v) {
        char num[64];
        const char *text = "";
        size_t tlen = 0;
        pv_kind kind;
        switch (json_typeof(v)) {
        case JSON_STRING: kind = PV_TEXT; text = json_string_value(v); tlen = json_string_length(v); break;
        case JSON_INTEGER:
            kind = PV_NUMBER;
            tlen = (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            text = num;
            break;
        case JSON_REAL:
            kind = PV_NUMBER;
            tlen = (size_t)snprintf(num, sizeof num, "%.17g", json_real_value(v));
            text = num;
            break;
        case JSON_TRUE: case JSON_FALSE:   /* kept as "true" / "false" (dialects read booleans) */
            kind = PV_BOOL;
            text = json_is_true(v) ? "true" : "false";
            tlen = strlen(text);
            break;
        case JSON_NULL: kind = PV_NULL; break;
        case JSON_ARRAY: kind = PV_ARRAY; break;
        default: kind = PV_OBJECT; break;
        }
        /* kept as JSON text (loras; other dialects' nested settings) */
        char *dump = kind == PV_ARRAY || kind == PV_OBJECT ? json_dumps(v, JSON_COMPACT) : NULL;
        if (dump) { text = dump; tlen = strlen(dump); }
        rc = params_bag_add(b, key, kind, text, tlen, 1, err);
        free(dump);
        if (rc) break;
    }
    json_decref(root);
    return rc;
}

int params_parse_number(const char *s, size_t len, double *out)
{
    size_t i = 0, j = len;
    while (i < j && isspace((unsigned char)s[i])) i++;
    while (j > i && isspace((unsigned char)s[j - 1])) j--;
    if (i == j || j - i > 64) return -1;
    char buf[72];
    size_t k = 0, digits = 0;
    const char *p = s + i, *e = s + j;
    if (p < e && (*p == '+' || *p == '-')) buf[k++] = *p++;
    while (p < e && isdigit((unsigned char)*p)) { buf[k++] = *p++; digits++; }
    if (p < e && *p == '.') {
        buf[k++] = *p++;
        while (p < e && isdigit((unsigned char)*p)) { buf[k++] = *p++; digits++; }
    }
    if (!digits) return -1;
    if (p < e && (*p == 'e' || *p == 'E')) {
        buf[k++] = *p++;
        if (p < e && (*p == '+' || *p == '-')) buf[k++] = *p++;
        size_t ed = 0;
        while (p < e && isdigit((unsigned char)*p)) { buf[k++] = *p++; ed++; }
        if (!ed) return -1;
    }
    if (p != e) return -1;
    buf[k] = 0;
    errno = 0;
    char *end;
    double v = strtod(buf, &end);
    if (*end || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int params_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        int n;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        for (int k = 1; k <= n; k++) {
            if (i + (size_t)k >= len || (s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += (size_t)n + 1;
    }
    return 1;
}

/* ---- validation ---------------------------------------------------------- */

static const char *kind_name(pv_kind k)
{
    switch (k) {
    case PV_TEXT: return "text";
    case PV_NUMBER: return "a number";
    case PV_FILE: return "a file";
    case PV_BOOL: return "a boolean";
    case PV_NULL: return "null";
    case PV_ARRAY: return "an array";
    default: return "an object";
    }
}

/* Shows a client value in a message: printable, cut to 40 bytes. */
static void value_label(const param *p, char *buf, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < p->len && k + 5 < size; i++) {
        unsigned char c = (unsigned char)p->val[i];
        if (k >= 40) { k += (size_t)snprintf(buf + k, size - k, "..."); break; }
        if (c >= 0x20 && c < 0x7f && c != '\'') buf[k++] = (char)c;
        else k += (size_t)snprintf(buf + k, size - k, "\\x%02x", c);
    }
    buf[k < size ? k : size - 1] = 0;
}

/* an RF_INT row of range [0, 1] is a flag (A1111's inpaint_full_res
 * is a JSON boolean): true/false are 1/0 there. */
static int flag_row(const req_field *f) { return f->type == RF_INT && f->lo == 0 && f->hi == 1; }

int params_bool_word(const char *s, int *out)
{
    static const char *const yes[] = {"true", "1", "on", "t", "y", "yes"}, *const no[] = {"false", "0", "off", "f", "n", "no"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!strcasecmp(s, yes[i])) return *out = 1, 1;
        if (!strcasecmp(s, no[i])) return *out = 0, 1;
    }
    return 0;
}

static int bool_word(const char *s, double *out)
{
    int b;
    return params_bool_word(s, &b) ? (*out = b, 1) : 0;
}

/* A flag row given a boolean word as text ("true", "off"; not "1"/"0",
 * which are numbers): what a form or multipart body says, not a JSON one. */
static int flag_word(const req_field *f, const param *p)
{
    double v;
    return flag_row(f) && p->kind == PV_TEXT && bool_word(p->val, &v) && params_parse_number(p->val, p->len, &v);
}

/* A numeric field: text or JSON number, finite, in range, whole when RF_INT/RF_SEED. */
static int get_number(const req_field *f, const param *p, double *out, sd_err *err)
{
    char range[64], shown[64];
    req_field_range(f, range, sizeof range);
    const char *what = f->type == RF_FLOAT ? "a number" : "an integer";
    if (flag_row(f) && (p->kind == PV_BOOL || p->kind == PV_TEXT) && bool_word(p->val, out)) return 0;
    double v;
    if (flag_row(f) && !((p->kind == PV_TEXT || p->kind == PV_NUMBER) && !params_parse_number(p->val, p->len, &v) &&
                         (v == 0 || v == 1))) {   /* a flag: said as one, not as "an integer in [0, 1]" */
        value_label(p, shown, sizeof shown);
        return sd_errf(err, SD_EINVAL, f->name, "%s must be a boolean: true or false, 1 or 0 (in a form also yes/no, "
                       "on/off), got %s%s%s", f->name, p->kind == PV_TEXT || p->kind == PV_NUMBER ? "'" : "",
                       p->kind == PV_TEXT || p->kind == PV_NUMBER ? shown : kind_name(p->kind),
                       p->kind == PV_TEXT || p->kind == PV_NUMBER ? "'" : "");
    }
    if (p->kind != PV_TEXT && p->kind != PV_NUMBER)
        return sd_errf(err, SD_EINVAL, f->name, "%s must be %s in %s, got %s", f->name, what, range,
                       kind_name(p->kind));
    value_label(p, shown, sizeof shown);
    if (params_parse_number(p->val, p->len, &v))
        return sd_errf(err, SD_EINVAL, f->name, "%s must be %s in %s, got '%s'", f->name, what, range, shown);
    if (f->type != RF_FLOAT && v != floor(v))
        return sd_errf(err, SD_EINVAL, f->name, "%s must be a whole number in %s, got '%s'", f->name, range, shown);
    if (f->type == RF_SEED && v == -1) {
        *out = -1;
        return 0;
    }
    /* RF_FLOAT fields are checked as the float the engine sees (1e-46 becomes 0, 1e39 infinity) */
    if (!req_field_in_range(f, v)) {
        if (f->type == RF_SEED)
            return sd_errf(err, SD_EINVAL, f->name, "seed must be -1 (random) or an integer in %s, got '%s'", range,
                           shown);
        double stored = req_field_as_stored(f, v);
        char as_float[48] = "";
        if (stored != v) snprintf(as_float, sizeof as_float, " (%g as a 32-bit float)", stored);
        return sd_errf(err, SD_EINVAL, f->name, "%s must be in %s, got '%s'%s", f->name, range, shown, as_float);
    }
    *out = req_field_as_stored(f, v);
    return 0;
}

/* Unicode white space for trimming: the C0 blanks (TAB..CR, FS..US, space),
 * U+0085 (NEL), and category Zs with the line and paragraph separators. */
int params_unicode_blank(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
           cp == 0x3000;
}

/* The code point of the UTF-8 sequence s[0..n) (already validated), or
 * 0xFFFFFFFF when n is not a whole sequence. */
static uint32_t utf8_decode(const unsigned char *s, size_t n)
{
    static const unsigned char lead_mask[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    size_t want = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!want || want != n) return 0xffffffffu;
    uint32_t cp = s[0] & lead_mask[n];
    for (size_t k = 1; k < n; k++) cp = (cp << 6) | (s[k] & 0x3f);
    return cp;
}

/* Bytes of the blank starting at s[i] (0 when none). */
static size_t blank_at(const unsigned char *s, size_t i, size_t j)
{
    size_t n = 1;
    while (i + n < j && n < 4 && (s[i + n] & 0xc0) == 0x80) n++;
    return params_unicode_blank(utf8_decode(s + i, n)) ? n : 0;
}

/* Bytes of the blank ending at s[j-1] (0 when none). */
static size_t blank_before(const unsigned char *s, size_t i, size_t j)
{
    size_t n = 1;
    while (j - n > i && n < 4 && (s[j - n] & 0xc0) == 0x80) n++;
    return params_unicode_blank(utf8_decode(s + j - n, n)) ? n : 0;
}

/* s[0..len) without leading and trailing Unicode white space. */
static char *trimmed_copy(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, j = len, n;
    while (i < j && (n = blank_at(s, i, j))) i += n;
    while (j > i && (n = blank_before(s, i, j))) j -= n;
    char *r = malloc(j - i + 1);
    if (r) {
        memcpy(r, s + i, j - i);
        r[j - i] = 0;
    }
    return r;
}

/* The init image text is decoded later (img_base64_decode accepts a data:
 * URL prefix, line breaks and spaces that were '+'); here it is only kept,
 * without surrounding blanks.  In a form-urlencoded body a space is a '+'
 * the client did not percent-encode, and base64 may begin or end with '+':
 * there only line breaks and tabs are blanks.  (JSON and multipart text
 * never turn '+' into a space, so every blank around it is padding.) */
static int keep_base64(const req_field *f, const param *p, int spaces_are_plus, sd_request *r, sd_err *err)
{
    size_t i = 0, j = p->len;
    req_image_ref d = req_image_slot(f, r);
#define BLANK(c) (isspace((unsigned char)(c)) && !(spaces_are_plus && (c) == ' '))
    while (i < j && BLANK(p->val[i])) i++;
    while (j > i && BLANK(p->val[j - 1])) j--;
#undef BLANK
    if (i == j) return sd_errf(err, SD_EINVAL, f->name, "%s is empty; send a base64 PNG, JPEG or WebP image", f->name);
    if (!(*d.data = malloc(j - i + 1))) return sd_errf(err, SD_ENOMEM, f->name, "out of memory");
    memcpy(*d.data, p->val + i, j - i);
    (*d.data)[j - i] = 0;
    *d.len = j - i;
    *d.is_raw = 0;
    return 0;
}

/* "unknown field" names the fields of the route, in the table's order. */
static int unknown_field(const char *label, const char *route, unsigned where, sd_err *err)
{
    char list[512];
    size_t k = 0;
    list[0] = 0;
    for (int i = 0; i < req_nfields && k < sizeof list; i++)
        if (req_fields[i].where & where)
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", k ? ", " : "", req_fields[i].name);
    return sd_errf(err, SD_EINVAL, label, "unknown field '%s' for %s (fields: %s)", label, route, list);
}

/* A text field (prompt, negative_prompt): trimmed, at most f->hi bytes. */
static int set_text(const req_field *f, const param *p, sd_request *r, sd_err *err)
{
    if (p->kind != PV_TEXT)
        return sd_errf(err, SD_EINVAL, f->name, "%s must be a string, got %s", f->name, kind_name(p->kind));
    if (p->len > (size_t)f->hi)
        return sd_errf(err, SD_EINVAL, f->name, "%s is too long (%zu bytes, at most %d)", f->name, p->len, (int)f->hi);
    char *t = trimmed_copy(p->val, p->len);
    if (!t) return sd_errf(err, SD_ENOMEM, f->name, "out of memory");
    const char **dst = req_field_text(f, r);
    free((char *)*dst);
    *dst = t;
    return 0;
}

/* A name field (sampler, output_format, scheduler, timestep_spacing). */
static int set_name(const req_field *f, const param *p, sd_request *r, sd_err *err)
{
    if (p->kind != PV_TEXT && f->type == RF_SAMPLER)
        return sd_errf(err, SD_EINVAL, f->name, "%s must be a string, got %s", f->name, kind_name(p->kind));
    if (p->kind != PV_TEXT)
        return sd_errf(err, SD_EINVAL, f->name, "%s must be %s, got %s", f->name, req_field_names(f),
                       kind_name(p->kind));
    char *t = trimmed_copy(p->val, p->len), shown[64];
    if (!t) return sd_errf(err, SD_ENOMEM, f->name, "out of memory");
    int bad = req_field_set_name(f, r, t);
    free(t);
    if (!bad) return 0;
    if (f->type == RF_SAMPLER)   /* (the sampler message never showed the value) */
        return sd_errf(err, SD_EINVAL, f->name, "%s must be one of %s", f->name, req_field_names(f));
    value_label(p, shown, sizeof shown);
    return sd_errf(err, SD_EINVAL, f->name, "%s must be %s, got '%s'", f->name, req_field_names(f), shown);
}

/* The init image or the mask: a file part (raw bytes) or base64 text, kept as sent. */
static int set_image(const req_field *f, const param *p, int spaces_are_plus, sd_request *r, sd_err *err)
{
    req_image_ref d = req_image_slot(f, r);
    free(*d.data);
    *d.data = NULL;
    if (p->kind == PV_FILE) {
        if (!p->len) return sd_errf(err, SD_EINVAL, f->name, "%s file part is empty", f->name);
        *d.data = malloc(p->len);
        if (!*d.data) return sd_errf(err, SD_ENOMEM, f->name, "out of memory");
        memcpy(*d.data, p->val, p->len);
        *d.len = p->len;
        *d.is_raw = 1;
        return 0;
    }
    if (p->kind != PV_TEXT)
        return sd_errf(err, SD_EINVAL, f->name, "%s must be a base64 string, got %s", f->name, kind_name(p->kind));
    return keep_base64(f, p, spaces_are_plus, r, err);
}

/* One element of a JSON loras array: {"name": "x", "weight": 0.7} or "x". */
static int add_lora_json(const json_t *it, sd_request *r, sd_err *err)
{
    if (json_is_string(it)) return req_add_lora(r, json_string_value(it), json_string_length(it), 1.0, err);
    if (!json_is_object(it))
        return sd_errf(err, SD_EINVAL, "loras", "loras must be an array of {\"name\": ..., \"weight\": ...} objects");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)it, k, v)
        if (strcmp(k, "name") && strcmp(k, "weight"))
            return sd_errf(err, SD_EINVAL, "loras", "loras: unknown key '%.40s' (keys: name, weight)", k);
    const json_t *nm = json_object_get(it, "name"), *w = json_object_get(it, "weight");
    if (!json_is_string(nm)) return sd_errf(err, SD_EINVAL, "loras", "loras: every LoRA needs a \"name\" string");
    if (w && !json_is_number(w)) return sd_errf(err, SD_EINVAL, "loras", "loras: \"weight\" must be a number");
    return req_add_lora(r, json_string_value(nm), json_string_length(nm), w ? json_number_value(w) : 1.0, err);
}

/* loras: a JSON array, or the text "name:weight,name:weight" (form, multipart). */
static int set_loras(const req_field *f, const param *p, sd_request *r, sd_err *err)
{
    if (p->kind == PV_TEXT) return req_set_loras_text(r, p->val, p->len, err);
    if (p->kind == PV_NULL) return 0;
    if (p->kind != PV_ARRAY)
        return sd_errf(err, SD_EINVAL, f->name, "%s must be an array of {\"name\", \"weight\"} or a string "
                       "\"name:weight,...\", got %s", f->name, kind_name(p->kind));
    json_t *a = json_loadb(p->val, p->len, 0, NULL);
    int rc = a ? 0 : sd_errf(err, SD_EINVAL, f->name, "loras: not a JSON array");
    if (a && json_array_size(a) > SD_MAX_LORAS)
        rc = sd_errf(err, SD_EINVAL, f->name, "loras: at most %d LoRAs in one request, got %zu", SD_MAX_LORAS,
                     json_array_size(a));
    for (size_t i = 0; a && !rc && i < json_array_size(a); i++) rc = add_lora_json(json_array_get(a, i), r, err);
    json_decref(a);
    return rc;
}

/* One field of the bag into the request. */
static int set_field(const req_field *f, const param *p, int spaces_are_plus, sd_request *r, sd_err *err)
{
    double v = 0;
    switch (f->type) {
    case RF_TEXT: return set_text(f, p, r, err);
    case RF_SAMPLER: case RF_FORMAT: case RF_SCHEDULER: case RF_SPACING: case RF_UPSCALER: return set_name(f, p, r, err);
    case RF_IMAGE: return set_image(f, p, spaces_are_plus, r, err);
    case RF_LORAS: return set_loras(f, p, r, err);
    case RF_SEED:
        if (p->kind == PV_TEXT) {
            size_t k = 0;
            while (k < p->len && isspace((unsigned char)p->val[k])) k++;
            if (k == p->len) return 0; /* empty = random */
        }
        if (get_number(f, p, &v, err)) return -1;
        if (v < 0) return 0;           /* -1 = random */
        r->seed_was_random = 0;
        req_field_set_number(f, r, v);
        return 0;
    case RF_INT:
    case RF_FLOAT:
        if (get_number(f, p, &v, err)) return -1;
        req_field_set_number(f, r, v);
        return 0;
    }
    return 0;
}

int params_to_request(const param_bag *b, int img2img, const char *dialect, sd_request *r, sd_err *err)
{
    sd_request_defaults(r, img2img);
    unsigned where = img2img ? RF_IMG2IMG : RF_TXT2IMG;
    const char *route = img2img ? "/img2img" : "/txt2img";
    int blur_given = 0;   /* mask_blur given */

    for (int i = 0; i < b->n; i++) {
        const param *p = &b->v[i];
        char label[64];
        field_label(p->name, label, sizeof label);
        if (!params_utf8_valid(p->name, strlen(p->name)))
            return sd_errf(err, SD_EINVAL, label, "a field name is not valid UTF-8 ('%s')", label);
        req_field widened;
        const req_field *f = req_field_as(req_field_find(p->name), dialect, &widened);
        if (!f) return unknown_field(label, route, where, err);
        if (!(f->where & where))
            return sd_errf(err, SD_EINVAL, f->name, "%s is not a field of %s%s", f->name, route,
                           img2img ? "; the output takes the init image's size" : "; use /img2img for init_image and strength");
        if (p->kind == PV_TEXT && !params_utf8_valid(p->val, p->len))
            return sd_errf(err, SD_EINVAL, f->name, "%s is not valid UTF-8 text", f->name);
        /* every text value is used as a C string: a NUL would cut "euler\0junk" to euler */
        if (p->kind == PV_TEXT && memchr(p->val, 0, p->len))
            return sd_errf(err, SD_EINVAL, f->name, "%s contains a NUL character", f->name);
        if (p->kind == PV_NULL) continue; /* JSON null = absent */
        if (b->json_types && flag_word(f, p))   /* a JSON body has booleans of its own */
            return sd_errf(err, SD_EINVAL, f->name, "%s must be true or false (a JSON boolean) or 0/1 in a JSON "
                           "body, got the text \"%.16s\"", f->name, p->val);
        if (set_field(f, p, b->spaces_are_plus, r, err)) return -1;
        blur_given |= f->offset == req_field_find("mask_blur")->offset;
    }
    /* A1111's mask_blur setter (processing.py, v1.10.1) sets both
     * axes whenever it is given, whatever mask_blur_x/_y say, in any order */
    if (blur_given) r->mask_blur_x = r->mask_blur_y = -1;
    if (sd_check_sampler(&r->gen, err)) return -1;   /* scheduler / timestep_spacing vs sampler */
    if (!r->gen.prompt)
        return sd_errf(err, SD_EINVAL, "prompt", "prompt is required: say what to draw");
    if (!*r->gen.prompt)
        return sd_errf(err, SD_EINVAL, "prompt", "prompt is empty: say what to draw");
    if (img2img && !r->init_data)
        return sd_errf(err, SD_EINVAL, "init_image", "init_image is required for /img2img (base64 PNG, JPEG or WebP)");
    if (!r->gen.negative && !(r->gen.negative = strdup("")))
        return sd_errf(err, SD_ENOMEM, "", "out of memory");
    if (r->seed_was_random) {
        r->gen.seed = req_random_seed();
    } else if (r->gen.seed + (uint64_t)r->gen.n - 1 > (uint64_t)REQ_MAX_SEED) {
        return sd_errf(err, SD_EINVAL, "seed",
                       "seed + num_outputs - 1 must not exceed 9007199254740991 (image i uses seed + i)");
    }
    return 0;
}

const char *params_field_name(const char *field)
{
    const req_field *f = field && *field ? req_field_by_engine(field) : NULL;
    return f ? f->name : field;
}

void params_name_field(sd_err *err)
{
    const char *name = params_field_name(err->field);
    if (name != err->field) snprintf(err->field, sizeof err->field, "%s", name);
}
