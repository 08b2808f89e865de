/* png.c — PNG via libpng: decoding any PNG to RGB8 from memory (limits
 * checked on IHDR before pixels are allocated), encoding RGB8 with a
 * "parameters" text chunk, and reading that chunk (or an eXIf chunk) back
 * by walking chunks.
 *
 * libpng reports errors by longjmp: the setjmp lives in a small function
 * whose mutable state is in a struct owned by the caller, so nothing the
 * longjmp skips over is an indeterminate local. */
#include "codec.h"
#include "../base/alloc.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct png_io {
    const uint8_t *data;
    size_t len, pos;
    char msg[200];         /* libpng's error text */
    /* decoder state freed by the caller */
    png_structp png;
    png_infop info;
    uint8_t *px;
    png_bytep *rows;
    /* encoder output */
    uint8_t *obuf;
    size_t olen, ocap;
    int oom;
    int has_alpha;         /* the file has an alpha channel or tRNS */
} png_io;

static void on_error(png_structp png, png_const_charp msg)
{
    png_io *io = png_get_error_ptr(png);
    snprintf(io->msg, sizeof io->msg, "%s", msg ? msg : "error");
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;   /* benign (e.g. a bad iCCP profile); not worth a client's attention */
}

static void read_mem(png_structp png, png_bytep dst, png_size_t n)
{
    png_io *io = png_get_io_ptr(png);
    if (n > io->len - io->pos) png_error(png, "the data is truncated");
    memcpy(dst, io->data + io->pos, n);
    io->pos += n;
}

/* Returns 0, -1 with err set (size refused), or 1 after a libpng error (io->msg). */
static int png_decode_inner(png_io *io, const img_limits *lim, img_rgb *out, sd_err *err)
{
    if (setjmp(png_jmpbuf(io->png))) return 1;
    png_set_read_fn(io->png, io, read_mem);
    /* libpng keeps its own side limit (1e6); ours is checked on IHDR below.
     * Cap the memory an ancillary chunk (iCCP, zTXt) may inflate to. */
    png_set_chunk_malloc_max(io->png, 8u << 20);
    png_read_info(io->png, io->info);

    png_uint_32 w = png_get_image_width(io->png, io->info);
    png_uint_32 h = png_get_image_height(io->png, io->info);
    if (img_check_size(lim, "PNG", w, h, err)) return -1;

    int type = png_get_color_type(io->png, io->info);
    io->has_alpha = (type & PNG_COLOR_MASK_ALPHA) || png_get_valid(io->png, io->info, PNG_INFO_tRNS);
    png_set_expand(io->png);                 /* palette -> RGB, gray<8 -> 8, tRNS -> alpha */
    png_set_strip_16(io->png);
    if (!(type & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(io->png);
    png_set_filler(io->png, 0xFF, PNG_FILLER_AFTER);   /* always RGBA8 */
    png_set_interlace_handling(io->png);
    png_read_update_info(io->png, io->info);
    if (png_get_rowbytes(io->png, io->info) != (size_t)w * 4)
        png_error(io->png, "unexpected row layout after conversion");

    io->px = sd_malloc((size_t)w * h * 4);
    io->rows = sd_malloc(sizeof *io->rows * h);
    if (!io->px || !io->rows) {
        sd_errf(err, SD_ENOMEM, lim->field, "out of memory decoding a %ux%u PNG", (unsigned)w, (unsigned)h);
        return -1;
    }
    for (png_uint_32 y = 0; y < h; y++) io->rows[y] = io->px + (size_t)y * w * 4;
    png_read_image(io->png, io->rows);
    png_read_end(io->png, NULL);
    out->width = (int)w;
    out->height = (int)h;
    return 0;
}

/* Every chunk before IEND must fit in the bytes we hold: libpng allocates a
 * text chunk's declared length before reading it (found by fuzzing: a 1.7 GB
 * tEXt length in a 107-byte file).  A file ending before IEND is left to
 * libpng (truncated image data is reported there). */
static int png_chunks_fit(const uint8_t *d, size_t len)
{
    size_t p = 8;
    while (p <= len && len - p >= 8) {
        uint32_t n = img_be32(d + p);
        if (n > 0x7fffffffu || n > len - p - 8) return 0;
        if (!memcmp(d + p + 4, "IEND", 4)) return 1;
        if (len - p - 8 - n < 4) return 1;   /* no room for the CRC: truncated, libpng says so */
        p += 12 + (size_t)n;
    }
    return 1;
}

int img_png_decode(const uint8_t *data, size_t len, const img_limits *lim, img_rgb *out, sd_err *err)
{
    png_io io = {.data = data, .len = len};
    if (len >= 8 && !png_chunks_fit(data, len))
        return sd_errf(err, SD_EINVAL, lim->field, "%s: the PNG image is corrupt or truncated (a chunk is longer than the file)",
                       lim->field);
    io.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &io, on_error, on_warning);
    if (io.png) io.info = png_create_info_struct(io.png);
    if (!io.png || !io.info) {
        png_destroy_read_struct(io.png ? &io.png : NULL, NULL, NULL);
        return sd_errf(err, SD_ENOMEM, lim->field, "out of memory starting the PNG decoder");
    }
    int rc = png_decode_inner(&io, lim, out, err);
    png_destroy_read_struct(&io.png, &io.info, NULL);
    free(io.rows);
    if (rc == 0 && io.has_alpha && img_keep_alpha(lim, io.px, (size_t)out->width * out->height, err)) rc = -1;
    if (rc == 0) {
        img_rgba_on_white(io.px, (size_t)out->width * out->height);
        uint8_t *shrunk = sd_realloc(io.px, (size_t)out->width * out->height * 3);
        out->px = shrunk ? shrunk : io.px;
        return 0;
    }
    free(io.px);
    out->width = out->height = 0;
    if (rc == 1)
        return sd_errf(err, SD_EINVAL, lim->field, "%s: the PNG image is corrupt or truncated (%s)",
                       lim->field, io.msg);
    return -1;
}

/* ---- encoding --------------------------------------------------------- */

static void write_mem(png_structp png, png_bytep src, png_size_t n)
{
    png_io *io = png_get_io_ptr(png);
    if (n > io->ocap - io->olen) {
        size_t cap = io->ocap ? io->ocap : 65536;
        while (cap - io->olen < n) cap *= 2;
        uint8_t *b = sd_realloc(io->obuf, cap);
        if (!b) {
            io->oom = 1;
            png_error(png, "out of memory");
        }
        io->obuf = b;
        io->ocap = cap;
    }
    memcpy(io->obuf + io->olen, src, n);
    io->olen += n;
}

static void flush_mem(png_structp png) { (void)png; }

static int is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return 0;
    return 1;
}

