/* clip_bpe.c — CLIP byte-level BPE: loading the vocabulary and merges,
 * encoding prompts, building the 77-id conditioning windows (see clip_bpe.h).
 *
 * Tokens are handled as integer ids, not strings: every string that can
 * occur (vocabulary entries, both halves of a merge and its result) is
 * interned once at load time, so a merge is a lookup of the id pair
 * (a, b) -> (rank, id of a+b).  Strings a merges file produces that are not
 * in vocab.json get private ids above the vocabulary and come out as the
 * unknown token (<|endoftext|>, like the HF tokenizer). */
#include "clip_bpe.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "clip_text.h"
#include "vocab_blob.h"
#include "../../base/alloc.h"

#define CLIP_NUM_MERGES (49152 - 256 - 2)   /* merges CLIP uses from the file */
#define CLIP_MAX_PIECE 1024                 /* bytes of one piece given to BPE at once */
#define SOT "<|startoftext|>"
#define EOT "<|endoftext|>"

/* ---- string -> id map (open addressing, strings in one arena) ------------ */

typedef struct { uint32_t hash, off, len; int32_t id; } smap_slot;   /* id < 0: empty */

typedef struct {
    smap_slot *slot;
    size_t cap;           /* power of two */
    size_t count;
    char *arena;
    size_t arena_n, arena_cap;
} smap;

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;                       /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    h ^= h >> 16;                                   /* spread into the low bits we index with */
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    return h;
}

static int smap_init(smap *m, size_t expect)
{
    memset(m, 0, sizeof *m);
    m->cap = 1024;
    while (m->cap < expect * 2) m->cap *= 2;
    m->slot = sd_malloc(m->cap * sizeof *m->slot);
    if (!m->slot) return -1;
    for (size_t i = 0; i < m->cap; i++) m->slot[i].id = -1;
    return 0;
}

static void smap_free(smap *m)
{
    free(m->slot);
    free(m->arena);
}

static smap_slot *smap_probe(const smap *m, const char *s, size_t n, uint32_t h)
{
    size_t i = h & (m->cap - 1);
    for (;;) {
        smap_slot *sl = &m->slot[i];
        if (sl->id < 0 || (sl->hash == h && sl->len == n && !memcmp(m->arena + sl->off, s, n))) return sl;
        i = (i + 1) & (m->cap - 1);
    }
}

static int smap_get(const smap *m, const char *s, size_t n)
{
    smap_slot *sl = smap_probe(m, s, n, hash_bytes(s, n));
    return sl->id;
}

static int smap_grow(smap *m)
{
    smap old = *m;
    m->cap *= 2;
    m->slot = sd_malloc(m->cap * sizeof *m->slot);
    if (!m->slot) { *m = old; return -1; }
    for (size_t i = 0; i < m->cap; i++) m->slot[i].id = -1;
    for (size_t i = 0; i < old.cap; i++) {
        if (old.slot[i].id < 0) continue;
        size_t j = old.slot[i].hash & (m->cap - 1);
        while (m->slot[j].id >= 0) j = (j + 1) & (m->cap - 1);
        m->slot[j] = old.slot[i];
    }
    free(old.slot);
    return 0;
}

/* Sets s -> id (overwriting an existing id: the last definition wins, as in
 * Python's dict(zip(vocab, range(...)))).  -1 on out of memory. */
static int smap_put(smap *m, const char *s, size_t n, int32_t id)
{
    if ((m->count + 1) * 2 > m->cap && smap_grow(m)) return -1;
    uint32_t h = hash_bytes(s, n);
    smap_slot *sl = smap_probe(m, s, n, h);
    if (sl->id >= 0) { sl->id = id; return 0; }
    if (m->arena_n + n > m->arena_cap) {
        size_t cap = m->arena_cap ? m->arena_cap : 1 << 16;
        while (cap < m->arena_n + n) cap *= 2;
        char *a = sd_realloc(m->arena, cap);
        if (!a) return -1;
        m->arena = a;
        m->arena_cap = cap;
    }
    memcpy(m->arena + m->arena_n, s, n);
    sl->hash = h;
    sl->off = (uint32_t)m->arena_n;
    sl->len = (uint32_t)n;
    sl->id = id;
    m->arena_n += n;
    m->count++;
    return 0;
}

