/* jpeg.c — JPEG via libjpeg-turbo: decoding from memory to RGB8 (gray,
 * YCbCr and Adobe CMYK/YCCK; size limits checked on the header before any
 * pixel buffer exists; truncated or corrupt data is an error, not a gray
 * picture), encoding RGB8 with the parameters in an EXIF APP1 segment, and
 * reading that segment back.
 *
 * libjpeg reports errors through error_exit, which must not return: ours
 * longjmps back into a small function whose state lives in a caller-owned
 * struct (so no indeterminate locals after the jump). */
#include "codec.h"
#include "../base/alloc.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#define JPEG_MAX_SCANS 256               /* progressive files with more are a CPU bomb */
#define JPEG_MAX_MEMORY (512L << 20)     /* libjpeg's internal working memory */

typedef struct jpeg_ctx {
    struct jpeg_error_mgr pub;   /* first: libjpeg casts cinfo->err to this */
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    struct jpeg_progress_mgr progress;
    struct jpeg_destination_mgr dest;
    uint8_t *px;                 /* decoder output (RGB or CMYK) */
    uint8_t *obuf;               /* encoder output */
    size_t ocap;
    int oom;
} jpeg_ctx;

static void on_error_exit(j_common_ptr ci)
{
    jpeg_ctx *c = (jpeg_ctx *)ci->err;
    ci->err->format_message(ci, c->msg);
    longjmp(c->jb, 1);
}

/* Warnings that mean the picture is damaged (truncated file, corrupt entropy
 * data) become errors; harmless ones are ignored. */
static void on_emit_message(j_common_ptr ci, int level)
{
    if (level >= 0) return;
    switch (ci->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_HUFF_BAD_CODE:
        on_error_exit(ci);
        break;
    default:
        break;
    }
}

static void on_output_message(j_common_ptr ci) { (void)ci; }

static void on_progress(j_common_ptr ci)
{
    if (ci->is_decompressor && ((j_decompress_ptr)ci)->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_ctx *c = (jpeg_ctx *)ci->err;
        snprintf(c->msg, sizeof c->msg, "more than %d scans", JPEG_MAX_SCANS);
        longjmp(c->jb, 1);
    }
}

static void ctx_init(jpeg_ctx *c, j_common_ptr ci)
{
    ci->err = jpeg_std_error(&c->pub);
    c->pub.error_exit = on_error_exit;
    c->pub.emit_message = on_emit_message;
    c->pub.output_message = on_output_message;
}

/* Returns 0, -1 (err set: size refused / OOM) or 1 (libjpeg error in c->msg). */
static int jpeg_decode_inner(jpeg_ctx *c, struct jpeg_decompress_struct *ci, const uint8_t *data,
                             size_t len, const img_limits *lim, img_rgb *out, sd_err *err)
{
    if (setjmp(c->jb)) return 1;
    jpeg_create_decompress(ci);
    ci->mem->max_memory_to_use = JPEG_MAX_MEMORY;
    c->progress.progress_monitor = on_progress;
    ci->progress = &c->progress;
    jpeg_mem_src(ci, data, (unsigned long)len);
    jpeg_read_header(ci, TRUE);
    if (img_check_size(lim, "JPEG", ci->image_width, ci->image_height, err)) return -1;

    int cmyk = ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK;
    ci->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(ci);
    int w = (int)ci->output_width, h = (int)ci->output_height, nc = ci->output_components;
    if (nc != (cmyk ? 4 : 3)) {
        snprintf(c->msg, sizeof c->msg, "unexpected %d output components", nc);
        return 1;
    }
    c->px = sd_malloc((size_t)w * h * nc);
    if (!c->px) {
        sd_errf(err, SD_ENOMEM, lim->field, "out of memory decoding a %dx%d JPEG", w, h);
        return -1;
    }
    while (ci->output_scanline < ci->output_height) {
        JSAMPROW row = c->px + (size_t)ci->output_scanline * w * nc;
        jpeg_read_scanlines(ci, &row, 1);
    }
    jpeg_finish_decompress(ci);
    if (cmyk) {
        /* Adobe writes CMYK inverted (0 = full ink); libjpeg hands it over as stored. */
        int inverted = ci->saw_Adobe_marker;
        for (size_t i = 0; i < (size_t)w * h; i++) {
            const uint8_t *s = c->px + 4 * i;
            unsigned k = inverted ? s[3] : 255u - s[3];
            for (int j = 0; j < 3; j++) {
                unsigned v = inverted ? s[j] : 255u - s[j];
                c->px[3 * i + j] = (uint8_t)((v * k + 127) / 255);
            }
        }
    }
    out->width = w;
    out->height = h;
    return 0;
}

int img_jpeg_decode(const uint8_t *data, size_t len, const img_limits *lim, img_rgb *out, sd_err *err)
{
    jpeg_ctx c;
    memset(&c, 0, sizeof c);
    struct jpeg_decompress_struct ci;
    memset(&ci, 0, sizeof ci);
    ctx_init(&c, (j_common_ptr)&ci);
    int rc = jpeg_decode_inner(&c, &ci, data, len, lim, out, err);
    jpeg_destroy_decompress(&ci);
    if (rc == 0) {
        out->px = c.px;
        return 0;
    }
    free(c.px);
    out->width = out->height = 0;
    if (rc == 1)
        return sd_errf(err, SD_EINVAL, lim->field, "%s: the JPEG image is corrupt or truncated (%s)",
                       lim->field, c.msg);
    return -1;
}

/* ---- encoding: a growable memory destination ----------------------------- */