static int png_encode_inner(png_io *io, const uint8_t *rgb, int w, int h, const char *params)
{
    if (setjmp(png_jmpbuf(io->png))) return 1;
    png_set_write_fn(io->png, io, write_mem, flush_mem);
    png_set_IHDR(io->png, io->info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(io->png, 6);
    if (params) {
        /* tEXt is Latin-1: plain ASCII goes there (what A1111 writes); any
         * other text as an uncompressed UTF-8 iTXt chunk. */
        png_text t = {0};
        t.key = (png_charp) "parameters";
        t.text = (png_charp)params;
        if (is_ascii(params)) {
            t.compression = PNG_TEXT_COMPRESSION_NONE;
            t.text_length = strlen(params);
        } else {
            t.compression = PNG_ITXT_COMPRESSION_NONE;
            t.itxt_length = strlen(params);
            t.lang = (png_charp) "";
            t.lang_key = (png_charp) "";
        }
        png_set_text(io->png, io->info, &t, 1);
    }
    png_write_info(io->png, io->info);
    for (int y = 0; y < h; y++) png_write_row(io->png, (png_const_bytep)(rgb + (size_t)y * w * 3));
    png_write_end(io->png, NULL);
    return 0;
}

int img_png_encode(const uint8_t *rgb, int w, int h, const char *params,
                   uint8_t **out, size_t *out_len, sd_err *err)
{
    png_io io = {0};
    io.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &io, on_error, on_warning);
    if (io.png) io.info = png_create_info_struct(io.png);
    if (!io.png || !io.info) {
        png_destroy_write_struct(io.png ? &io.png : NULL, NULL);
        return sd_errf(err, SD_ENOMEM, "image", "out of memory starting the PNG encoder");
    }
    int rc = png_encode_inner(&io, rgb, w, h, params);
    png_destroy_write_struct(&io.png, &io.info);
    if (rc) {
        free(io.obuf);
        return sd_errf(err, io.oom ? SD_ENOMEM : SD_EINTERNAL, "image", "PNG encoding failed: %s", io.msg);
    }
    *out = io.obuf;
    *out_len = io.olen;
    return 0;
}

/* ---- reading the parameters chunk back ------------------------------- */