/* ---- (id, id) -> merge map ------------------------------------------------ */

typedef struct { uint64_t key; int32_t rank, merged; } pmap_slot;   /* rank < 0: empty */

typedef struct { pmap_slot *slot; size_t cap; } pmap;

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static size_t pair_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k;
}

static const pmap_slot *pmap_get(const pmap *m, int32_t a, int32_t b)
{
    uint64_t k = pair_key(a, b);
    size_t i = pair_hash(k) & (m->cap - 1);
    while (m->slot[i].rank >= 0) {
        if (m->slot[i].key == k) return &m->slot[i];
        i = (i + 1) & (m->cap - 1);
    }
    return NULL;
}

/* ---- the tokenizer ------------------------------------------------------- */

struct sd_tokenizer {
    smap vocab;              /* string -> id (vocabulary + interned merge strings) */
    pmap merges;
    int32_t byte_id[256];    /* id of the byte's character */
    int32_t byte_wid[256];   /* id of the byte's character + "</w>" */
    int32_t bos, eos;
    int32_t n_vocab;         /* largest vocabulary id + 1; ids >= this are private */
    int32_t next_private;
};

int tok_bos(const sd_tokenizer *t) { return t->bos; }
int tok_eos(const sd_tokenizer *t) { return t->eos; }
int tok_vocab_size(const sd_tokenizer *t) { return t->n_vocab; }

void tok_free(sd_tokenizer *t)
{
    if (!t) return;
    smap_free(&t->vocab);
    free(t->merges.slot);
    free(t);
}

/* GPT-2's reversible byte -> printable character map: printable Latin-1
 * bytes stand for themselves, the rest get U+0100 upwards in byte order.
 * order[] lists the bytes in vocabulary order (the printable ones first). */
static void bytes_to_unicode(uint32_t cp_of[256], int order[256])
{
    int k = 0, extra = 0;
    for (int b = 0; b < 256; b++)
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
            cp_of[b] = (uint32_t)b;
            order[k++] = b;
        }
    for (int b = 0; b < 256; b++)
        if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
            cp_of[b] = 256u + (uint32_t)extra++;
            order[k++] = b;
        }
}

static int intern(sd_tokenizer *t, const char *s, size_t n, sd_err *err)
{
    int id = smap_get(&t->vocab, s, n);
    if (id >= 0) return id;
    id = t->next_private++;
    if (smap_put(&t->vocab, s, n, id))
        return sd_errf(err, SD_ENOMEM, "vocab", "out of memory loading the CLIP vocabulary");
    return id;
}

static size_t count_lines(const char *p, size_t n)
{
    size_t k = 0;
    for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++) k++;
    return k;
}

/* Reads an open gzip or plain stream (zlib reads both) to its end or until it
 * holds max_lines lines (0 = all): CLIP uses only the first fifth of its .gz.
 * Closes f.  path names it in messages. */
