/* cli.h — the `uflow` command line: one function per subcommand, shared helpers. */
#ifndef UF_CLI_H
#define UF_CLI_H

#include "uflow.h"

#define CLI_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CLI_MAX(a, b) ((a) > (b) ? (a) : (b))

int cmd_infer(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_nfa(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_gendata(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_export(int argc, char **argv);

/* Parse NFA option `name` ("window", "prob-thr", "epsilon") into o; -1 + message if invalid. */
int cli_nfa_opt(const char *cmd, const char *name, const char *val, uf_nfa_opts *o);

/* Exit codes: 0 ok, 1 runtime failure (bad model, image, I/O), 2 usage error. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Print "uflow <cmd>: <msg>" to stderr and return CLI_FAIL. */
int cli_fail(const char *cmd, const uf_error *err);
/* After a failed image load: point at --allow-any-format when the format was refused. */
void cli_image_hint(uf_error *err);
/* Parse an image size "H" (square) or "HxW", each side in [1, 4096]; -1 when invalid. */
int cli_parse_size(const char *s, int *h, int *w);
/* Parse a positive int option value; prints an error and returns -1 when invalid. */
int cli_int(const char *cmd, const char *opt, const char *val, int lo, int hi);
/* Load a model; prints errors. */
uf_model *cli_load_model(const char *cmd, const char *path);
/* The image files (regular files named *.png, jpg, jpeg, bmp, tif, tiff, webp, any case;
 * no hidden ones) of dir as "dir/name", sorted by name; *n may be 0. -1 with a message when
 * dir cannot be read or memory runs out. Free with cli_free_list. */
int cli_list_images(const char *cmd, const char *dir, char ***paths, int *n);
void cli_free_list(char **paths, int n);

/* Default math threads: the number of online CPUs. */
int cli_default_threads(void);

#endif
