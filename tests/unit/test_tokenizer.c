/* test_tokenizer.c — the CLIP BPE tokenizer gives the reference ids (goldens
 * from OpenAI's SimpleTokenizer / diffusers' CLIPTokenizer with ftfy) from both
 * vocabulary sources, splits long prompts into 77-id windows, pads for SD1 and
 * SD2, survives bad input, and loads tiny and broken vocabularies sanely. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "npy.h"
#include "t.h"
#include "../../src/engine/tokenizer/clip_bpe.h"

/* Golden prompts our ftfy subset cannot reproduce (see docs/ACCURACY.md
 * "## Tokenizer").  Every other prompt must match exactly. */
static const int known_mismatch[] = { -1 };

static int is_known_mismatch(int i)
{
    for (size_t k = 0; k < sizeof known_mismatch / sizeof known_mismatch[0]; k++)
        if (known_mismatch[k] == i) return 1;
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);   /* CPU time: the machine is shared */
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* First index where a (n) and b (m, int64) differ, or -1. */
static long first_diff(const int32_t *a, size_t n, const int64_t *b, size_t m)
{
    size_t k = n < m ? n : m;
    for (size_t i = 0; i < k; i++)
        if (a[i] != b[i]) return (long)i;
    return n == m ? -1 : (long)k;
}

static int json_ids(json_t *arr, int64_t *out, size_t cap, size_t *n)
{
    *n = json_array_size(arr);
    if (*n > cap) return -1;
    for (size_t i = 0; i < *n; i++) out[i] = json_integer_value(json_array_get(arr, i));
    return 0;
}

/* Golden set: prompts.json + ids_sd1_pad_eos / ids_sd2_pad_zero / open_clip. */
static void check_goldens(const sd_tokenizer *t, const char *src)
{
    json_error_t je;
    json_t *pj = json_load_file(t_ref("goldens/tokenizer/prompts.json"), 0, &je);
    npy sd1, sd2, oc;
    int have = pj && !npy_load(t_ref("goldens/tokenizer/ids_sd1_pad_eos.npy"), &sd1) &&
               !npy_load(t_ref("goldens/tokenizer/ids_sd2_pad_zero.npy"), &sd2) &&
               !npy_load(t_ref("goldens/tokenizer/ids_openclip_tokenize.npy"), &oc);
    CHECKF(have, "golden tokenizer files load", "%s", pj ? "npy" : je.text);
    if (!have) return;
    json_t *prompts = json_object_get(pj, "prompts");
    size_t np = json_array_size(prompts);
    CHECKF(np == 28 && sd1.shape[0] == (int64_t)np && sd1.shape[1] == 77 && sd2.shape[0] == (int64_t)np,
           "golden shapes", "%zu prompts", np);
    int matched = 0, ftfy_matched = 0;
    for (size_t i = 0; i < np && i < (size_t)sd1.shape[0]; i++) {
        json_t *e = json_array_get(prompts, i);
        const char *text = json_string_value(json_object_get(e, "prompt"));
        int64_t want_raw[4096];
        size_t nraw = 0;
        json_ids(json_object_get(e, "ids_unpadded"), want_raw, 4096, &nraw);
        sd_err err;
        sd_err_clear(&err);
        int32_t *raw = NULL, *w1 = NULL, *w2 = NULL;
        size_t n = 0;
        int nw1 = 0, nw2 = 0;
        int rc = tok_encode(t, text, &raw, &n, &err) | tok_windows(t, text, 49407, &w1, &nw1, &err) |
                 tok_windows(t, text, 0, &w2, &nw2, &err);
        long d_raw = rc ? 0 : first_diff(raw, n, want_raw, nraw);
        long d1 = rc ? 0 : first_diff(w1, 77, sd1.i + i * 77, 77);
        long d2 = rc ? 0 : first_diff(w2, 77, sd2.i + i * 77, 77);
        /* open_clip differs only where a literal "<|startoftext|>" is in the text (prompt 20). */
        long doc = rc ? 0 : first_diff(w2, 77, oc.i + i * 77, 77);
        size_t want_nw = nraw ? (nraw + 74) / 75 : 1;
        int ok = !rc && d_raw < 0 && d1 < 0 && d2 < 0 && (size_t)nw1 == want_nw && nw2 == nw1;
        char name[160];
        if (is_known_mismatch((int)i)) {
            snprintf(name, sizeof name, "%s: golden prompt %zu is a documented mismatch (still differs)", src, i);
            CHECKF(!ok, name, "now matches: remove it from known_mismatch and docs/ACCURACY.md");
        } else {
            snprintf(name, sizeof name, "%s: golden prompt %zu ids (raw, SD1 pad eos, SD2 pad 0, %zu windows)", src, i,
                     want_nw);
            CHECKF(ok, name, "rc=%d (%s) raw diff at %ld (got %zu ids, want %zu) sd1 diff at %ld sd2 diff at %ld nwin %d",
                   rc, err.msg, d_raw, n, nraw, d1, d2, nw1);
        }
        if (i != 20) {
            snprintf(name, sizeof name, "%s: golden prompt %zu equals open_clip tokenize()", src, i);
            if (!is_known_mismatch((int)i)) CHECKF(!rc && doc < 0, name, "diff at %ld", doc);
        } else {
            snprintf(name, sizeof name, "%s: literal <|startoftext|> gives the special id (unlike open_clip)", src);
            CHECKF(!rc && doc >= 0 && w2[1] == 49406 && n == 5 && raw[4] == 49407, name, "got %d", w2 ? w2[1] : -1);
        }
        matched += ok;
        if (i >= 20 && i <= 24) ftfy_matched += ok;
        free(raw);
        free(w1);
        free(w2);
    }
    printf("metric tokenizer/%s golden_prompts_matched %d/%zu tol %zu/%zu\n", src, matched, np, np, np);
    printf("metric tokenizer/%s ftfy_prompts_20_24_matched %d/5 tol 5/5\n", src, ftfy_matched);
    npy_free(&sd1);
    npy_free(&sd2);
    npy_free(&oc);
    json_decref(pj);
}