static char *read_gz(gzFile f, const char *path, size_t max_lines, size_t *len, sd_err *err)
{
    size_t lines = 0;
    gzbuffer(f, 1 << 17);
    size_t cap = 1 << 21, n = 0;
    char *buf = sd_malloc(cap + 1);
    for (;;) {
        if (!buf) { gzclose(f); return sd_errf(err, SD_ENOMEM, "vocab", "out of memory reading %s", path), NULL; }
        size_t want = cap - n < (1u << 18) ? cap - n : (1u << 18);
        int got = gzread(f, buf + n, (unsigned)want);
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            sd_errf(err, SD_EFORMAT, "vocab", "cannot read %s: %s", path, msg);
            free(buf);
            gzclose(f);
            return NULL;
        }
        n += (size_t)got;
        if (got == 0 || (max_lines && (lines += count_lines(buf + n - got, (size_t)got)) >= max_lines)) break;
        if (n == cap) {
            if (cap > ((size_t)1 << 30)) {
                free(buf);
                gzclose(f);
                return sd_errf(err, SD_EFORMAT, "vocab", "%s is larger than 1 GiB; not a vocabulary", path), NULL;
            }
            cap *= 2;
            char *nb = sd_realloc(buf, cap + 1);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    gzclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static char *read_file(const char *path, size_t max_lines, size_t *len, sd_err *err)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return sd_errf(err, errno == ENOENT ? SD_ENOTFOUND : SD_EIO, "vocab", "cannot open %s: %s", path,
                       errno ? strerror(errno) : "zlib error"), NULL;
    return read_gz(f, path, max_lines, len, err);
}

#define BUILTIN_NAME "the built-in CLIP vocabulary"

/* The built-in vocabulary (vocab_blob.h) through an in-memory file, so that
 * zlib's gzip reader serves it as it serves a file on disk. */
static char *read_builtin(size_t max_lines, size_t *len, sd_err *err)
{
    int fd = memfd_create("clip-vocab", MFD_CLOEXEC);
    if (fd < 0) return sd_errf(err, SD_EIO, "vocab", "cannot read %s: %s", BUILTIN_NAME, strerror(errno)), NULL;
    size_t done = 0, n = (size_t)sd_clip_vocab_gz_size;
    while (done < n) {
        ssize_t w = write(fd, sd_clip_vocab_gz + done, n - done);
        if (w <= 0 && errno != EINTR) break;
        if (w > 0) done += (size_t)w;
    }
    gzFile f = done == n && lseek(fd, 0, SEEK_SET) == 0 ? gzdopen(fd, "rb") : NULL;
    if (!f) {
        close(fd);
        return sd_errf(err, SD_EIO, "vocab", "cannot read %s: %s", BUILTIN_NAME, strerror(errno)), NULL;
    }
    return read_gz(f, BUILTIN_NAME, max_lines, len, err);
}

typedef struct { const char *a, *b; size_t alen, blen; } merge_line;

/* Splits a merges text into at most CLIP_NUM_MERGES "a b" lines (the first
 * line is a header and skipped, as CLIP and HF do).  *out malloc'd. */
static int parse_merges(char *text, size_t len, const char *path, merge_line **out, int *count, sd_err *err)
{
    merge_line *m = sd_malloc(CLIP_NUM_MERGES * sizeof *m);
    if (!m) return sd_errf(err, SD_ENOMEM, "vocab", "out of memory reading %s", path);
    char *p = memchr(text, '\n', len), *end = text + len;
    int n = 0, line = 1;
    p = p ? p + 1 : end;
    while (p < end && n < CLIP_NUM_MERGES) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        char *e = eol;
        line++;
        if (e > p && e[-1] == '\r') e--;
        if (e > p) {
            char *sp = memchr(p, ' ', (size_t)(e - p));
            if (!sp || sp == p || sp + 1 >= e || memchr(sp + 1, ' ', (size_t)(e - sp - 1))) {
                free(m);
                return sd_errf(err, SD_EFORMAT, "vocab", "%s line %d: expected two tokens separated by one space",
                               path, line);
            }
            m[n].a = p;
            m[n].alen = (size_t)(sp - p);
            m[n].b = sp + 1;
            m[n].blen = (size_t)(e - sp - 1);
            n++;
        }
        p = eol + 1;
    }
    *out = m;
    *count = n;
    return 0;
}

