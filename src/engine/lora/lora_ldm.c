/* lora_ldm.c — a UNet weight's LDM (CompVis / sgm) module name, the
 * spelling kohya's SDXL LoRAs use: "input_blocks.4.1.transformer_blocks.0.
 * attn1.to_q" for diffusers' "down_blocks.1.attentions.0.transformer_blocks.
 * 0.attn1.to_q" (see lora_int.h).
 *
 * The block numbering is learnt from the model's own diffusers names (how
 * many resnets each level has, which levels have attention and samplers),
 * never from constants: input_blocks.0 is conv_in, then per down level one
 * block per resnet (.0 resnet, .1 attention) and one for the downsampler
 * (.0.op); output_blocks per up level one block per resnet, the last one
 * also carrying the upsampler (.1.conv, or .2.conv after an attention);
 * middle_block.{0,1,2} = resnet, attention, resnet.  The inverse of
 * loader/ldm_names.c's UNet part. */
#include "lora_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* "<prefix><digits>." at s (the number below 100000): the rest after the
 * dot, or NULL. */
static const char *index_after(const char *s, const char *prefix, int *v)
{
    size_t pl = strlen(prefix);
    if (strncmp(s, prefix, pl)) return NULL;
    s += pl;
    if (*s < '0' || *s > '9') return NULL;
    int x = 0;
    while (*s >= '0' && *s <= '9') {
        x = x * 10 + (*s++ - '0');
        if (x >= 100000) return NULL;
    }
    if (*s != '.') return NULL;
    *v = x;
    return s + 1;
}

static void grow(short *count, int j)
{
    if (j + 1 > *count) *count = (short)(j + 1);
}

/* One level's record from "<blocks>.L.<rest>" (rest past the level). */
static void scan_level(lora_ldm_level *lv, const char *rest, int down)
{
    int j;
    if (index_after(rest, "resnets.", &j) && j < 1000) grow(&lv->resnets, j);
    else if (index_after(rest, "attentions.", &j)) lv->attn = 1;
    else if (!strncmp(rest, down ? "downsamplers." : "upsamplers.", down ? 13 : 11)) lv->sampler = 1;
}

void lora_ldm_scan(lora_ldm *m, const char *unet_name)
{
    int L;
    const char *r;
    if ((r = index_after(unet_name, "down_blocks.", &L)) && L < LORA_LDM_LEVELS) {
        scan_level(&m->down[L], r, 1);
        if (L + 1 > m->n_down) m->n_down = L + 1;
    } else if ((r = index_after(unet_name, "up_blocks.", &L)) && L < LORA_LDM_LEVELS) {
        scan_level(&m->up[L], r, 0);
        if (L + 1 > m->n_up) m->n_up = L + 1;
    }
}

/* LDM name of a resnet's sub-module ("conv1" -> "in_layers.2"), or NULL. */
static const char *resnet_part(const char *rest, const char **tail)
{
    static const struct { const char *from, *to; } ren[] = {
        {"norm1", "in_layers.0"},  {"conv1", "in_layers.2"},  {"time_emb_proj", "emb_layers.1"},
        {"norm2", "out_layers.0"}, {"conv2", "out_layers.3"}, {"conv_shortcut", "skip_connection"},
    };
    for (size_t i = 0; i < sizeof ren / sizeof ren[0]; i++) {
        size_t l = strlen(ren[i].from);
        if (!strncmp(rest, ren[i].from, l) && (rest[l] == '.' || !rest[l])) {
            *tail = rest + l;
            return ren[i].to;
        }
    }
    return NULL;
}

static int put(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int put(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    return n > 0 && (size_t)n < size;
}

/* "<blocks>.<k>.<sub>.<rest>" for a resnet (sub 0) or attention (sub 1). */
static int block_name(const char *blocks, int k, const char *rest, char *out, size_t size)
{
    int j;
    const char *r, *tail = "";
    if ((r = index_after(rest, "resnets.", &j))) {
        const char *to = resnet_part(r, &tail);
        return to && put(out, size, "%s.%d.0.%s%s", blocks, k, to, tail);
    }
    if ((r = index_after(rest, "attentions.", &j))) return put(out, size, "%s.%d.1.%s", blocks, k, r);
    return 0;
}

static int down_name(const lora_ldm *m, int L, const char *rest, char *out, size_t size)
{
    int k = 1, j = -1;
    for (int l = 0; l < L; l++) k += m->down[l].resnets + m->down[l].sampler;
    if (!strncmp(rest, "downsamplers.0.conv", 19) && !rest[19])
        return put(out, size, "input_blocks.%d.0.op", k + m->down[L].resnets);
    if (!index_after(rest, "resnets.", &j) && !index_after(rest, "attentions.", &j)) return 0;
    return j < m->down[L].resnets && block_name("input_blocks", k + j, rest, out, size);
}

static int up_name(const lora_ldm *m, int L, const char *rest, char *out, size_t size)
{
    int k = 0, j = -1, last = m->up[L].resnets - 1;
    for (int l = 0; l < L; l++) k += m->up[l].resnets;
    if (!strncmp(rest, "upsamplers.0.conv", 17) && !rest[17])
        return last >= 0 && put(out, size, "output_blocks.%d.%d.conv", k + last, m->up[L].attn ? 2 : 1);
    if (!index_after(rest, "resnets.", &j) && !index_after(rest, "attentions.", &j)) return 0;
    return j <= last && block_name("output_blocks", k + j, rest, out, size);
}

static int mid_name(const char *rest, char *out, size_t size)
{
    int j;
    const char *r, *tail = "", *to;
    if ((r = index_after(rest, "attentions.", &j))) return j == 0 && put(out, size, "middle_block.1.%s", r);
    if (!(r = index_after(rest, "resnets.", &j)) || j > 1 || !(to = resnet_part(r, &tail))) return 0;
    return put(out, size, "middle_block.%d.%s%s", 2 * j, to, tail);
}

static int top_name(const char *module, char *out, size_t size)
{
    static const struct { const char *from, *to; } ren[] = {
        {"time_embedding.linear_1", "time_embed.0"}, {"time_embedding.linear_2", "time_embed.2"},
        {"conv_in", "input_blocks.0.0"},             {"conv_norm_out", "out.0"},
        {"conv_out", "out.2"},                       {"add_embedding.linear_1", "label_emb.0.0"},
        {"add_embedding.linear_2", "label_emb.0.2"},
    };
    for (size_t i = 0; i < sizeof ren / sizeof ren[0]; i++)
        if (!strcmp(module, ren[i].from)) return put(out, size, "%s", ren[i].to);
    return 0;
}

int lora_ldm_name(const lora_ldm *m, const char *module, char *out, size_t size)
{
    int L;
    const char *r;
    if ((r = index_after(module, "down_blocks.", &L))) return L < m->n_down && down_name(m, L, r, out, size);
    if ((r = index_after(module, "up_blocks.", &L))) return L < m->n_up && up_name(m, L, r, out, size);
    if (!strncmp(module, "mid_block.", 10)) return mid_name(module + 10, out, size);
    return top_name(module, out, size);
}
