/* test_image.c — PNG / JPEG / WebP decoding and encoding: round trips,
 * every PNG colour type, CMYK and gray JPEG, alpha on white, the parameters
 * text read back, and hostile input (truncated, corrupt, decompression bombs,
 * wrong formats) refused with a clear error; EXIF orientations 1-8 (JPEG,
 * PNG eXIf, WebP EXIF) decoded upright, malformed EXIF ignored. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>
#include <zlib.h>

#include "t.h"
#include "../../src/image/image.h"

#define W 37
#define H 23

static uint8_t pattern[W * H * 3];

static void make_pattern(void)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = pattern + 3 * (y * W + x);
            p[0] = (uint8_t)(x * 255 / (W - 1));
            p[1] = (uint8_t)(y * 255 / (H - 1));
            p[2] = (uint8_t)((x + y) * 4);
        }
}

static double mean_abs_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += abs((int)a[i] - (int)b[i]);
    return s / n;
}

/* ---- writing test PNGs of any colour type with libpng ---------------- */

typedef struct membuf {
    uint8_t *p;
    size_t n, cap;
} membuf;

static void mb_write(png_structp png, png_bytep d, png_size_t n)
{
    membuf *m = png_get_io_ptr(png);
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, d, n);
    m->n += n;
}
static void mb_flush(png_structp png) { (void)png; }

/* rows: w*h*channels*(depth/8) bytes, already in PNG byte order. */
static membuf write_png(int w, int h, int type, int depth, int interlace, const uint8_t *rows,
                        const png_color *pal, int npal, const uint8_t *trns, int ntrns)
{
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) abort();
    png_set_write_fn(png, &m, mb_write, mb_flush);
    png_set_IHDR(png, info, w, h, depth, type, interlace, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    int ch = type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_PALETTE ? 1
             : type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : type == PNG_COLOR_TYPE_RGB ? 3 : 4;
    size_t stride = ((size_t)w * ch * depth + 7) / 8;
    int passes = png_set_interlace_handling(png);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < h; y++) png_write_row(png, rows + y * stride);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return m;
}

/* Note: CHECKF's detail arguments may be evaluated before its condition, so
 * details only read `im` after a decode_ok() on an earlier line or a zeroed im. */
static int decode_ok(const uint8_t *d, size_t n, img_rgb *im, sd_err *e)
{
    sd_err_clear(e);
    return img_decode(d, n, NULL, im, e) == 0;
}

