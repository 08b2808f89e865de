/* ldm_names.h — internal to the loader: map single-file (CompVis/LDM,
 * OpenCLIP) tensor names to canonical names (diffusers names prefixed by
 * component).  The UNet's block layout (levels, blocks per level, where the
 * attention / down / up samplers are) and the VAE decoder's level count are
 * derived from the names present in the file, never from constants. */
#ifndef SD_LDM_NAMES_H
#define SD_LDM_NAMES_H

#include <stddef.h>

#include "../../base/err.h"

typedef struct ldm_map ldm_map;

enum {
    LDM_IGNORE = 0,  /* not a model weight we use (buffers, EMA, position_ids, text_projection...) */
    LDM_KEEP = 1,    /* out = canonical name */
    LDM_SPLIT = 2,   /* OpenCLIP in_proj: out = the q_proj name; k/v follow by renaming q_proj */
    LDM_TRANSPOSE = 3 /* a 2-d tensor kept transposed (SDXL's OpenCLIP text_projection [W,P] -> [P,W]) */
};

/* Scan all names of a file to learn its layout.  NULL + err (SD_EFORMAT) if
 * the layout is impossible (e.g. absurd block indices). */
ldm_map *ldm_map_new(const char *const *names, size_t n, const char *file, sd_err *err);
void ldm_map_free(ldm_map *m);

/* Map one name; returns LDM_IGNORE / LDM_KEEP / LDM_SPLIT, or -1 + err when a
 * name under a known component cannot be mapped. */
int ldm_map_name(const ldm_map *m, const char *src, char *out, size_t outsz, sd_err *err);

/* Map a diffusers-folder name whose spelling differs from today's diffusers
 * (old VAE attention names query/key/value/proj_attn).  Writes the canonical
 * name; returns LDM_IGNORE for position_ids, else LDM_KEEP (-1: name too long). */
int ldm_diffusers_name(const char *component, const char *src, char *out, size_t outsz);

#endif