/* tokenizer/ids.json: 20 more prompts with raw BPE ids and both 77-id rows. */
static void check_ids_json(const sd_tokenizer *t, const char *src)
{
    json_error_t je;
    json_t *root = json_load_file(t_ref("tokenizer/ids.json"), 0, &je);
    CHECKF(root != NULL, "ids.json loads", "%s", je.text);
    if (!root) return;
    json_t *prompts = json_object_get(root, "prompts");
    size_t np = json_array_size(prompts), good = 0;
    for (size_t i = 0; i < np; i++) {
        json_t *e = json_array_get(prompts, i);
        const char *text = json_string_value(json_object_get(e, "prompt"));
        int64_t bpe[4096], s1[77], s2[77];
        size_t nb, n1, n2, n = 0;
        json_ids(json_object_get(e, "bpe_ids"), bpe, 4096, &nb);
        json_ids(json_object_get(e, "sd1_ids_77"), s1, 77, &n1);
        json_ids(json_object_get(e, "sd2_ids_77"), s2, 77, &n2);
        int32_t *raw = NULL, *w1 = NULL, *w2 = NULL;
        int nw1 = 0, nw2 = 0;
        sd_err err;
        sd_err_clear(&err);
        int rc = tok_encode(t, text, &raw, &n, &err) | tok_windows(t, text, 49407, &w1, &nw1, &err) |
                 tok_windows(t, text, 0, &w2, &nw2, &err);
        int ok = !rc && first_diff(raw, n, bpe, nb) < 0 && first_diff(w1, 77, s1, n1) < 0 &&
                 first_diff(w2, 77, s2, n2) < 0;
        char name[160];
        snprintf(name, sizeof name, "%s: ids.json prompt %zu", src, i);
        CHECKF(ok, name, "\"%.60s\": rc=%d raw diff at %ld", text, rc, rc ? 0 : first_diff(raw, n, bpe, nb));
        good += ok;
        free(raw);
        free(w1);
        free(w2);
    }
    CHECKF(np == 20 && good == np, "ids.json: all 20 prompts", "%zu/%zu", good, np);
    json_decref(root);
}