static void test_png_types(void)
{
    img_rgb im = {0};
    sd_err e;
    /* 8-bit gray */
    uint8_t g[4 * 3];
    for (int i = 0; i < 12; i++) g[i] = (uint8_t)(i * 20);
    membuf m = write_png(4, 3, PNG_COLOR_TYPE_GRAY, 8, 0, g, NULL, 0, NULL, 0);
    CHECKF(decode_ok(m.p, m.n, &im, &e) && im.width == 4 && im.height == 3 && im.px[3 * 5] == 100 &&
               im.px[3 * 5 + 1] == 100 && im.px[3 * 5 + 2] == 100, "png gray8 -> rgb", "%s", e.msg);
    img_rgb_free(&im);
    free(m.p);
    /* 1-bit gray: 0b10100000 -> white, black, white, black */
    uint8_t g1[2] = {0xA0, 0x50};
    m = write_png(4, 2, PNG_COLOR_TYPE_GRAY, 1, 0, g1, NULL, 0, NULL, 0);
    CHECKF(decode_ok(m.p, m.n, &im, &e) && im.px[0] == 255 && im.px[3] == 0 && im.px[12] == 0 && im.px[15] == 255,
           "png gray1 expanded", "%s", e.msg);
    img_rgb_free(&im);
    free(m.p);
    /* 16-bit RGB, big-endian samples */
    uint8_t c16[2 * 1 * 6] = {0xFF, 0xFF, 0x80, 0x00, 0x00, 0x10, 0x12, 0x34, 0x00, 0x00, 0xFF, 0xFF};
    m = write_png(2, 1, PNG_COLOR_TYPE_RGB, 16, 0, c16, NULL, 0, NULL, 0);
    CHECKF(decode_ok(m.p, m.n, &im, &e) && im.px[0] == 255 && im.px[1] == 0x80 && im.px[2] == 0 &&
               im.px[3] == 0x12 && im.px[5] == 255, "png rgb16 -> 8 bits", "%s", e.msg);
    img_rgb_free(&im);
    free(m.p);
    /* palette with a transparent entry: index 1 is red, index 0 transparent blue -> white */
    png_color pal[2] = {{0, 0, 255}, {255, 0, 0}};
    uint8_t trns[1] = {0};
    uint8_t idx[2] = {0, 1};
    m = write_png(2, 1, PNG_COLOR_TYPE_PALETTE, 8, 0, idx, pal, 2, trns, 1);
    CHECKF(decode_ok(m.p, m.n, &im, &e) && !memcmp(im.px, "\xff\xff\xff\xff\x00\x00", 6),
           "png palette + tRNS on white", "%s", e.msg);
    img_rgb_free(&im);
    free(m.p);
    /* RGBA: half-transparent black over white = 128 gray; opaque green stays green */
    uint8_t rgba[8] = {0, 0, 0, 128, 0, 255, 0, 255};
    m = write_png(2, 1, PNG_COLOR_TYPE_RGBA, 8, 0, rgba, NULL, 0, NULL, 0);
    CHECKF(decode_ok(m.p, m.n, &im, &e) && im.px[0] == 127 && im.px[1] == 127 && !memcmp(im.px + 3, "\x00\xff\x00", 3),
           "png rgba composited on white", "%d %d", im.px ? im.px[0] : -1, im.px ? im.px[1] : -1);
    img_rgb_free(&im);
    free(m.p);
    /* gray + alpha, 16 bits: fully transparent -> white */
    uint8_t ga[4] = {0, 0, 0, 0};
    m = write_png(1, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0, ga, NULL, 0, NULL, 0);
    CHECKF(decode_ok(m.p, m.n, &im, &e) && !memcmp(im.px, "\xff\xff\xff", 3), "png gray-alpha16 transparent",
           "%s", e.msg);
    img_rgb_free(&im);
    free(m.p);
    /* interlaced RGB equals the pattern */
    m = write_png(W, H, PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_ADAM7, pattern, NULL, 0, NULL, 0);
    CHECKF(decode_ok(m.p, m.n, &im, &e) && im.width == W && !memcmp(im.px, pattern, sizeof pattern),
           "png interlaced", "%s", e.msg);
    img_rgb_free(&im);
    free(m.p);
}

