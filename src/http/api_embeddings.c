/* api_embeddings.c — GET /embeddings: the textual-inversion embeddings the
 * server found in --embeddings-dir at load (server_config.list_embeddings), each with
 * its vector count and width and whether prompts can use it (fits), with
 * the reason when not (another family's width, a pickle, ...).  503 while
 * the model loads, like the generation routes (docs/PROMPTS.md
 * "Embeddings"). */
#include "server_int.h"

static json_t *embedding_entry(const sd_embedding_info *in)
{
    return json_pack("{s:s, s:i, s:i, s:b, s:s?}", "name", in->name, "vectors", in->vectors, "width", in->width,
                     "fits", in->fits, "error", in->error);
}

enum MHD_Result get_embeddings(http_server *s, req *r, struct MHD_Connection *c)
{
    if (atomic_load(&s->loading)) return reply_loading(r, c);
    json_t *list = json_array();
    sd_embedding_info in;
    for (int i = 0; list && s->cfg.list_embeddings && !s->cfg.list_embeddings(s->cfg.check_ctx, i, &in); i++)
        json_array_append_new(list, embedding_entry(&in));
    return reply_json(c, &r->ri, 200, list ? json_pack("{s:o}", "embeddings", list) : NULL);
}
