/* test_err.c — the error type keeps the first failure and maps codes to HTTP statuses. */
#include <string.h>

#include "t.h"
#include "../../src/base/err.h"

int main(void)
{
    sd_err e;
    sd_err_clear(&e);
    CHECK(sd_errf(&e, SD_EINVAL, "width", "width must be in (0, 1024], got %d", 0) == -1, "errf returns -1");
    sd_errf(&e, SD_EIO, "x", "second error");
    CHECK(e.code == SD_EINVAL && !strcmp(e.field, "width"), "first error wins");
    CHECK(strstr(e.msg, "got 0") != NULL, "message formatted");
    sd_err_prefix(&e, "request");
    CHECK(!strncmp(e.msg, "request: width", 14), "prefix");
    CHECK(sd_err_http_status(SD_EINVAL) == 400 && sd_err_http_status(SD_EBUSY) == 503 &&
          sd_err_http_status(SD_ETOOLARGE) == 413 && sd_err_http_status(SD_EMEDIA) == 415, "http status table");
    return t_done();
}