static void test_round_trips(void)
{
    static const char *params[] = {
        "a red bicycle\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 37x23",
        "un vélo rouge 🚲 自転車\nSteps: 4, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 37x23",
    };
    const img_format fmts[] = {IMG_PNG, IMG_JPEG, IMG_WEBP};
    for (int f = 0; f < 3; f++)
        for (int k = 0; k < 2; k++) {
            char name[96];
            const char *fn = img_format_name(fmts[f]);
            sd_err e;
            sd_err_clear(&e);
            uint8_t *buf;
            size_t n;
            img_encode_opts o = {fmts[f], 92, params[k]};
            int rc = img_encode(pattern, W, H, &o, &buf, &n, &e);
            snprintf(name, sizeof name, "%s encode (%s)", fn, k ? "utf-8" : "ascii");
            CHECKF(rc == 0 && img_sniff(buf, n) == fmts[f], name, "%s", e.msg);
            if (rc) continue;
            img_rgb im;
            rc = img_decode(buf, n, NULL, &im, &e);
            double d = rc ? 999 : mean_abs_diff(im.px, pattern, sizeof pattern);
            snprintf(name, sizeof name, "%s decode back (%s)", fn, k ? "utf-8" : "ascii");
            CHECKF(rc == 0 && im.width == W && im.height == H && (fmts[f] == IMG_PNG ? d == 0 : d < 6), name,
                   "rc=%d mean diff %.2f %s", rc, d, e.msg);
            img_rgb_free(&im);
            char *txt = NULL;
            rc = img_read_parameters(buf, n, &txt, &e);
            snprintf(name, sizeof name, "%s parameters read back (%s)", fn, k ? "utf-8" : "ascii");
            CHECKF(rc == 0 && txt && !strcmp(txt, params[k]), name, "got %s", txt ? txt : "(none)");
            free(txt);
            free(buf);
        }
    /* no parameters: nothing to read */
    uint8_t *buf;
    size_t n;
    sd_err e;
    sd_err_clear(&e);
    img_encode_opts o = {IMG_WEBP, 80, NULL};
    char *txt = (char *)1;
    CHECK(img_encode(pattern, W, H, &o, &buf, &n, &e) == 0 && img_read_parameters(buf, n, &txt, &e) == 0 && !txt,
          "webp without parameters has none");
    free(buf);
    /* quality changes JPEG size */
    uint8_t *lo, *hi;
    size_t nlo, nhi;
    img_encode_opts ql = {IMG_JPEG, 10, NULL}, qh = {IMG_JPEG, 100, NULL};
    CHECK(img_encode(pattern, W, H, &ql, &lo, &nlo, &e) == 0 && img_encode(pattern, W, H, &qh, &hi, &nhi, &e) == 0 &&
              nlo < nhi, "jpeg quality matters");
    free(lo);
    free(hi);
    img_encode_opts bad = {IMG_JPEG, 101, NULL};
    sd_err_clear(&e);
    CHECK(img_encode(pattern, W, H, &bad, &buf, &n, &e) == -1 && e.code == SD_EINVAL && !strcmp(e.field, "quality"),
          "quality out of range");
}

/* ---- JPEG colour spaces written with libjpeg directly ----------------- */

static uint8_t *jpeg_raw(int w, int h, J_COLOR_SPACE cs, int nc, const uint8_t *px, unsigned long *n)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr je;
    c.err = jpeg_std_error(&je);
    jpeg_create_compress(&c);
    uint8_t *out = NULL;
    jpeg_mem_dest(&c, &out, n);
    c.image_width = w;
    c.image_height = h;
    c.input_components = nc;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    for (int y = 0; y < h; y++) {
        JSAMPROW r = (JSAMPROW)(px + (size_t)y * w * nc);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return out;
}

static void test_jpeg_spaces(void)
{
    img_rgb im = {0};
    sd_err e;
    uint8_t gray[16 * 16];
    memset(gray, 90, sizeof gray);
    unsigned long n;
    uint8_t *j = jpeg_raw(16, 16, JCS_GRAYSCALE, 1, gray, &n);
    CHECKF(decode_ok(j, n, &im, &e) && abs(im.px[0] - 90) <= 2 && im.px[0] == im.px[1] && im.px[1] == im.px[2],
           "jpeg grayscale -> rgb", "%s", e.msg);
    img_rgb_free(&im);
    free(j);
    /* Adobe CMYK, stored inverted: red = no cyan, full magenta+yellow, no black */
    uint8_t cmyk[16 * 16 * 4];
    for (int i = 0; i < 256; i++) memcpy(cmyk + 4 * i, "\xff\x00\x00\xff", 4);
    j = jpeg_raw(16, 16, JCS_CMYK, 4, cmyk, &n);
    CHECKF(decode_ok(j, n, &im, &e) && im.px[0] > 245 && im.px[1] < 10 && im.px[2] < 10, "jpeg adobe cmyk -> rgb",
           "%s %d,%d,%d", e.msg, im.px ? im.px[0] : -1, im.px ? im.px[1] : -1, im.px ? im.px[2] : -1);
    img_rgb_free(&im);
    free(j);
}

static void test_webp_alpha(void)
{
    uint8_t rgba[4 * 2] = {10, 20, 30, 0, 200, 100, 50, 255};
    uint8_t *w;
    size_t n = WebPEncodeLosslessRGBA(rgba, 2, 1, 8, &w);
    img_rgb im;
    sd_err e;
    CHECKF(n && decode_ok(w, n, &im, &e) && !memcmp(im.px, "\xff\xff\xff\xc8\x64\x32", 6), "webp alpha on white",
           "%s", e.msg);
    img_rgb_free(&im);
    WebPFree(w);
}

