/* family.c — the family table and the one place a checkpoint's family is
 * decided from its tensors (family.h). */
#include "family.h"

/* name, base, pad_eos, num_heads, head_dim, added_cond, inpaint, supported,
 * add_time_dim, vae_scaling, refiner, native_size */
static const sd_family_desc families[SD_FAMILY_COUNT] = {
    [SD_FAMILY_SD1] = {"sd1", SD_FAMILY_SD1, 1, 8, 0, 0, 0, 1, 0, 0.18215f, 0, 512},
    [SD_FAMILY_SD2] = {"sd2", SD_FAMILY_SD2, 0, 0, 64, 0, 0, 1, 0, 0.18215f, 0, 512},
    [SD_FAMILY_SDXL] = {"sdxl", SD_FAMILY_SDXL, 1, 0, 64, 1, 0, 1, 256, 0.13025f, 0, 1024},
    [SD_FAMILY_SD1_INPAINT] = {"sd1-inpaint", SD_FAMILY_SD1, 1, 8, 0, 0, 1, 1, 0, 0.18215f, 0, 512},
    [SD_FAMILY_SD2_INPAINT] = {"sd2-inpaint", SD_FAMILY_SD2, 0, 0, 64, 0, 1, 1, 0, 0.18215f, 0, 512},
    [SD_FAMILY_SDXL_INPAINT] = {"sdxl-inpaint", SD_FAMILY_SDXL, 1, 0, 64, 1, 1, 1, 256, 0.13025f, 0, 1024},
    [SD_FAMILY_SDXL_REFINER] = {"sdxl-refiner", SD_FAMILY_SDXL, 0, 0, 64, 1, 0, 0, 256, 0.13025f, 1, 1024},
};

const sd_family_desc *sd_family_info(sd_family f)
{
    return &families[(unsigned)f < SD_FAMILY_COUNT ? f : SD_FAMILY_SD1];
}

sd_family sd_family_from_facts(const sd_family_facts *f)
{
    int inpaint = f->unet_out > 0 && f->unet_in == 2 * f->unet_out + 1;
    if (f->add_embedding && f->text_kind == SDW_TEXT_NONE && f->text2_kind != SDW_TEXT_NONE)
        return SD_FAMILY_SDXL_REFINER;
    if (f->add_embedding) return inpaint ? SD_FAMILY_SDXL_INPAINT : SD_FAMILY_SDXL;
    if (f->text_kind == SDW_TEXT_OPENCLIP) return inpaint ? SD_FAMILY_SD2_INPAINT : SD_FAMILY_SD2;
    return inpaint ? SD_FAMILY_SD1_INPAINT : SD_FAMILY_SD1;
}

/* Dimension d of a 4-d tensor, 0 when absent or not 4-d. */
static int dim4(const sdw_tensor *t, int d) { return t && t->ndim == 4 ? (int)t->shape[d] : 0; }

sd_family sd_family_decide(const sd_weights *w)
{
    sd_family_facts f = {
        .text_kind = sdw_text_kind_of(w),
        .unet_in = dim4(sdw_get(w, "unet.conv_in.weight"), 1),
        .unet_out = dim4(sdw_get(w, "unet.conv_out.weight"), 0),
        .add_embedding = sdw_get(w, "unet.add_embedding.linear_1.weight") != NULL,
        .text2_kind = sdw_text2_kind_of(w),
    };
    return sd_family_from_facts(&f);
}
