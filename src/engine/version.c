/* version.c — the engine's version string. */
#include "sd.h"

const char *sd_version(void) { return "0.1.0"; }