/* ---- hostile input ------------------------------------------------------ */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static void test_bombs(const uint8_t *png, size_t npng, const uint8_t *jpg, size_t njpg, const uint8_t *wp, size_t nwp)
{
    sd_err e;
    img_rgb im;
    /* PNG: IHDR claims 20000x20000 (valid CRC) */
    uint8_t *b = malloc(npng);
    memcpy(b, png, npng);
    put_be32(b + 16, 20000);
    put_be32(b + 20, 20000);
    put_be32(b + 29, (uint32_t)crc32(0, b + 12, 17));
    sd_err_clear(&e);
    int rc = img_decode(b, npng, NULL, &im, &e);
    CHECKF(rc == -1 && e.code == SD_ETOOLARGE && !strcmp(e.field, "init_image") && strstr(e.msg, "20000x20000") &&
               !im.px, "png 20000x20000 bomb refused", "%s", e.msg);
    free(b);
    /* JPEG: patch the SOF0 frame size */
    b = malloc(njpg);
    memcpy(b, jpg, njpg);
    int patched = 0;
    for (size_t p = 2; p + 9 < njpg;) {
        size_t len = (size_t)b[p + 2] << 8 | b[p + 3];
        if (b[p + 1] == 0xC0 || b[p + 1] == 0xC2) {
            b[p + 5] = 20000 >> 8, b[p + 6] = 20000 & 255, b[p + 7] = 20000 >> 8, b[p + 8] = 20000 & 255;
            patched = 1;
            break;
        }
        p += 2 + len;
    }
    sd_err_clear(&e);
    rc = img_decode(b, njpg, NULL, &im, &e);
    CHECKF(patched && rc == -1 && e.code == SD_ETOOLARGE && strstr(e.msg, "20000x20000"), "jpeg 20000x20000 bomb refused",
           "%s", e.msg);
    free(b);
    /* WebP (simple lossy): 14-bit width/height in the VP8 key-frame header at 26..29 */
    b = malloc(nwp);
    memcpy(b, wp, nwp);
    CHECK(!memcmp(b + 12, "VP8 ", 4), "webp test file is simple lossy");
    b[26] = 0xFF, b[27] = 0x3F, b[28] = 0xFF, b[29] = 0x3F;
    sd_err_clear(&e);
    rc = img_decode(b, nwp, NULL, &im, &e);
    CHECKF(rc == -1 && e.code == SD_ETOOLARGE && strstr(e.msg, "16383x16383"), "webp 16383x16383 bomb refused", "%s",
           e.msg);
    free(b);
    /* configurable limits */
    img_decode_opts o = {.max_side = 30, .field = "image"};
    sd_err_clear(&e);
    rc = img_decode(png, npng, &o, &im, &e);
    CHECKF(rc == -1 && e.code == SD_ETOOLARGE && !strcmp(e.field, "image") && strstr(e.msg, "30"), "max side option",
           "%s", e.msg);
    img_decode_opts o2 = {.max_pixels = W * H - 1};
    sd_err_clear(&e);
    rc = img_decode(jpg, njpg, &o2, &im, &e);
    CHECKF(rc == -1 && e.code == SD_ETOOLARGE, "max pixels option", "%s", e.msg);
}