static void check_windows(const sd_tokenizer *t)
{
    char text[2048] = "";
    for (int i = 0; i < 200; i++) strcat(text, i ? " cat" : "cat");   /* "cat" is one token */
    int32_t *w = NULL, *raw = NULL;
    int nw = 0;
    size_t n = 0;
    sd_err err;
    sd_err_clear(&err);
    CHECK(!tok_encode(t, text, &raw, &n, &err) && n == 200, "200-token prompt encodes to 200 ids");
    CHECK(!tok_windows(t, text, 49407, &w, &nw, &err) && nw == 3, "200 tokens -> 3 windows");
    int ok = nw == 3;
    for (int k = 0; k < nw && ok; k++) {
        const int32_t *row = w + k * 77;
        int has_eos = 0;
        for (int i = 1; i < 77; i++) has_eos |= row[i] == 49407;
        ok = row[0] == 49406 && has_eos;
    }
    CHECK(ok, "every window starts with BOS and holds EOS");
    CHECK(nw == 3 && w[76] == 49407 && w[77 + 76] == 49407 && w[2 * 77 + 50] == raw[199] &&
          w[2 * 77 + 51] == 49407 && w[2 * 77 + 52] == 49407 && w[77 + 1] == raw[75],
          "windows hold 75+75+50 tokens in order, SD1 pads with EOS");
    free(w);
    CHECK(!tok_windows(t, text, 0, &w, &nw, &err) && nw == 3 && w[2 * 77 + 51] == 49407 && w[2 * 77 + 52] == 0 &&
          w[2 * 77 + 76] == 0, "SD2 pads with 0 after EOS");
    free(w);
    free(raw);

    const char *empties[] = { "", "   \t\n ", NULL };
    for (int k = 0; k < 3; k++) {
        w = NULL;
        int rc = tok_windows(t, empties[k], 0, &w, &nw, &err);
        int good = !rc && nw == 1 && w[0] == 49406 && w[1] == 49407;
        for (int i = 2; good && i < 77; i++) good = w[i] == 0;
        char name[80];
        snprintf(name, sizeof name, "empty prompt %d -> one window [BOS, EOS, 0...]", k);
        CHECKF(good, name, "rc=%d nw=%d", rc, nw);
        free(w);
    }
    /* exactly 75 tokens: one window, EOS in the last slot */
    char t75[512] = "";
    for (int i = 0; i < 75; i++) strcat(t75, " cat");
    CHECK(!tok_windows(t, t75, 0, &w, &nw, &err) && nw == 1 && w[76] == 49407, "75 tokens fill one window");
    free(w);
}

static int same_ids(const sd_tokenizer *t, const char *a, const char *b)
{
    int32_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    sd_err err;
    sd_err_clear(&err);
    int ok = !tok_encode(t, a, &x, &nx, &err) && !tok_encode(t, b, &y, &ny, &err) && nx == ny &&
             (nx == 0 || !memcmp(x, y, nx * sizeof *x));
    free(x);
    free(y);
    return ok;
}

