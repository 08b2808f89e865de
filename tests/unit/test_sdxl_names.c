/* test_sdxl_names.c — the single-file name map (loader/ldm_names.c) on the
 * full-size SDXL 1.0 base layout: every one of the 1680
 * model.diffusion_model.* names and 248 first_stage_model.* names of
 * reference/sdxl/tensors.json maps to a distinct canonical name, and the
 * SDXL-specific places land where diffusers has them: label_emb.0.{0,2} ->
 * add_embedding.linear_{1,2}; input_blocks.{1,2} -> level-0 ResBlocks (no
 * attention there); input_blocks.7.0.skip_connection -> down_blocks.2's
 * conv_shortcut; the upsamplers output_blocks.2.2.conv / 5.2.conv; depth-10
 * transformers in the mid block and up_blocks.0; 3 levels in all. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "../../src/engine/loader/ldm_names.h"

#define MAXN 4096

static char *mapped[MAXN];
static int nmapped;

static int has(const char *name)
{
    for (int i = 0; i < nmapped; i++)
        if (!strcmp(mapped[i], name)) return 1;
    return 0;
}

static int count_prefix(const char *prefix)
{
    int n = 0;
    for (int i = 0; i < nmapped; i++) n += !strncmp(mapped[i], prefix, strlen(prefix));
    return n;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void)
{
    json_error_t je;
    json_t *root = json_load_file(t_ref("sdxl/tensors.json"), 0, &je);
    json_t *tensors = json_object_get(root, "tensors");
    if (!json_is_object(tensors)) {
        CHECKF(0, "sdxl/tensors.json readable", "%s", je.text);
        json_decref(root);
        return t_done();
    }
    const char *names[MAXN];
    size_t n = 0;
    const char *key;
    json_t *val;
    json_object_foreach(tensors, key, val) if (n < MAXN) names[n++] = key;
    sd_err err;
    sd_err_clear(&err);
    ldm_map *m = ldm_map_new(names, n, "sd_xl_base_1.0.safetensors", &err);
    CHECKF(m != NULL, "layout of the 2515 SDXL names learnt", "%s", err.msg);
    if (!m) { json_decref(root); return t_done(); }

    int unet = 0, vae = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        int is_unet = !strncmp(names[i], "model.diffusion_model.", 22), is_vae = !strncmp(names[i], "first_stage_model.", 18);
        if (!is_unet && !is_vae) continue;
        char out[256];
        sd_err_clear(&err);
        int rc = ldm_map_name(m, names[i], out, sizeof out, &err);
        if (rc != LDM_KEEP) {
            if (bad++ < 5) fprintf(stderr, "%s -> rc %d %s\n", names[i], rc, err.msg);
            continue;
        }
        unet += is_unet;
        vae += is_vae;
        mapped[nmapped++] = strdup(out);
    }
    CHECKF(bad == 0 && unet == 1680 && vae == 248, "every UNet (1680) and VAE (248) name maps", "bad %d unet %d vae %d",
           bad, unet, vae);
    qsort(mapped, nmapped, sizeof *mapped, cmp);
    int dup = 0;
    for (int i = 1; i < nmapped; i++) dup += !strcmp(mapped[i - 1], mapped[i]);
    CHECKF(dup == 0, "no two names map to the same canonical name", "%d duplicates", dup);

    CHECK(has("unet.add_embedding.linear_1.weight") && has("unet.add_embedding.linear_1.bias") &&
          has("unet.add_embedding.linear_2.weight") && has("unet.add_embedding.linear_2.bias"),
          "label_emb.0.0 / .0.2 -> add_embedding.linear_1 / linear_2");
    CHECK(has("unet.down_blocks.0.resnets.0.conv1.weight") && has("unet.down_blocks.0.resnets.1.conv1.weight") &&
          count_prefix("unet.down_blocks.0.attentions.") == 0 && count_prefix("unet.up_blocks.2.attentions.") == 0,
          "level 0: two ResBlocks, no attention, down and up");
    CHECK(has("unet.down_blocks.2.resnets.0.conv_shortcut.weight") && has("unet.down_blocks.1.resnets.0.conv_shortcut.weight"),
          "input_blocks.7.0 / 4.0 skip_connection -> conv_shortcut of levels 2 / 1");
    CHECK(has("unet.up_blocks.0.upsamplers.0.conv.weight") && has("unet.up_blocks.1.upsamplers.0.conv.weight") &&
          count_prefix("unet.up_blocks.2.upsamplers.") == 0 && count_prefix("unet.down_blocks.2.downsamplers.") == 0 &&
          has("unet.down_blocks.1.downsamplers.0.conv.weight"),
          "3 levels: output_blocks.2.2 / 5.2 upsamplers, downsamplers at levels 0-1");
    CHECK(has("unet.mid_block.attentions.0.transformer_blocks.9.attn2.to_k.weight") &&
          !has("unet.mid_block.attentions.0.transformer_blocks.10.norm1.weight") &&
          has("unet.up_blocks.0.attentions.2.transformer_blocks.9.ff.net.2.weight") &&
          has("unet.down_blocks.1.attentions.1.transformer_blocks.1.norm3.weight") &&
          !has("unet.down_blocks.1.attentions.1.transformer_blocks.2.norm3.weight"),
          "transformer depths 2 / 10 / mid 10 keep their block indices");
    CHECK(count_prefix("unet.down_blocks.") > 0 && !has("unet.down_blocks.3.resnets.0.conv1.weight") &&
          has("unet.up_blocks.2.resnets.2.conv1.weight") && !has("unet.up_blocks.3.resnets.0.conv1.weight"),
          "up_blocks.2 (output_blocks.6-8) is the last level");

    for (int i = 0; i < nmapped; i++) free(mapped[i]);
    ldm_map_free(m);
    json_decref(root);
    return t_done();
}