/* Every prefix (in steps) must fail cleanly; flipped bytes must never crash. */
static void test_truncated(const char *name, const uint8_t *d, size_t n)
{
    int all = 1, crashfree = 1;
    size_t bad_at = 0;
    for (size_t k = 0; k < n; k += (n / 97) + 1) {
        sd_err e;
        sd_err_clear(&e);
        img_rgb im;
        if (img_decode(d, k, NULL, &im, &e) != -1 || e.code != SD_EINVAL || im.px) {
            all = 0;
            bad_at = k;
            img_rgb_free(&im);
        }
    }
    char nm[80];
    snprintf(nm, sizeof nm, "%s truncated at every length is refused", name);
    CHECKF(all, nm, "prefix of %zu/%zu bytes accepted", bad_at, n);
    uint8_t *b = malloc(n);
    srand(7);
    for (int t = 0; t < 300; t++) {
        memcpy(b, d, n);
        for (int f = 0; f < 4; f++) b[16 + rand() % (n - 16)] ^= (uint8_t)(1 + rand() % 255);
        sd_err e;
        sd_err_clear(&e);
        img_rgb im;
        int rc = img_decode(b, n, NULL, &im, &e);
        if (rc == 0 && (!im.px || im.width <= 0)) crashfree = 0;
        if (rc == -1 && (e.code == SD_OK || !e.msg[0] || im.px)) crashfree = 0;
        img_rgb_free(&im);
    }
    free(b);
    snprintf(nm, sizeof nm, "%s with corrupted bytes: clean result or clean error", name);
    CHECK(crashfree, nm);
}

static void test_not_images(void)
{
    sd_err e;
    img_rgb im;
    sd_err_clear(&e);
    CHECKF(img_decode((const uint8_t *)"GIF89a\x01\x00\x01\x00", 10, NULL, &im, &e) == -1 && e.code == SD_EINVAL &&
               strstr(e.msg, "GIF") && !strcmp(e.field, "init_image"), "gif refused by name", "%s", e.msg);
    sd_err_clear(&e);
    CHECKF(img_decode((const uint8_t *)"hello world", 11, NULL, &im, &e) == -1 && e.code == SD_EINVAL &&
               strstr(e.msg, "not a PNG, JPEG or WebP"), "text refused", "%s", e.msg);
    sd_err_clear(&e);
    CHECK(img_decode(NULL, 0, NULL, &im, &e) == -1 && e.code == SD_EINVAL, "empty refused");
    CHECK(img_sniff((const uint8_t *)"RIFF\0\0\0\0WAVE", 12) == IMG_UNKNOWN, "riff wave is not webp");
    CHECK(img_format_from_name("JPG") == IMG_JPEG && !strcmp(img_format_mime(IMG_WEBP), "image/webp") &&
              !strcmp(img_format_ext(IMG_JPEG), "jpg"), "format names");
}

/* ---- EXIF orientation: a camera's sideways picture decoded upright ------- */

#define OB 16                 /* block side: 3 x 2 blocks of distinct colours */
#define OW (3 * OB)
#define OH (2 * OB)
static const uint8_t ocol[6][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 0}, {255, 0, 255}, {0, 255, 255}};

static void orient_pixels(uint8_t *px)
{
    for (int y = 0; y < OH; y++)
        for (int x = 0; x < OW; x++) memcpy(px + 3 * (y * OW + x), ocol[(y / OB) * 3 + x / OB], 3);
}