static void check_cleanup(const sd_tokenizer *t)
{
    /* Invalid UTF-8 is replaced by U+FFFD (EF BF BD), never an error. */
    CHECK(same_ids(t, "\xff\xfe" "abc \xc3", "\xEF\xBF\xBD\xEF\xBF\xBD" "abc \xEF\xBF\xBD"),
          "invalid UTF-8 bytes become U+FFFD");
    CHECK(same_ids(t, "\xed\xa0\x80 x \xc0\xaf \xf8\x88\x80\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD x "
                   "\xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"),
          "surrogates, overlong and 5-byte forms are replaced byte by byte");
    /* html.unescape semantics */
    CHECK(same_ids(t, "&amp;amp;amp; &#65;&#x42; &lt;3", "& ab <3"), "HTML entities unescaped (ftfy loop + twice)");
    /* "&amp;" tokenizes as the pieces "&", "amp", ";" */
    CHECK(same_ids(t, "<b> &amp;amp;amp;", "<b> & amp ;") && !same_ids(t, "<b> &amp;amp;amp;", "<b> &"),
          "with '<' in the line only the two html.unescape passes run");
    CHECK(same_ids(t, "x &notit; &copy2024 &#128;", "x \xC2\xACit; \xC2\xA9" "2024 \xE2\x82\xAC"),
          "legacy entities without ';' and cp1252 numeric references");
    CHECK(same_ids(t, "ΟΔΟΣ ΣΑ İ", "οδος σα i\xCC\x87"), "Python lower(): final sigma, dotted I");
    CHECK(same_ids(t, "ÀÉÎÕÜ ĀĞŁŽ ΑΒΓ АБВЁ", "àéîõü āğłž αβγ абвё"), "lowercase beyond ASCII");
    CHECK(same_ids(t, "cafe\xCC\x81", "caf\xC3\xA9"), "NFC composes e + combining acute");
    CHECK(same_ids(t, "\xEF\xBD\xB1 \xEF\xBC\xA1", "\xE3\x82\xA2 a"), "half-width katakana and full-width Latin folded");
    CHECK(same_ids(t, "\x1b[31mred\x1b[0m", "red"), "ANSI terminal escapes removed");
    CHECK(same_ids(t, "Gru\xC3\x9F\xE2\x80\x9C", "gru\xC3\x9F\""), "ß before a curly quote is not taken for mojibake");
    CHECK(same_ids(t, "\xC3\xA6\xC2\x97\xC2\xA5\xC3\xA6\xC2\x9C\xC2\xAC", "\xE6\x97\xA5\xE6\x9C\xAC"),
          "CJK mojibake (two sequences) is repaired");
    /* a long single word (no spaces) is still fine */
    char big[4001];
    memset(big, 'q', 4000);
    big[4000] = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    sd_err err;
    sd_err_clear(&err);
    CHECK(!tok_encode(t, big, &ids, &n, &err) && n > 0, "4000-letter word encodes");
    free(ids);
    /* a 200 KB word without any merge-friendly structure: the BPE works on
     * 1 KB runs, so this stays linear (the reference would be quadratic) */
    size_t blen = 200 * 1024;
    char *huge = malloc(blen + 1);
    uint32_t r = 7;
    for (size_t i = 0; i < blen; i++) {
        r = r * 1103515245u + 12345u;
        huge[i] = (char)('a' + (r >> 16) % 26);
    }
    huge[blen] = 0;
    int32_t *ids2 = NULL;
    size_t n2 = 0;
    CHECK(!tok_encode(t, huge, &ids, &n, &err) && n > 200 * 1024 / 16, "200 KB single word encodes");
    huge[1000] = 0;   /* below the run length the result is the plain BPE of the whole word */
    CHECK(!tok_encode(t, huge, &ids2, &n2, &err) && n2 > 0 && n2 < n && ids2[n2 - 1] >= 256, "1000-letter word");
    free(huge);
    free(ids);
    free(ids2);
    CHECK(!tok_encode(t, NULL, &ids, &n, &err) && n == 0, "NULL text is the empty prompt");
    free(ids);
}

/* Random bytes biased toward the characters the cleanup treats specially:
 * never an error, always well-formed windows. */
