/* main.c — the sdserve binary: picks a subcommand and hands over argv.
 * Each subcommand lives in its own file (src/cli/cli.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/sd.h"

/* Weak so that the binary links while a subcommand is being written.  A weak
 * reference does not pull a member out of libsdapp.a, so a written command
 * drops its pragma. */
#pragma weak cli_bench

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"serve", cli_serve, "run the HTTP API server"},
    {"generate", cli_generate, "generate images from the command line"},
    {"bench", cli_bench, "measure each engine stage on this machine"},
    {"worker", cli_worker, "run jobs from a shared Redis queue (no HTTP; docs/SCALE.md)"},
    {"make-model", cli_make_model, "write a random-weight checkpoint (demo, SD 1.5- or SDXL-shaped)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: sdserve <command> [options]   (sdserve <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].fn) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("sdserve %s\n", sd_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name) && commands[i].fn)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "sdserve: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