/* vocab.json: {"token": id, ...}. */
static int load_vocab_json(sd_tokenizer *t, const char *path, sd_err *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return sd_errf(err, SD_EFORMAT, "vocab", "%s: invalid JSON at line %d: %s", path, je.line, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return sd_errf(err, SD_EFORMAT, "vocab", "%s: expected a JSON object of token -> id", path);
    }
    const char *key;
    json_t *val;
    int rc = 0;
    json_object_foreach(root, key, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || id > 10000000) {
            rc = sd_errf(err, SD_EFORMAT, "vocab", "%s: token \"%.40s\" has no valid id", path, key);
            break;
        }
        if (smap_put(&t->vocab, key, strlen(key), (int32_t)id)) {
            rc = sd_errf(err, SD_ENOMEM, "vocab", "out of memory loading %s", path);
            break;
        }
        if (id + 1 > t->n_vocab) t->n_vocab = (int32_t)id + 1;
    }
    json_decref(root);
    return rc;
}

/* The CLIP vocabulary implied by the merges (OpenAI's order). */
static int build_vocab(sd_tokenizer *t, const merge_line *m, int nm, sd_err *err)
{
    uint32_t cp_of[256];
    int order[256];
    char buf[1024];
    int32_t id = 0;
    bytes_to_unicode(cp_of, order);
    for (int w = 0; w < 2; w++)
        for (int k = 0; k < 256; k++) {
            int n = clip_utf8_put(cp_of[order[k]], (unsigned char *)buf);
            if (w) { memcpy(buf + n, "</w>", 4); n += 4; }
            if (smap_put(&t->vocab, buf, (size_t)n, id++)) goto oom;
        }
    for (int i = 0; i < nm; i++) {
        if (m[i].alen + m[i].blen > sizeof buf)
            return sd_errf(err, SD_EFORMAT, "vocab", "merge %d is longer than %zu bytes", i + 1, sizeof buf);
        memcpy(buf, m[i].a, m[i].alen);
        memcpy(buf + m[i].alen, m[i].b, m[i].blen);
        if (smap_put(&t->vocab, buf, m[i].alen + m[i].blen, id++)) goto oom;
    }
    if (smap_put(&t->vocab, SOT, strlen(SOT), id++) || smap_put(&t->vocab, EOT, strlen(EOT), id++)) goto oom;
    t->n_vocab = id;
    return 0;
oom:
    return sd_errf(err, SD_ENOMEM, "vocab", "out of memory building the CLIP vocabulary");
}

static int build_merges(sd_tokenizer *t, const merge_line *m, int nm, const char *path, sd_err *err)
{
    char buf[1024];
    t->merges.cap = 1024;
    while (t->merges.cap < (size_t)nm * 2) t->merges.cap *= 2;
    t->merges.slot = sd_malloc(t->merges.cap * sizeof *t->merges.slot);
    if (!t->merges.slot) return sd_errf(err, SD_ENOMEM, "vocab", "out of memory loading %s", path);
    for (size_t i = 0; i < t->merges.cap; i++) t->merges.slot[i].rank = -1;
    for (int r = 0; r < nm; r++) {
        if (m[r].alen + m[r].blen > sizeof buf)
            return sd_errf(err, SD_EFORMAT, "vocab", "%s: merge %d is longer than %zu bytes", path, r + 1, sizeof buf);
        int a = intern(t, m[r].a, m[r].alen, err);
        int b = a < 0 ? -1 : intern(t, m[r].b, m[r].blen, err);
        memcpy(buf, m[r].a, m[r].alen);
        memcpy(buf + m[r].alen, m[r].b, m[r].blen);
        int ab = b < 0 ? -1 : intern(t, buf, m[r].alen + m[r].blen, err);
        if (ab < 0) return -1;
        uint64_t k = pair_key(a, b);
        size_t i = pair_hash(k) & (t->merges.cap - 1);
        while (t->merges.slot[i].rank >= 0 && t->merges.slot[i].key != k) i = (i + 1) & (t->merges.cap - 1);
        t->merges.slot[i].key = k;         /* a repeated pair: the later rank wins, as in CLIP */
        t->merges.slot[i].rank = r;
        t->merges.slot[i].merged = ab;
    }
    return 0;
}