static void dest_init(j_compress_ptr ci)
{
    jpeg_ctx *c = (jpeg_ctx *)ci->err;
    c->ocap = 65536;
    c->obuf = sd_malloc(c->ocap);
    if (!c->obuf) {
        c->oom = 1;
        ERREXIT1(ci, JERR_OUT_OF_MEMORY, 0);
    }
    ci->dest->next_output_byte = c->obuf;
    ci->dest->free_in_buffer = c->ocap;
}

static boolean dest_empty(j_compress_ptr ci)
{
    jpeg_ctx *c = (jpeg_ctx *)ci->err;
    uint8_t *b = sd_realloc(c->obuf, c->ocap * 2);
    if (!b) {
        c->oom = 1;
        ERREXIT1(ci, JERR_OUT_OF_MEMORY, 1);
    }
    /* libjpeg calls this only when the buffer is completely full */
    ci->dest->next_output_byte = b + c->ocap;
    ci->dest->free_in_buffer = c->ocap;
    c->obuf = b;
    c->ocap *= 2;
    return TRUE;
}

static void dest_term(j_compress_ptr ci) { (void)ci; }

static int jpeg_encode_inner(jpeg_ctx *c, struct jpeg_compress_struct *ci, const uint8_t *rgb,
                             int w, int h, int quality, const uint8_t *exif, size_t exif_len)
{
    if (setjmp(c->jb)) return 1;
    jpeg_create_compress(ci);
    c->dest.init_destination = dest_init;
    c->dest.empty_output_buffer = dest_empty;
    c->dest.term_destination = dest_term;
    ci->dest = &c->dest;
    ci->image_width = (JDIMENSION)w;
    ci->image_height = (JDIMENSION)h;
    ci->input_components = 3;
    ci->in_color_space = JCS_RGB;
    jpeg_set_defaults(ci);
    jpeg_set_quality(ci, quality, TRUE);
    ci->optimize_coding = TRUE;
    jpeg_start_compress(ci, TRUE);
    if (exif) jpeg_write_marker(ci, JPEG_APP0 + 1, exif, (unsigned)exif_len);
    while (ci->next_scanline < ci->image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)ci->next_scanline * w * 3);
        jpeg_write_scanlines(ci, &row, 1);
    }
    jpeg_finish_compress(ci);
    return 0;
}

int img_jpeg_encode(const uint8_t *rgb, int w, int h, int quality, const char *params,
                    uint8_t **out, size_t *out_len, sd_err *err)
{
    uint8_t *app1 = NULL;
    size_t app1_len = 0;
    if (params) {
        size_t tl;
        uint8_t *tiff = img_exif_build(params, &tl);
        app1 = tiff ? sd_malloc(tl + 6) : NULL;
        if (!app1) {
            free(tiff);
            return sd_errf(err, SD_ENOMEM, "image", "out of memory building EXIF");
        }
        memcpy(app1, "Exif\0\0", 6);
        memcpy(app1 + 6, tiff, tl);
        app1_len = tl + 6;
        free(tiff);
    }
    jpeg_ctx c;
    memset(&c, 0, sizeof c);
    struct jpeg_compress_struct ci;
    memset(&ci, 0, sizeof ci);
    ctx_init(&c, (j_common_ptr)&ci);
    int rc = jpeg_encode_inner(&c, &ci, rgb, w, h, quality, app1, app1_len);
    size_t used = c.ocap - (ci.dest ? ci.dest->free_in_buffer : c.ocap);
    jpeg_destroy_compress(&ci);
    free(app1);
    if (rc) {
        free(c.obuf);
        return sd_errf(err, c.oom ? SD_ENOMEM : SD_EINTERNAL, "image", "JPEG encoding failed: %s", c.msg);
    }
    *out = c.obuf;
    *out_len = used;
    return 0;
}

/* ---- reading the EXIF block back ------------------------------------------ */

int img_jpeg_next_exif(const uint8_t *d, size_t len, size_t *pos, const uint8_t **tiff, size_t *tiff_len,
                       sd_err *err)
{
    size_t p = *pos < 2 ? 2 : *pos;   /* after SOI */
    while (p + 4 <= len) {
        if (d[p] != 0xFF) return sd_errf(err, SD_EINVAL, "image", "JPEG marker expected at byte %zu", p);
        uint8_t m = d[p + 1];
        if (m == 0xFF) {   /* fill byte */
            p++;
            continue;
        }
        if (m == 0xDA || m == 0xD9) break;   /* start of scan / end: no more metadata */
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
            p += 2;
            continue;
        }
        size_t n = (size_t)d[p + 2] << 8 | d[p + 3];
        if (n < 2 || n > len - p - 2) return sd_errf(err, SD_EINVAL, "image", "JPEG segment overruns the file");
        size_t seg = p;
        p += 2 + n;
        if (d[seg + 1] == 0xE1 && n >= 8 && !memcmp(d + seg + 4, "Exif\0\0", 6)) {
            *pos = p;
            *tiff = d + seg + 10;
            *tiff_len = n - 8;
            return 1;
        }
    }
    *pos = len;
    return 0;
}

int img_jpeg_read_parameters(const uint8_t *d, size_t len, char **out, sd_err *err)
{
    *out = NULL;
    size_t p = 2, tn;
    const uint8_t *t;
    int r;
    while ((r = img_jpeg_next_exif(d, len, &p, &t, &tn, err)) == 1) {
        if (img_exif_user_comment(t, tn, out, err)) return -1;
        if (*out) return 0;
    }
    return r;
}
