/* family.h — which model family a checkpoint is, decided from its tensors
 * by one rule, and what each family implies.  The engine decides it once at
 * load (sd_engine_load) and reads the descriptor from then on; it sits above
 * weights.h, which knows nothing of families.
 *
 * The decision reads shapes and names, never a file name or a config's
 * description: a UNet add-embedding (unet.add_embedding.*) makes SDXL; a
 * conv_in taking 2·out + 1 channels (latent, mask, masked-image latent) makes
 * the inpainting variant of its base; the base is SD2 when the text tower is
 * OpenCLIP (sdw_text_kind_of), else SD1 — also when there is no text tower,
 * as for a UNet-only file.  The SDXL refiner is an add-embedding UNet with
 * only the second (OpenCLIP-bigG) tower — its single file names it
 * conditioner.embedders.0.model.*, mapped to text_encoder_2.* — and no
 * first one: SD_FAMILY_SDXL_REFINER, refused.  Everything that differs by family (pad id, head
 * split default, added conditioning, extra input channels, whether this
 * build can run it) is read from the descriptor, not re-inferred. */
#ifndef SD_FAMILY_H
#define SD_FAMILY_H

#include "weights.h"

typedef enum {
    SD_FAMILY_SD1 = 0,
    SD_FAMILY_SD2,
    SD_FAMILY_SDXL,
    SD_FAMILY_SD1_INPAINT,
    SD_FAMILY_SD2_INPAINT,
    SD_FAMILY_SDXL_INPAINT,
    SD_FAMILY_SDXL_REFINER,   /* never run: refused at load with its own message */
    SD_FAMILY_COUNT
} sd_family;

typedef struct sd_family_desc {
    const char *name;        /* "sd1", "sd2", "sdxl", "sd1-inpaint", ... (sd_model_info.family) */
    sd_family base;          /* the family without its variant (SD1 for SD1_INPAINT) */
    int pad_eos;             /* 1: prompt windows padded with the end token (CLIP-L); 0: with id 0 (OpenCLIP) */
    int num_heads;           /* UNet head split when no config says: heads everywhere, */
    int head_dim;            /* or channels per head (one of the two is 0) */
    int added_cond;          /* 1: the UNet takes an added vector (SDXL's pooled text + size ids) */
    int inpaint;             /* 1: the UNet takes mask + masked-image latent as extra input channels */
    int supported;           /* 1: the engine can run it today */
    int add_time_dim;        /* UNet added conditioning: sinusoid width per size/crop id when no config
                                says (diffusers addition_time_embed_dim; SDXL 1.0: 256), 0 = none */
    float vae_scaling;       /* latent scaling factor when no config names one (SD: 0.18215, SDXL: 0.13025) */
    int refiner;             /* 1: the SDXL refiner (one OpenCLIP-bigG tower, aesthetic-score time ids) */
    int native_size;         /* the side it was trained at: a request without width/height gets it
                                (sd_model_info.native_size; SD 1.x/2.x: 512, SDXL: 1024) */
} sd_family_desc;

/* The descriptor of f (of SD1 for an out-of-range value). */
const sd_family_desc *sd_family_info(sd_family f);

/* The facts the decision reads, gathered from the tensors by sd_family_decide. */
typedef struct sd_family_facts {
    sdw_text_kind text_kind;  /* SDW_TEXT_NONE when the checkpoint has no text tower */
    int unet_in;              /* conv_in input channels, 0 when there is no UNet */
    int unet_out;             /* conv_out output channels, 0 when there is no UNet */
    int add_embedding;        /* 1 when the UNet has an added-conditioning embedding */
    sdw_text_kind text2_kind; /* the second tower (text_encoder_2.*; SDXL's OpenCLIP-bigG) */
} sd_family_facts;

/* The rule above, on facts (pure; for the loader and tests). */
sd_family sd_family_from_facts(const sd_family_facts *f);
/* Gather the facts from w's tensors and apply the rule. */
sd_family sd_family_decide(const sd_weights *w);

#endif