static int set_specials(sd_tokenizer *t, const char *path, sd_err *err)
{
    uint32_t cp_of[256];
    int order[256];
    char buf[16];
    bytes_to_unicode(cp_of, order);
    for (int b = 0; b < 256; b++) {
        int n = clip_utf8_put(cp_of[b], (unsigned char *)buf);
        t->byte_id[b] = smap_get(&t->vocab, buf, (size_t)n);
        memcpy(buf + n, "</w>", 4);
        t->byte_wid[b] = smap_get(&t->vocab, buf, (size_t)n + 4);
        if (t->byte_id[b] < 0 || t->byte_wid[b] < 0 || t->byte_id[b] >= t->n_vocab || t->byte_wid[b] >= t->n_vocab)
            return sd_errf(err, SD_EFORMAT, "vocab",
                           "%s: no token for byte 0x%02X (\"%.*s\" and \"%.*s</w>\"); not a CLIP byte-level BPE vocabulary",
                           path, b, n, buf, n, buf);
    }
    t->bos = smap_get(&t->vocab, SOT, strlen(SOT));
    t->eos = smap_get(&t->vocab, EOT, strlen(EOT));
    if (t->bos < 0 || t->eos < 0 || t->bos >= t->n_vocab || t->eos >= t->n_vocab)
        return sd_errf(err, SD_EFORMAT, "vocab", "%s: the vocabulary has no %s or %s token", path, SOT, EOT);
    return 0;
}

static int is_dir(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

/* Resolves path into a merges file and an optional vocab.json. */
static int resolve(const char *path, char *merges, char *vocab, size_t cap, sd_err *err)
{
    vocab[0] = 0;
    if (is_dir(path)) {
        snprintf(merges, cap, "%s/merges.txt", path);
        snprintf(vocab, cap, "%s/vocab.json", path);
        if (is_file(merges) && is_file(vocab)) return 0;
        vocab[0] = 0;
        snprintf(merges, cap, "%s/bpe_simple_vocab_16e6.txt.gz", path);
        if (is_file(merges)) return 0;
        return sd_errf(err, SD_ENOTFOUND, "vocab",
                       "%s has neither vocab.json + merges.txt nor bpe_simple_vocab_16e6.txt.gz", path);
    }
    if (!is_file(path)) return sd_errf(err, SD_ENOTFOUND, "vocab", "vocabulary %s does not exist", path);
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path) : 1;
    const char *dir = slash ? path : ".";
    if (ends_with(path, ".json")) {
        snprintf(vocab, cap, "%s", path);
        snprintf(merges, cap, "%.*s/merges.txt", dirlen, dir);
        if (!is_file(merges))
            return sd_errf(err, SD_ENOTFOUND, "vocab", "%s needs merges.txt beside it (%s is missing)", path, merges);
        return 0;
    }
    snprintf(merges, cap, "%s", path);
    if (ends_with(path, "merges.txt")) {
        snprintf(vocab, cap, "%.*s/vocab.json", dirlen, dir);
        if (!is_file(vocab)) vocab[0] = 0;   /* build CLIP's order from the merges */
    }
    return 0;
}

/* The tokenizer from a merges text (mpath names it) and, when vpath[0], the
 * vocab.json at vpath.  Frees text. */
static sd_tokenizer *tok_from_text(char *text, size_t len, const char *mpath, const char *vpath, sd_err *err)
{
    sd_tokenizer *t = sd_calloc(1, sizeof *t);
    if (!t || smap_init(&t->vocab, 49408)) {
        free(t);
        free(text);
        return sd_errf(err, SD_ENOMEM, "vocab", "out of memory loading %s", mpath), NULL;
    }
    merge_line *m = NULL;
    int nm = 0;
    int rc = parse_merges(text, len, mpath, &m, &nm, err);
    if (!rc) rc = vpath[0] ? load_vocab_json(t, vpath, err) : build_vocab(t, m, nm, err);
    if (!rc) {
        t->next_private = t->n_vocab;
        rc = build_merges(t, m, nm, mpath, err);
    }
    if (!rc) rc = set_specials(t, vpath[0] ? vpath : mpath, err);
    free(m);
    free(text);
    if (rc) {
        tok_free(t);
        return NULL;
    }
    return t;
}

