/* cli.h — the sdserve subcommands, each in its own file, wired by src/main.c. */
#ifndef SD_CLI_H
#define SD_CLI_H

int cli_generate(int argc, char **argv);    /* src/cli/generate.c */
int cli_serve(int argc, char **argv);       /* src/cli/serve.c    */
int cli_bench(int argc, char **argv);       /* src/cli/bench.c    */
int cli_make_model(int argc, char **argv);  /* src/cli/make_model.c: random-weight demo / sd15 checkpoints */
/* the shared Redis queue (issue 17, docs/SCALE.md) */
int cli_worker(int argc, char **argv);      /* src/cli/serve.c: runs jobs only, no HTTP (worker.c's thread) */

#endif