/* Latin-1 -> UTF-8, malloc'd. */
static char *latin1_to_utf8(const uint8_t *s, size_t n)
{
    char *o = sd_malloc(2 * n + 1), *p = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x80) {
            *p++ = (char)s[i];
        } else {
            *p++ = (char)(0xC0 | s[i] >> 6);
            *p++ = (char)(0x80 | (s[i] & 0x3F));
        }
    }
    *p = 0;
    return o;
}

/* zlib stream -> malloc'd NUL-terminated text, at most `cap` bytes. */
static char *inflate_text(const uint8_t *s, size_t n, size_t cap)
{
    z_stream z = {0};
    if (inflateInit(&z) != Z_OK) return NULL;
    char *o = sd_malloc(cap + 1);
    if (!o) {
        inflateEnd(&z);
        return NULL;
    }
    z.next_in = (Bytef *)s;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)o;
    z.avail_out = (uInt)cap;
    int rc = inflate(&z, Z_FINISH);
    size_t got = cap - z.avail_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(o);
        return NULL;
    }
    o[got] = 0;
    return o;
}

#define TEXT_CAP (1u << 20)

/* The chunk at *pos (type, body, length) and *pos moved past it: 1, 0 at
 * IEND or the end, -1 when it overruns the file. */
static int png_next_chunk(const uint8_t *d, size_t len, size_t *pos, const uint8_t **type, const uint8_t **body,
                          uint32_t *n, sd_err *err)
{
    size_t p = *pos;
    if (p + 12 > len) return 0;
    *n = img_be32(d + p);
    *type = d + p + 4;
    *body = d + p + 8;
    if (*n > len - p - 12) return sd_errf(err, SD_EINVAL, "image", "PNG chunk overruns the file");
    *pos = p + 12 + (size_t)*n;
    return memcmp(*type, "IEND", 4) ? 1 : 0;
}

int img_png_exif(const uint8_t *d, size_t len, const uint8_t **tiff, size_t *tiff_len, sd_err *err)
{
    size_t p = 8;
    const uint8_t *type, *body;
    uint32_t n;
    int r;
    while ((r = png_next_chunk(d, len, &p, &type, &body, &n, err)) == 1) {
        if (!memcmp(type, "eXIf", 4)) {
            *tiff = body;
            *tiff_len = n;
            return 1;
        }
    }
    return r;
}

int img_png_read_parameters(const uint8_t *d, size_t len, char **out, sd_err *err)
{
    *out = NULL;
    size_t p = 8;
    const uint8_t *type, *body;
    uint32_t n;
    int r;
    while ((r = png_next_chunk(d, len, &p, &type, &body, &n, err)) == 1) {
        int text = !memcmp(type, "tEXt", 4), ztext = !memcmp(type, "zTXt", 4), itext = !memcmp(type, "iTXt", 4);
        if ((text || ztext || itext) && n >= 11 && !memcmp(body, "parameters", 11)) {
            const uint8_t *v = body + 11;
            size_t vn = n - 11;
            if (text) {
                *out = latin1_to_utf8(v, vn);
            } else if (ztext) {
                if (vn < 1 || v[0] != 0) return sd_errf(err, SD_EINVAL, "image", "bad zTXt chunk");
                char *raw = inflate_text(v + 1, vn - 1, TEXT_CAP);
                if (!raw) return sd_errf(err, SD_EINVAL, "image", "bad zTXt chunk data");
                *out = latin1_to_utf8((const uint8_t *)raw, strlen(raw));
                free(raw);
            } else {
                /* compression flag, method, language\0, translated keyword\0, text */
                if (vn < 2) return sd_errf(err, SD_EINVAL, "image", "bad iTXt chunk");
                int comp = v[0];
                const uint8_t *q = v + 2, *end = v + vn;
                const uint8_t *z1 = memchr(q, 0, (size_t)(end - q));
                const uint8_t *z2 = z1 ? memchr(z1 + 1, 0, (size_t)(end - z1 - 1)) : NULL;
                if (!z2) return sd_errf(err, SD_EINVAL, "image", "bad iTXt chunk");
                q = z2 + 1;
                if (comp) {
                    *out = inflate_text(q, (size_t)(end - q), TEXT_CAP);
                    if (!*out) return sd_errf(err, SD_EINVAL, "image", "bad compressed iTXt chunk");
                } else {
                    *out = malloc((size_t)(end - q) + 1);
                    if (*out) {
                        memcpy(*out, q, (size_t)(end - q));
                        (*out)[end - q] = 0;
                    }
                }
            }
            if (!*out) return sd_errf(err, SD_ENOMEM, "image", "out of memory reading PNG text");
            return 0;
        }
    }
    return r;
}