sd_tokenizer *tok_load(const char *path, sd_err *err)
{
    char mpath[4096], vpath[4096];
    if (!path || !*path) return sd_errf(err, SD_EINVAL, "vocab", "no vocabulary path given"), NULL;
    if (resolve(path, mpath, vpath, sizeof mpath, err)) return NULL;
    size_t len = 0;
    char *text = read_file(mpath, CLIP_NUM_MERGES + 1, &len, err);
    return text ? tok_from_text(text, len, mpath, vpath, err) : NULL;
}

sd_tokenizer *tok_load_builtin(sd_err *err)
{
    size_t len = 0;
    char *text = read_builtin(CLIP_NUM_MERGES + 1, &len, err);
    return text ? tok_from_text(text, len, BUILTIN_NAME, "", err) : NULL;
}

sd_tokenizer *tok_find(const char *model_path, const char *vocab_flag, const char *data_dir, sd_err *err)
{
    char cand[4][1024];
    int nc = 0;
    if (vocab_flag && *vocab_flag) {
        sd_tokenizer *t = tok_load(vocab_flag, err);
        if (!t) sd_err_prefix(err, "the vocabulary given by --vocab");
        return t;
    }
    if (model_path && *model_path) {
        if (is_dir(model_path)) {
            snprintf(cand[nc++], sizeof cand[0], "%s/tokenizer", model_path);
        } else {
            const char *slash = strrchr(model_path, '/');
            if (slash) snprintf(cand[nc++], sizeof cand[0], "%.*s/tokenizer", (int)(slash - model_path), model_path);
            else snprintf(cand[nc++], sizeof cand[0], "tokenizer");
        }
    }
    if (data_dir && *data_dir) {
        snprintf(cand[nc++], sizeof cand[0], "%s/tokenizer", data_dir);
        snprintf(cand[nc++], sizeof cand[0], "%s/bpe_simple_vocab_16e6.txt.gz", data_dir);
    }
    for (int i = 0; i < nc; i++) {
        if (is_dir(cand[i]) || is_file(cand[i])) {
            sd_err e2;
            sd_err_clear(&e2);
            sd_tokenizer *t = tok_load(cand[i], &e2);
            if (t) return t;
            if (e2.code != SD_ENOTFOUND) {         /* a file that is there but broken: say so */
                if (err) *err = e2;
                return NULL;
            }
        }
    }
    return tok_load_builtin(err);
}

/* ---- encoding ------------------------------------------------------------ */

typedef struct { int32_t *v; size_t n, cap; } idbuf;

static int ib_push(idbuf *b, int32_t id)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        int32_t *v = sd_realloc(b->v, cap * sizeof *v);
        if (!v) return -1;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = id;
    return 0;
}

/* BPE of one piece given as UTF-8 bytes: start from one id per byte (the
 * last with "</w>" when end_of_word), repeatedly merge every occurrence of
 * the lowest-ranked adjacent pair, left to right.  This is quadratic in the
 * piece length, so tok_encode() feeds at most CLIP_MAX_PIECE bytes at a time.
 * word[] is the work array (len >= n). */
static int bpe_piece(const sd_tokenizer *t, const unsigned char *bytes, size_t n, int end_of_word, int32_t *word,
                     idbuf *out)
{
    for (size_t i = 0; i < n; i++)
        word[i] = i + 1 == n && end_of_word ? t->byte_wid[bytes[i]] : t->byte_id[bytes[i]];
    while (n > 1) {
        int32_t best = -1, a = 0, b = 0, ab = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            const pmap_slot *s = pmap_get(&t->merges, word[i], word[i + 1]);
            if (s && (best < 0 || s->rank < best)) {
                best = s->rank;
                a = word[i];
                b = word[i + 1];
                ab = s->merged;
            }
        }
        if (best < 0) break;
        size_t w = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && word[i] == a && word[i + 1] == b) {
                word[w++] = ab;
                i += 2;
            } else {
                word[w++] = word[i++];
            }
        }
        n = w;
    }
    for (size_t i = 0; i < n; i++)
        if (ib_push(out, word[i] < t->n_vocab ? word[i] : t->eos)) return -1;
    return 0;
}

