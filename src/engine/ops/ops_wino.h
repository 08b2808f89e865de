/* ops_wino.h — internal to the ops layer: our own fp32 Winograd F(4x4, 3x3)
 * for stride-1 3x3 convs, on every CPU (ops_wino.c; ops_conv.c's conv_own
 * calls it where the Winograd rule says so; oneDNN's, AVX-512 only, was
 * slower and gave an image different bits in different batches).
 *
 * Each 4x4 block of outputs is one row of 36 products: the 6x6 input tile
 * under it transformed (Bᵀ d B), times the transformed weights (G g Gᵀ,
 * made once per weight), summed over the input channels by the register
 * tile of ops_tile.h (one FMA chain per output, in channel order), then
 * transformed back (Aᵀ m A).  Every block's arithmetic depends only on
 * its own inputs: an image's bits do not depend on its batch. */
#ifndef SD_OPS_WINO_H
#define SD_OPS_WINO_H

#include <stddef.h>

#include "ops.h"

#define OWINO_M 4                     /* outputs per tile side */
#define OWINO_A 6                     /* input tile side: OWINO_M + 2 */
#define OWINO_P (OWINO_A * OWINO_A)   /* products per tile */

/* Our Winograd runs a conv of IC inputs and OC outputs (both multiples of 8). */
int ops_wino_fits(int IC, int OC);

/* U[p][panel][ic][16] (OWINO_P x OC rounded up to 16 x IC floats) from
 * the conv weights in panels of 16 outputs, wp[panel][kh][kw][ic][16]
 * (oneDNN's Ohwi16o, conv_own's layout), computed in double and rounded
 * once. */
void ops_wino_weights(const float *wp, int IC, int OC, float *U);

/* y (N x OH x OW x OC, NHWC) = the 3x3 stride-1 conv of xp, an input
 * already padded (N x Hp x Wp x IC: output (oh, ow) reads rows oh..oh+2
 * and columns ow..ow+2; reads past Hp / Wp are zeros) with weights U
 * (ops_wino_weights), then + b (if b), + y (accum), max(·, 0) (relu), in
 * that order.  Counts its executed FLOPs.  Out of memory sets the ops fault
 * and does nothing. */
void ops_wino_conv(ops_ctx *c, const float *xp, int N, int Hp, int Wp, int IC, int OH, int OW, const float *U, int OC,
                   const float *b, float *y, int accum, int relu);

#endif
