/* test_model_pick.c — the dialects' one model-name resolution
 * (server_model_pick, api_models.c): exact names, A1111's "name [hash]"
 * titles, OpenAI's own names (dall-e-*, gpt-image-*) meaning the default,
 * the default for no name, and names that pick none. */
#include <stdio.h>
#include <string.h>

#include "t.h"
#include "../../src/http/server_int.h"

static int pick(const server_model *ms, int n, const char *name, const model_naming *how)
{
    return server_model_pick(ms, n, name, name ? strlen(name) : 0, how);
}

int main(void)
{
    server_model ms[3];
    memset(ms, 0, sizeof ms);
    snprintf(ms[0].name, sizeof ms[0].name, "tiny");
    snprintf(ms[1].name, sizeof ms[1].name, "demo-xl");
    snprintf(ms[2].name, sizeof ms[2].name, "tiny-2");
    ms[1].is_default = 1;
    const model_naming a1111 = {.titles = 1};
    const model_naming oai = {.defaults = (const char *const[]){"dall-e-", "gpt-image-", NULL}};

    CHECK(pick(ms, 3, "tiny", NULL) == 0 && pick(ms, 3, "tiny-2", NULL) == 2, "exact names");
    CHECK(pick(ms, 3, "tin", NULL) == -1 && pick(ms, 3, "tiny-", NULL) == -1 && pick(ms, 3, "", NULL) == -1,
          "a prefix or an empty name picks none");
    CHECK(pick(ms, 3, NULL, NULL) == 1, "no name: the default");
    ms[1].is_default = 0;
    CHECK(pick(ms, 3, NULL, NULL) == 0, "no name and no default flagged: the first");
    ms[1].is_default = 1;
    CHECK(pick(ms, 0, NULL, NULL) == -1 && pick(ms, 0, "tiny", &a1111) == -1, "no models: none");

    CHECK(pick(ms, 3, "demo-xl [0123abcd]", &a1111) == 1 && pick(ms, 3, "tiny", &a1111) == 0,
          "a1111: a title or a name");
    CHECK(pick(ms, 3, "demo-xl [0123abcd]", NULL) == -1, "without titles a title is no name");
    CHECK(pick(ms, 3, "demo-xl [0123abcd", &a1111) == -1 && pick(ms, 3, "nope [0123abcd]", &a1111) == -1,
          "a1111: an unclosed title or an unknown name picks none");
    CHECK(pick(ms, 3, "dall-e-3", &oai) == 1 && pick(ms, 3, "gpt-image-1", &oai) == 1, "openai: its names are the default");
    CHECK(pick(ms, 3, "dall-e", &oai) == -1 && pick(ms, 3, "dall-e-3", NULL) == -1 && pick(ms, 3, "dall-e-3", &a1111) == -1,
          "openai names only with openai's naming, and whole prefixes");
    CHECK(pick(ms, 3, "tiny", &oai) == 0, "openai: our names still pick themselves");
    CHECK(server_model_pick(ms, 3, "tiny\0junk", 9, NULL) == -1, "a NUL inside the name picks none");
    CHECK(server_model_pick(ms, 3, "tiny-2", 4, NULL) == 0, "only len bytes count");
    return t_done();
}