int tok_encode(const sd_tokenizer *t, const char *text, int32_t **ids, size_t *n, sd_err *err)
{
    uint32_t *cp = NULL;
    size_t ncp = 0, pos = 0, start, len;
    int special;
    idbuf out = { 0 };
    unsigned char *bytes = NULL;
    int32_t *word = NULL;
    *ids = NULL;
    *n = 0;
    if (clip_clean(text, &cp, &ncp, err)) return -1;
    bytes = sd_malloc(ncp * 4 + 4);
    word = sd_malloc((ncp * 4 + 4) * sizeof *word);
    if (!bytes || !word) goto oom;
    while (clip_next_piece(cp, ncp, &pos, &start, &len, &special)) {
        if (special) {
            if (ib_push(&out, special == 1 ? t->bos : t->eos)) goto oom;
            continue;
        }
        /* A piece longer than CLIP_MAX_PIECE bytes (never a real word) is cut
         * into such runs at character boundaries; only the last ends the word. */
        size_t nb = 0;
        for (size_t i = 0; i < len; i++) {
            nb += (size_t)clip_utf8_put(cp[start + i], bytes + nb);
            if (nb + 4 > CLIP_MAX_PIECE && i + 1 < len) {
                if (bpe_piece(t, bytes, nb, 0, word, &out)) goto oom;
                nb = 0;
            }
        }
        if (bpe_piece(t, bytes, nb, 1, word, &out)) goto oom;
    }
    free(cp);
    free(bytes);
    free(word);
    *ids = out.v;
    *n = out.n;
    return 0;
oom:
    free(cp);
    free(bytes);
    free(word);
    free(out.v);
    return sd_errf(err, SD_ENOMEM, "prompt", "out of memory tokenizing a prompt");
}

/* Long prompts are split, never cut, like AUTOMATIC1111 — but at plain
 * 75-token boundaries (A1111 prefers to break after a comma near the end of
 * a chunk; we do not). */
size_t tok_window_count(size_t ntokens) { return ntokens ? (ntokens + TOK_CHUNK - 1) / TOK_CHUNK : 1; }

int tok_windows(const sd_tokenizer *t, const char *text, int pad_id, int32_t **ids, int *nwin, sd_err *err)
{
    int32_t *raw;
    size_t n;
    *ids = NULL;
    *nwin = 0;
    if (tok_encode(t, text, &raw, &n, err)) return -1;
    size_t nw = tok_window_count(n);
    if (nw > 1000) {
        free(raw);
        return sd_errf(err, SD_EINVAL, "prompt", "prompt has %zu tokens; the limit is %d", n, 1000 * TOK_CHUNK);
    }
    int32_t *w = sd_malloc(nw * TOK_WINDOW * sizeof *w);
    if (!w) {
        free(raw);
        return sd_errf(err, SD_ENOMEM, "prompt", "out of memory tokenizing a prompt");
    }
    for (size_t k = 0; k < nw; k++) {
        int32_t *row = w + k * TOK_WINDOW;
        size_t off = k * TOK_CHUNK, m = n - off < TOK_CHUNK ? n - off : TOK_CHUNK;   /* off <= n */
        row[0] = t->bos;
        for (size_t i = 0; i < m; i++) row[1 + i] = raw[off + i];
        row[1 + m] = t->eos;
        for (size_t i = m + 2; i < TOK_WINDOW; i++) row[i] = pad_id;
    }
    free(raw);
    *ids = w;
    *nwin = (int)nw;
    return 0;
}
