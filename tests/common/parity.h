/* parity.h — steps shared by the model parity tests (tests/parity/test_clip,
 * test_vae, test_unet): the reference-folder check that starts them, opening
 * a reference checkpoint with its "weights open" check, and reading one
 * component's golden. */
#ifndef SD_TEST_PARITY_H
#define SD_TEST_PARITY_H

#include "npy.h"
#include "../../src/engine/loader/weights.h"

/* 1 when the reference folder is there (then the ops team is set up with
 * every core); else one FAIL line "reference data present" and 0. */
int parity_begin(void);
/* sdw_open of t_ref(path), checked as "<model>/<src>: weights open" (the
 * loader's message on failure); NULL when it failed. */
sd_weights *parity_open(const char *model, const char *src, const char *path);
/* goldens/<model>/<component>/<file>.npy into a: 0, or -1 with npy_load's
 * message on stderr. */
int parity_golden(const char *model, const char *component, const char *file, npy *a);

#endif