static void check_fuzz(const sd_tokenizer *t)
{
    static const char alphabet[] = "&#;x<|>'ams \t\n\x1b[0123456789ABCDEFabcdef\xC3\xA9\xC2\xE2\x80\x9C\x9D\xF0\x9F\xEF\xBC\xA1\xCE\xA3\xFF";
    static const char *const frags[] = { "&amp;", "&#x", "&#", "&notin", "<|startoftext|>", "<|endoftext|>", "'ll",
                                         "\xC3\x83\xC2\xA9", "\xE2\x82\xAC\xC5\x93", "\xCE\xA3", "\xEF\xAC\x81" };
    uint32_t seed = 12345;
    int bad = 0, worst = -1;
    char buf[600];
    for (int it = 0; it < 3000; it++) {
        size_t len = 0, target = (size_t)(seed % 500);
        while (len < target) {
            seed = seed * 1103515245u + 12345u;
            uint32_t r = seed >> 8;
            if (r % 7 == 0) {
                const char *f = frags[(r / 7) % (sizeof frags / sizeof frags[0])];
                size_t fl = strlen(f);
                if (len + fl >= sizeof buf) break;
                memcpy(buf + len, f, fl);
                len += fl;
            } else {
                char c = (r % 5 == 0) ? (char)(1 + r % 255) : alphabet[(r / 5) % (sizeof alphabet - 1)];
                buf[len++] = c ? c : 'z';
            }
        }
        buf[len] = 0;
        sd_err err;
        sd_err_clear(&err);
        int32_t *w = NULL;
        int nw = 0;
        int ok = !tok_windows(t, buf, 0, &w, &nw, &err) && nw >= 1;
        for (int k = 0; ok && k < nw; k++) {
            const int32_t *row = w + k * 77;
            int eos = 0;
            for (int i = 0; i < 77; i++) {
                ok &= row[i] >= 0 && row[i] < tok_vocab_size(t);
                eos |= i > 0 && row[i] == 49407;
            }
            ok &= row[0] == 49406 && eos;
        }
        if (!ok && !bad++) worst = it;
        free(w);
        seed = seed * 1103515245u + 12345u;
    }
    CHECKF(!bad, "3000 random byte strings tokenize into well-formed windows", "%d failed, first at %d", bad, worst);
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

/* The 514-id demo vocabulary: byte characters, the same with </w>, start, end. */
static void check_demo_vocab(void)
{
    char dir[] = "/tmp/sdtokXXXXXX", path[512];
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    /* byte characters in GPT-2 order, written as \u escapes */
    int cps[256], k = 0, extra = 0;
    for (int b = 0; b < 256; b++)
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) cps[k++] = b;
    for (int b = 0; b < 256; b++)
        if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) cps[k++] = 256 + extra++;
    size_t cap = 64 * 1024, len = 0;
    char *js = malloc(cap);
    len += (size_t)snprintf(js + len, cap - len, "{");
    for (int i = 0; i < 512; i++)
        len += (size_t)snprintf(js + len, cap - len, "\"\\u%04x%s\": %d, ", cps[i % 256], i < 256 ? "" : "</w>", i);
    len += (size_t)snprintf(js + len, cap - len, "\"<|startoftext|>\": 512, \"<|endoftext|>\": 513}");
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    write_file(path, js);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    write_file(path, "#version: 0.2\n");
    free(js);

    sd_err err;
    sd_err_clear(&err);
    sd_tokenizer *t = tok_load(dir, &err);
    CHECKF(t != NULL, "demo 514-id vocabulary loads", "%s", err.msg);
    if (t) {
        CHECK(tok_bos(t) == 512 && tok_eos(t) == 513 && tok_vocab_size(t) == 514, "demo vocab: BOS/EOS by string");
        int32_t *ids = NULL, *w = NULL;
        size_t n = 0;
        int nw = 0;
        /* 'h' = 0x68 -> id 0x68-0x21 = 71, 'i' + </w> -> 256 + 72; é = C3 A9 -> ids 162-? */
        int ok = !tok_encode(t, "Hi é", &ids, &n, &err) && n == 4 && ids[0] == 'h' - '!' &&
                 ids[1] == 256 + 'i' - '!' && ids[2] == 0xC3 - 0xAE + 94 + 12 && ids[3] == 256 + 0xA9 - 0xA1 + 94;
        CHECKF(ok, "demo vocab tokenizes bytes", "n=%zu ids %d %d %d %d", n, n > 0 ? ids[0] : -1, n > 1 ? ids[1] : -1,
               n > 2 ? ids[2] : -1, n > 3 ? ids[3] : -1);
        CHECK(!tok_windows(t, "hi", 513, &w, &nw, &err) && nw == 1 && w[0] == 512 && w[3] == 513 && w[76] == 513,
              "demo vocab windows");
        free(ids);
        free(w);
        tok_free(t);
    }
    /* merges.txt path with vocab.json beside it also works */
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    sd_err_clear(&err);
    t = tok_load(path, &err);
    CHECKF(t && tok_vocab_size(t) == 514, "merges.txt path picks up vocab.json beside it", "%s", err.msg);
    tok_free(t);

    /* broken files give format errors naming the file */
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    write_file(path, "{\"a\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2}");
    sd_err_clear(&err);
    t = tok_load(dir, &err);
    CHECKF(!t && err.code == SD_EFORMAT && strstr(err.msg, "vocab.json"), "vocab without byte tokens is rejected",
           "%s", err.msg);
    write_file(path, "[1,2");
    sd_err_clear(&err);
    t = tok_load(dir, &err);
    CHECKF(!t && err.code == SD_EFORMAT, "vocab.json that is not JSON is rejected", "%s", err.msg);
    snprintf(path, sizeof path, "%s/bad.txt", dir);
    write_file(path, "#version\ni n\nthisisonetoken\n");
    sd_err_clear(&err);
    t = tok_load(path, &err);
    CHECKF(!t && err.code == SD_EFORMAT && strstr(err.msg, "line 3"), "malformed merge line is rejected with its line",
           "%s", err.msg);
    /* a merges file alone builds CLIP's order: 2 merges -> 512 + 2 + 2 ids */
    write_file(path, "#version\ni n\nt h\n");
    sd_err_clear(&err);
    t = tok_load(path, &err);
    CHECKF(t && tok_vocab_size(t) == 516 && tok_bos(t) == 514 && tok_eos(t) == 515, "plain merges file builds its vocab",
           "%s", err.msg);
    if (t) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK(!tok_encode(t, "in thin", &ids, &n, &err) && n == 5 && ids[0] == 'i' - '!' && ids[1] == 256 + 'n' - '!' &&
              ids[2] == 513 && ids[3] == 'i' - '!' && ids[4] == 256 + 'n' - '!', "merge ranks applied (only 'th')");
        free(ids);
    }
    tok_free(t);
    t_rmtree(dir);
}