static void put16(uint8_t *p, unsigned v, int le)
{
    p[le ? 1 : 0] = (uint8_t)(v >> 8);
    p[le ? 0 : 1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v, int le)
{
    put16(p + (le ? 2 : 0), v >> 16, le);
    put16(p + (le ? 0 : 2), v & 0xFFFF, le);
}

/* A TIFF block with IFD0 = { Orientation (type, value) }; 26 bytes. */
static size_t tiff_orientation(uint8_t *b, int le, unsigned type, unsigned value)
{
    memset(b, 0, 26);
    memcpy(b, le ? "II" : "MM", 2);
    put16(b + 2, 42, le);
    put32(b + 4, 8, le);
    put16(b + 8, 1, le);
    put16(b + 10, 0x0112, le);
    put16(b + 12, type, le);
    put32(b + 14, 1, le);
    put16(b + 18, value, le);
    put32(b + 22, 0, le);
    return 26;
}

/* `src` with `ins` (n bytes) inserted at `at`; malloc'd. */
static uint8_t *splice(const uint8_t *src, size_t len, size_t at, const uint8_t *ins, size_t n)
{
    uint8_t *o = malloc(len + n);
    memcpy(o, src, at);
    memcpy(o + at, ins, n);
    memcpy(o + at + n, src + at, len - at);
    return o;
}

/* A JPEG with an APP1 "Exif" segment holding `tiff` (n bytes) right after SOI. */
static uint8_t *jpeg_with_exif(const uint8_t *jpg, size_t njpg, const uint8_t *tiff, size_t n, size_t *out_len)
{
    uint8_t seg[4 + 6 + 256];
    seg[0] = 0xFF;
    seg[1] = 0xE1;
    put16(seg + 2, (unsigned)(2 + 6 + n), 0);
    memcpy(seg + 4, "Exif\0\0", 6);
    memcpy(seg + 10, tiff, n);
    *out_len = njpg + 10 + n;
    return splice(jpg, njpg, 2, seg, 10 + n);
}

/* Where stored pixel (sx, sy) of a sw x sh picture appears upright, from
 * the EXIF standard's words for each value: which side of the picture the
 * stored row 0 and column 0 lie along. */
static void upright_of(int o, int sx, int sy, int sw, int sh, int *ux, int *uy)
{
    static const char *row0[9] = {"", "top", "top", "bottom", "bottom", "left", "right", "right", "left"};
    static const char *col0[9] = {"", "left", "right", "right", "left", "top", "top", "bottom", "bottom"};
    if (!strcmp(row0[o], "top") || !strcmp(row0[o], "bottom")) {
        *uy = !strcmp(row0[o], "top") ? sy : sh - 1 - sy;
        *ux = !strcmp(col0[o], "left") ? sx : sw - 1 - sx;
    } else {
        *ux = !strcmp(row0[o], "left") ? sy : sh - 1 - sy;
        *uy = !strcmp(col0[o], "top") ? sx : sw - 1 - sx;
    }
}

/* The decoded picture is the stored one turned upright for orientation o:
 * its size, and each block's colour where the standard puts it. */
static void check_upright(const char *what, int o, const uint8_t *file, size_t n)
{
    img_rgb im = {0};
    sd_err e;
    int ok = decode_ok(file, n, &im, &e);
    int swap = o >= 5, want_w = swap ? OH : OW, want_h = swap ? OW : OH, bad = -1;
    ok = ok && im.width == want_w && im.height == want_h;
    for (int b = 0; ok && b < 6; b++) {
        int ux, uy;
        upright_of(o, (b % 3) * OB + OB / 2, (b / 3) * OB + OB / 2, OW, OH, &ux, &uy);
        const uint8_t *p = im.px + 3 * ((size_t)uy * im.width + ux);
        for (int c = 0; c < 3; c++)
            if (abs((int)p[c] - ocol[b][c]) > 48) ok = 0, bad = b;
    }
    char name[128];
    snprintf(name, sizeof name, "%s orientation %d decoded upright (%dx%d, every block in place)", what, o, want_w,
             want_h);
    CHECKF(ok, name, "%s got %dx%d, block %d wrong", e.msg, im.width, im.height, bad);
    img_rgb_free(&im);
}

/* A malformed or odd EXIF block is ignored: the picture decodes as stored. */
static void check_ignored(const char *name, const uint8_t *jpg, size_t njpg, const uint8_t *tiff, size_t n)
{
    size_t len;
    uint8_t *f = jpeg_with_exif(jpg, njpg, tiff, n, &len);
    img_rgb im = {0};
    sd_err e;
    int ok = decode_ok(f, len, &im, &e) && im.width == OW && im.height == OH && im.px[0] > 200 && im.px[1] < 60;
    CHECKF(ok && img_orientation(f, len) == 1, name, "%s %dx%d", e.msg, im.width, im.height);
    img_rgb_free(&im);
    char *text = NULL;
    sd_err_clear(&e);
    img_read_parameters(f, len, &text, &e);   /* must return, whatever it says */
    free(text);
    free(f);
}

static void test_orientation_malformed(const uint8_t *jpg, size_t njpg)
{
    uint8_t t[64];
    size_t n = tiff_orientation(t, 0, 3, 6);
    put32(t + 4, 0xFFFFFFF0u, 0);
    check_ignored("EXIF IFD0 offset past the block: ignored", jpg, njpg, t, n);
    n = tiff_orientation(t, 1, 3, 6);
    put16(t + 8, 0xFFFF, 1);
    check_ignored("EXIF IFD0 with 65535 entries in 26 bytes: ignored", jpg, njpg, t, n);
    n = tiff_orientation(t, 0, 3, 6);
    check_ignored("EXIF block cut inside IFD0: ignored", jpg, njpg, t, 16);
    check_ignored("EXIF block of 5 bytes: ignored", jpg, njpg, t, 5);
    n = tiff_orientation(t, 0, 3, 9);
    check_ignored("EXIF orientation 9: ignored", jpg, njpg, t, n);
    n = tiff_orientation(t, 0, 3, 0);
    check_ignored("EXIF orientation 0: ignored", jpg, njpg, t, n);
    n = tiff_orientation(t, 0, 2, 6);
    check_ignored("EXIF orientation typed ASCII: ignored", jpg, njpg, t, n);
    n = tiff_orientation(t, 0, 3, 6);
    put32(t + 14, 2, 0);
    check_ignored("EXIF orientation with count 2: ignored", jpg, njpg, t, n);
    n = tiff_orientation(t, 0, 3, 6);
    memcpy(t, "MX", 2);
    check_ignored("EXIF block without a byte-order mark: ignored", jpg, njpg, t, n);
    /* loops: IFD0's next-IFD and its Exif IFD pointer both point back at IFD0 */
    n = tiff_orientation(t, 0, 3, 1);
    put16(t + 8, 2, 0);
    put16(t + 22, 0x8769, 0);
    put16(t + 24, 4, 0);
    put32(t + 26, 1, 0);
    put32(t + 30, 8, 0);
    put32(t + 34, 8, 0);
    check_ignored("EXIF IFDs pointing at themselves: no loop, ignored", jpg, njpg, t, 38);
    /* an APP1 "Exif" segment too short to hold its own header */
    uint8_t *f = splice(jpg, njpg, 2, (const uint8_t *)"\xFF\xE1\x00\x08" "Exif\0\0", 10);
    img_rgb im = {0};
    sd_err e;
    CHECKF(decode_ok(f, njpg + 10, &im, &e) && im.width == OW && img_orientation(f, njpg + 10) == 1,
           "empty EXIF segment: ignored", "%s", e.msg);
    img_rgb_free(&im);
    free(f);
    CHECK(img_orientation((const uint8_t *)"\xFF\xD8\xFF\xE1\xFF\xFF", 6) == 1,
          "APP1 length past the end of the file: orientation 1");
    CHECK(img_exif_orientation(NULL, 0) == 1 && img_exif_orientation((const uint8_t *)"Exif\0\0MM", 8) == 1,
          "img_exif_orientation on nothing / a stub: 1");
    /* img_orient itself: a 2x1 picture [A B] turned by orientation 6 is 1x2 [A; B]; 9 leaves it */
    img_rgb two = {2, 1, malloc(6)};
    memcpy(two.px, "\x01\x02\x03\x04\x05\x06", 6);
    sd_err_clear(&e);
    CHECK(img_orient(&two, 9, NULL, &e) == 0 && img_orient(&two, 0, NULL, &e) == 0 && two.width == 2,
          "img_orient: orientation 0 / 9 leave the picture");
    CHECK(img_orient(&two, 6, NULL, &e) == 1 && two.width == 1 && two.height == 2 &&
              !memcmp(two.px, "\x01\x02\x03\x04\x05\x06", 6),
          "img_orient 6 on a 2x1 row: a 1x2 column, first pixel on top");
    img_rgb_free(&two);
}

static void test_orientation(void)
{
    uint8_t px[OW * OH * 3];
    orient_pixels(px);
    unsigned long njpg;
    uint8_t *jpg = jpeg_raw(OW, OH, JCS_RGB, 3, px, &njpg);
    uint8_t t[32];
    for (int o = 1; o <= 8; o++) {
        size_t n = tiff_orientation(t, o & 1, 3, (unsigned)o), len;
        uint8_t *f = jpeg_with_exif(jpg, njpg, t, n, &len);
        CHECKF(img_orientation(f, len) == o, o & 1 ? "JPEG orientation read (little-endian EXIF)"
                                                   : "JPEG orientation read (big-endian EXIF)",
               "want %d got %d", o, img_orientation(f, len));
        check_upright("JPEG", o, f, len);
        free(f);
    }
    /* a LONG orientation from a careless writer is read too */
    size_t n = tiff_orientation(t, 0, 4, 0), len;
    put32(t + 18, 6, 0);
    uint8_t *f = jpeg_with_exif(jpg, njpg, t, n, &len);
    check_upright("JPEG (LONG-typed)", 6, f, len);
    free(f);

    /* PNG eXIf chunk (after IHDR) */
    sd_err e;
    sd_err_clear(&e);
    uint8_t *png;
    size_t npng;
    img_encode_opts op = {IMG_PNG, 0, NULL};
    if (img_encode(px, OW, OH, &op, &png, &npng, &e) == 0) {
        uint8_t chunk[12 + 26];
        n = tiff_orientation(chunk + 8, 1, 3, 8);
        put32(chunk, (uint32_t)n, 0);
        memcpy(chunk + 4, "eXIf", 4);
        put32(chunk + 8 + n, (uint32_t)crc32(crc32(0, NULL, 0), chunk + 4, (uInt)(4 + n)), 0);
        f = splice(png, npng, 33, chunk, 12 + n);
        check_upright("PNG eXIf", 8, f, npng + 12 + n);
        free(f);
        free(png);
    }
    /* WebP EXIF chunk: our writer's (last in the file) swapped for one with an orientation */
    uint8_t *wp;
    size_t nwp;
    img_encode_opts ow = {IMG_WEBP, 95, "x"};
    if (img_encode(px, OW, OH, &ow, &wp, &nwp, &e) == 0) {
        size_t at = 0;
        for (size_t i = 12; i + 4 <= nwp; i++)
            if (!memcmp(wp + i, "EXIF", 4)) at = i;
        uint8_t *w2 = malloc(at + 8 + 26);
        memcpy(w2, wp, at);
        memcpy(w2 + at, "EXIF", 4);
        put32(w2 + at + 4, 26, 1);
        tiff_orientation(w2 + at + 8, 0, 3, 3);
        put32(w2 + 4, (uint32_t)(at + 8 + 26 - 8), 1);
        check_upright("WebP EXIF", 3, w2, at + 8 + 26);
        free(w2);
        free(wp);
    }
    CHECKF(!e.code, "PNG / WebP orientation fixtures encode", "%s", e.msg);
    test_orientation_malformed(jpg, njpg);
    free(jpg);
}

int main(void)
{
    make_pattern();
    test_png_types();
    test_round_trips();
    test_jpeg_spaces();
    test_webp_alpha();
    test_not_images();
    test_orientation();

    uint8_t *png, *jpg, *wp;
    size_t npng, njpg, nwp;
    sd_err e;
    sd_err_clear(&e);
    img_encode_opts op = {IMG_PNG, 0, "p"}, oj = {IMG_JPEG, 90, "p"}, ow = {IMG_WEBP, 90, NULL};
    if (img_encode(pattern, W, H, &op, &png, &npng, &e) || img_encode(pattern, W, H, &oj, &jpg, &njpg, &e) ||
        img_encode(pattern, W, H, &ow, &wp, &nwp, &e)) {
        CHECKF(0, "encode fixtures", "%s", e.msg);
        return t_done();
    }
    test_bombs(png, npng, jpg, njpg, wp, nwp);
    test_truncated("png", png, npng);
    test_truncated("jpeg", jpg, njpg);
    test_truncated("webp", wp, nwp);
    free(png);
    free(jpg);
    free(wp);
    return t_done();
}
