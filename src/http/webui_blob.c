/* webui_blob.c — embeds the web page's files (src/http/webui/: index.html,
 * app.js, app.css) in the binary with the assembler's .incbin, as
 * vocab_blob.c does the CLIP vocabulary.  Each file is a symbol followed by
 * a NUL byte (not counted) and a 64-bit size symbol `NAME_size`.  Paths are
 * relative to the repository root, where make (and scripts/fuzz.sh) run the
 * compiler; the Makefile makes this object depend on the files, so editing
 * the page and running `make` rebuilds the binary.  webui.c serves them. */

#define WEBUI_FILE(sym, path)                                                                                  \
    __asm__("  .section .rodata\n"                                                                           \
            "  .balign 16\n"                                                                                  \
            "  .globl " #sym "\n"                                                                             \
            "  .type " #sym ", @object\n" #sym ":\n"                                                          \
            "  .incbin \"" path "\"\n" #sym "_end:\n"                                                         \
            "  .byte 0\n"                                                                                     \
            "  .size " #sym ", " #sym "_end - " #sym "\n"                                                     \
            "  .balign 8\n"                                                                                   \
            "  .globl " #sym "_size\n"                                                                        \
            "  .type " #sym "_size, @object\n"                                                                \
            "  .size " #sym "_size, 8\n" #sym "_size:\n"                                                      \
            "  .quad " #sym "_end - " #sym "\n"                                                               \
            "  .previous\n")

WEBUI_FILE(sd_webui_index_html, "src/http/webui/index.html");
WEBUI_FILE(sd_webui_app_js, "src/http/webui/app.js");
WEBUI_FILE(sd_webui_app_css, "src/http/webui/app.css");