static void check_find(void)
{
    sd_err err;
    sd_err_clear(&err);
    sd_tokenizer *t = tok_find(t_ref("models/tiny-sd1"), NULL, NULL, &err);
    CHECKF(t && tok_vocab_size(t) == 49408, "find: <model folder>/tokenizer/", "%s", err.msg);
    tok_free(t);
    sd_err_clear(&err);
    t = tok_find(t_ref("models/tiny-sd2"), NULL, NULL, &err);
    int32_t *w = NULL;
    int nw = 0;
    CHECKF(t && !tok_windows(t, "a photograph of an astronaut riding a horse", 0, &w, &nw, &err) && nw == 1 &&
           w[0] == 49406 && w[1] == 320 && w[8] == 4558 && w[9] == 49407 && w[10] == 0,
           "find: tiny-sd2 folder, SD2 ids", "%s", err.msg);
    free(w);
    tok_free(t);
    sd_err_clear(&err);
    t = tok_find(t_ref("models/tiny-sd1-fp16.safetensors"), NULL, t_ref("tokenizer"), &err);
    CHECKF(t && tok_vocab_size(t) == 49408, "find: single file falls back to data_dir .gz", "%s", err.msg);
    tok_free(t);
    sd_err_clear(&err);
    t = tok_find(t_ref("models/tiny-sd1"), t_ref("tokenizer/bpe_simple_vocab_16e6.txt.gz"), NULL, &err);
    CHECKF(t && tok_bos(t) == 49406, "find: explicit vocab flag wins", "%s", err.msg);
    tok_free(t);
    sd_err_clear(&err);
    t = tok_find(t_ref("models/tiny-sd1"), "/nonexistent/vocab.gz", NULL, &err);
    CHECKF(!t && err.code == SD_ENOTFOUND && strstr(err.msg, "/nonexistent/vocab.gz") && strstr(err.msg, "--vocab"),
           "find: a bad explicit flag is an error naming --vocab, no fallback", "%s", err.msg);
    sd_err_clear(&err);
    t = tok_find("/nonexistent/model.safetensors", NULL, "/nonexistent/data", &err);
    CHECKF(t && tok_vocab_size(t) == 49408 && tok_bos(t) == 49406,
           "find: a single file with no vocabulary beside it or in data_dir gets the built-in one", "%s", err.msg);
    tok_free(t);
    sd_err_clear(&err);
    t = tok_find(NULL, NULL, NULL, &err);
    CHECKF(t && tok_vocab_size(t) == 49408, "find: nothing given -> the built-in vocabulary", "%s", err.msg);
    tok_free(t);
    /* a vocabulary that is there but broken is an error, not skipped for the built-in one */
    char dir[] = "/tmp/sdtokXXXXXX", path[512];
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    snprintf(path, sizeof path, "%s/tokenizer", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/tokenizer/bpe_simple_vocab_16e6.txt.gz", dir);
    write_file(path, "#version\nnot-a-merge-line\n");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    sd_err_clear(&err);
    t = tok_find(path, NULL, NULL, &err);
    CHECKF(!t && err.code == SD_EFORMAT && strstr(err.msg, "expected two tokens"),
           "find: a broken tokenizer/ beside the model is an error, not replaced by the built-in one", "%s", err.msg);
    tok_free(t);
    t_rmtree(dir);
}

int main(void)
{
    if (!t_have_ref()) {
        CHECK(0, "reference data present (set SD_REF)");
        return t_done();
    }
    sd_err err;
    sd_err_clear(&err);
    double t0 = now_ms();
    sd_tokenizer *gz = tok_load(t_ref("tokenizer/bpe_simple_vocab_16e6.txt.gz"), &err);
    double t1 = now_ms();
    CHECKF(gz != NULL, "load bpe_simple_vocab_16e6.txt.gz", "%s", err.msg);
    fprintf(stderr, "# .gz vocabulary load: %.1f ms CPU\n", t1 - t0);
    sd_err_clear(&err);
    t0 = now_ms();
    sd_tokenizer *hf = tok_load(t_ref("models/tiny-sd1/tokenizer"), &err);
    t1 = now_ms();
    CHECKF(hf != NULL, "load diffusers tokenizer/ folder", "%s", err.msg);
    fprintf(stderr, "# vocab.json + merges.txt load: %.1f ms CPU\n", t1 - t0);
    if (!gz || !hf) {
        tok_free(gz);
        tok_free(hf);
        return t_done();
    }
    CHECK(tok_bos(gz) == 49406 && tok_eos(gz) == 49407 && tok_vocab_size(gz) == 49408, ".gz: ids of start/end, size");
    CHECK(tok_bos(hf) == 49406 && tok_eos(hf) == 49407 && tok_vocab_size(hf) == 49408, "folder: ids of start/end, size");
    check_goldens(gz, "gz");
    check_goldens(hf, "folder");
    check_ids_json(gz, "gz");
    check_ids_json(hf, "folder");
    check_windows(gz);
    check_cleanup(gz);
    check_fuzz(gz);
    check_demo_vocab();
    check_find();
    /* the copy built into the binary (third_party/clip/) tokenizes as the reference's file */
    sd_err_clear(&err);
    sd_tokenizer *bi = tok_load_builtin(&err);
    CHECKF(bi && tok_bos(bi) == 49406 && tok_eos(bi) == 49407 && tok_vocab_size(bi) == 49408,
           "built-in vocabulary loads: ids of start/end, size", "%s", err.msg);
    if (bi) {
        check_goldens(bi, "built-in");
        check_ids_json(bi, "built-in");
    }
    tok_free(bi);
    tok_free(gz);
    tok_free(hf);
    return t_done();
}
