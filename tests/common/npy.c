/* npy.c — see npy.h. */
#include "npy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int npy_load(const char *path, npy *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "npy: cannot open %s\n", path); return -1; }
    unsigned char pre[10];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6)) goto bad;
    size_t hl;
    if (pre[6] == 1) hl = pre[8] | (pre[9] << 8);
    else {
        unsigned char x[2];
        if (fread(x, 1, 2, f) != 2) goto bad;
        hl = pre[8] | (pre[9] << 8) | (x[0] << 16) | ((size_t)x[1] << 24);
    }
    char *h = malloc(hl + 1);
    if (!h || fread(h, 1, hl, f) != hl) { free(h); goto bad; }
    h[hl] = 0;
    int is_f4 = strstr(h, "'<f4'") != NULL, is_i8 = strstr(h, "'<i8'") != NULL;
    if ((!is_f4 && !is_i8) || strstr(h, "'fortran_order': True")) { free(h); goto bad; }
    char *s = strstr(h, "'shape': (");
    if (!s) { free(h); goto bad; }
    s += 10;
    out->n = 1;
    while (*s && *s != ')') {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        long long v = strtoll(s, &s, 10);
        if (out->ndim >= 8) { free(h); goto bad; }
        out->shape[out->ndim++] = v;
        out->n *= (size_t)v;
    }
    free(h);
    out->is_int = is_i8;
    out->f = malloc(out->n * sizeof(float) + 1);
    if (is_i8) {
        out->i = malloc(out->n * sizeof(int64_t) + 1);
        if (fread(out->i, 8, out->n, f) != out->n) goto bad;
        for (size_t k = 0; k < out->n; k++) out->f[k] = (float)out->i[k];
    } else if (fread(out->f, 4, out->n, f) != out->n) goto bad;
    fclose(f);
    return 0;
bad:
    fprintf(stderr, "npy: bad or unsupported file %s\n", path);
    fclose(f);
    npy_free(out);
    return -1;
}

void npy_free(npy *a)
{
    free(a->f);
    free(a->i);
    memset(a, 0, sizeof *a);
}

int npy_save_f32(const char *path, const float *data, int ndim, const int64_t *shape)
{
    char h[256];
    int k = snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        k += snprintf(h + k, sizeof h - k, "%lld,%s", (long long)shape[i], i + 1 < ndim ? " " : "");
        n *= shape[i];
    }
    k += snprintf(h + k, sizeof h - k, "), }");
    while ((10 + k + 1) % 64) h[k++] = ' ';
    h[k++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(k & 255), (unsigned char)(k >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(h, 1, k, f);
    fwrite(data, 4, n, f);
    return fclose(f);
}

double npy_maxdiff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

double npy_maxabs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}
