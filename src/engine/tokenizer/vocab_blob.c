/* vocab_blob.c — embeds third_party/clip/bpe_simple_vocab_16e6.txt.gz in the
 * binary (vocab_blob.h) with the assembler's .incbin.  The path is relative
 * to the repository root, where make (and scripts/fuzz.sh) run the compiler;
 * the Makefile makes this object depend on the file. */
#include "vocab_blob.h"

__asm__("  .section .rodata\n"
        "  .balign 16\n"
        "  .globl sd_clip_vocab_gz\n"
        "  .type sd_clip_vocab_gz, @object\n"
        "sd_clip_vocab_gz:\n"
        "  .incbin \"third_party/clip/bpe_simple_vocab_16e6.txt.gz\"\n"
        "sd_clip_vocab_gz_end:\n"
        "  .size sd_clip_vocab_gz, sd_clip_vocab_gz_end - sd_clip_vocab_gz\n"
        "  .balign 8\n"
        "  .globl sd_clip_vocab_gz_size\n"
        "  .type sd_clip_vocab_gz_size, @object\n"
        "  .size sd_clip_vocab_gz_size, 8\n"
        "sd_clip_vocab_gz_size:\n"
        "  .quad sd_clip_vocab_gz_end - sd_clip_vocab_gz\n"
        "  .previous\n");
