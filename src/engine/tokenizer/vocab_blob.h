/* vocab_blob.h — the CLIP BPE vocabulary built into the binary: the bytes of
 * third_party/clip/bpe_simple_vocab_16e6.txt.gz (OpenAI, MIT licence beside
 * it), so that a single-file checkpoint, which carries no tokenizer, works
 * with no --vocab and nothing installed beside the binary (clip_bpe.h's
 * tok_find falls back to it). */
#ifndef SD_VOCAB_BLOB_H
#define SD_VOCAB_BLOB_H

#include <stdint.h>

extern const unsigned char sd_clip_vocab_gz[];
extern const uint64_t sd_clip_vocab_gz_size;

#endif
