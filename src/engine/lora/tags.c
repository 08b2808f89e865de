/* tags.c — the LoRAs one request asks for (tags.h): its loras list, then
 * the <lora:name:weight> tags of its prompt, taken out of the text; a tag's
 * weight in Python's float() grammar, as A1111 reads it. */
#include "tags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/alloc.h"
#include "../../base/pyfloat.h"

int lora_name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= SD_MAX_LORA_NAME || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (c == 0 || !strchr(" _-.+", c))) return 0;
    }
    return 1;
}

/* w is checked as sent (a double: 4.0000001 is not 4); `shown` is how the
 * request spelt it (a tag's text), or NULL to print w. */
static int add_spec(lora_request *r, const char *name, size_t len, double w, const char *shown, const char *field,
                    sd_err *err)
{
    if (r->n >= SD_MAX_LORAS)
        return sd_errf(err, SD_EINVAL, "loras", "too many LoRAs: at most %d in one request (fields and tags together)",
                       SD_MAX_LORAS);
    if (!lora_name_ok(name, len))
        return sd_errf(err, SD_EINVAL, field, "LoRA name '%.*s' is not a name: 1..%d letters, digits, ' ', '_', '-', "
                       "'.' or '+', not starting with '.'", (int)(len > 64 ? 64 : len), name, SD_MAX_LORA_NAME - 1);
    if (!(w >= -SD_MAX_LORA_WEIGHT && w <= SD_MAX_LORA_WEIGHT)) {
        char num[32];
        if (!shown) snprintf(num, sizeof num, "%g", w);
        return sd_errf(err, SD_EINVAL, field, "LoRA '%.*s': weight %s is outside [%g, %g]", (int)len, name,
                       shown ? shown : num, -SD_MAX_LORA_WEIGHT, SD_MAX_LORA_WEIGHT);
    }
    memcpy(r->names[r->n], name, len);
    r->names[r->n][len] = 0;
    r->spec[r->n].name = r->names[r->n];
    r->spec[r->n].weight = (float)w;
    r->n++;
    return 0;
}

/* One tag's inside ("name" or "name:weight"), after "<lora:".  The weight
 * is read as A1111 reads it, by Python's float() (base/pyfloat.h): 1e1,
 * " 1 ", inf and nan are numbers (then the range rule applies), 0x1p1 is
 * not. */
static int parse_tag(lora_request *r, const char *s, size_t len, sd_err *err)
{
    const char *colon = memchr(s, ':', len);
    size_t nlen = colon ? (size_t)(colon - s) : len;
    double w = 1.0;
    char shown[48] = "";
    if (colon) {
        size_t wl = len - nlen - 1;
        if (sd_pyfloat(colon + 1, wl, &w))
            return sd_errf(err, SD_EINVAL, "prompt", "malformed LoRA tag '<lora:%.*s>': write <lora:name> or "
                           "<lora:name:weight> with a number for the weight", (int)(len > 80 ? 80 : len), s);
        /* at most 40 bytes of it, cut before a UTF-8 character's
         * continuation bytes (Python's float() takes Unicode digits) */
        size_t cut = wl > 40 ? 40 : wl;
        while (cut > 0 && cut < wl && ((unsigned char)colon[1 + cut] & 0xC0) == 0x80) cut--;
        snprintf(shown, sizeof shown, "'%.*s%s'", (int)cut, colon + 1, cut < wl ? "..." : "");
    }
    return add_spec(r, s, nlen, w, colon ? shown : NULL, "prompt", err);
}

int lora_request_parse(const sd_gen_params *p, lora_request *r, sd_err *err)
{
    memset(r, 0, sizeof *r);
    if (p->n_loras < 0 || p->n_loras > SD_MAX_LORAS)
        return sd_errf(err, SD_EINVAL, "loras", "too many LoRAs: %d, at most %d", p->n_loras, SD_MAX_LORAS);
    for (int i = 0; i < p->n_loras; i++) {
        const char *nm = p->loras[i].name ? p->loras[i].name : "";
        if (add_spec(r, nm, strlen(nm), p->loras[i].weight, NULL, "loras", err)) return -1;
    }
    const char *s = p->prompt ? p->prompt : "";
    size_t n = strlen(s);
    if (!(r->prompt = sd_malloc(n + 1))) return sd_errf(err, SD_ENOMEM, "prompt", "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (strncmp(s + i, "<lora:", 6)) { r->prompt[o++] = s[i++]; continue; }
        const char *in = s + i + 6, *close = strchr(in, '>'), *open = strchr(in, '<');
        if (!close || (open && open < close)) {
            lora_request_clear(r);
            return sd_errf(err, SD_EINVAL, "prompt", "LoRA tag '%.40s' has no closing '>'", s + i);
        }
        if (parse_tag(r, in, (size_t)(close - in), err)) { lora_request_clear(r); return -1; }
        i = (size_t)(close - s) + 1;
    }
    r->prompt[o] = 0;
    return 0;
}

void lora_request_clear(lora_request *r)
{
    free(r->prompt);
    r->prompt = NULL;
}

