/*
 * args.h — the `dagnet` command's one option parser and the tables that drive it.
 *
 * Each command declares its operands and its own options once, in commands.c: name, value
 * kind, the values allowed, the default, the help text and how bash completes the value. The
 * parser (args.c), `dagnet CMD --help`, the overview, the man page and the bash completion
 * script (help.c) are all made from those tables, so none can list an option another does
 * not know.
 *
 * Parsing rules (docs/cli.md): options and operands in any order; `--name VALUE` or
 * `--name=VALUE`; `--` ends the options; `-h`/`--help` anywhere asks for the command's help.
 * A repeated option: the last value wins, except --feed, which accumulates (one per input).
 * Usage errors name the command, the option, the value and what is allowed, suggest the
 * nearest name for a misspelt one, and exit with status 2.
 */
#ifndef DN_CLI_ARGS_H
#define DN_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cli/cli.h"

typedef enum arg_kind {
    ARG_SWITCH, /* no value: sets a bool */
    ARG_TEXT,   /* a string: a path, a name */
    ARG_CHOICE, /* a string, one of `choices` */
    ARG_INT,    /* an int in [lo, hi] */
    ARG_LONG,   /* a long long in [lo, hi] */
    ARG_SEED,   /* an unsigned long long in [lo, hi]; also sets options.seed_set */
    ARG_REAL,   /* a finite double in [lo, hi], either end open when lo_open / hi_open */
    ARG_FEED,   /* NAME=FILE.npy into options.feed_name/feed_path, accumulating */
} arg_kind;

typedef struct opt_spec {
    const char *name;      /* "epochs" for --epochs */
    arg_kind kind;         /* what the value is */
    const char *metavar;   /* the value as help shows it ("E", "W.safetensors"); NULL: switch */
    size_t offset;         /* where the value goes in `options` */
    double lo, hi;         /* numbers: the range allowed */
    bool lo_open, hi_open; /* ARG_REAL: the range excludes lo (or hi) */
    const char *choices;   /* ARG_CHOICE: the values, separated by '|' */
    const char *def;       /* the default as help shows it; NULL: none */
    const char *help;      /* what the option does */
    const char *complete;  /* bash: file extensions ("json|onnx"), "/" a folder, NULL nothing */
    bool required;         /* the command cannot run without it */
} opt_spec;

typedef struct command_spec {
    const char *name;
    const char *operands;         /* the operands as the synopsis shows them */
    const char *operand_complete; /* bash: the operands' file extensions ("json|onnx") */
    int min_operands, max_operands;
    const char *summary; /* one line, for the overview */
    const char *about;   /* what it does: paragraphs separated by "\n\n" */
    const opt_spec *opts;
    int n_opts;
    const char *const *examples; /* NULL-terminated */
    int (*run)(const dn_model *m, const options *o);
    bool no_model; /* run gets m = NULL: the operands are not a model (plot, import) */
} command_spec;

extern const command_spec cli_commands[];
extern const int cli_command_count;
/* The overview's prose: what dagnet is, and notes for every command. */
extern const char cli_tagline[];
extern const char cli_notes[];

/* The command named `name`, or NULL. */
const command_spec *cli_find_command(const char *name);

enum { PARSE_OK, PARSE_HELP, PARSE_ERROR };
/* argv[first..argc) as cmd's operands and options into o (its defaults already set).
 * PARSE_HELP when -h or --help came before any `--`; PARSE_ERROR after reporting the error on
 * stderr. o's --feed names are allocated: free_options. */
int cli_parse(const command_spec *cmd, int argc, char **argv, int first, options *o);
void free_options(options *o);

/* The closest of n names to `word` (edit distance, a transposition counting one), or NULL
 * when none is close enough to be what was meant. */
const char *cli_suggest(const char *word, const char *const *names, int n);

/* help.c: the overview of `dagnet --help`; a command's help; `dagnet --version`; the man
 * page (roff) and the bash completion script, both built from the tables at build time. */
void cli_print_overview(FILE *f);
void cli_print_help(const command_spec *cmd, FILE *f);
void cli_print_version(FILE *f);
void cli_print_man(FILE *f);
void cli_print_completion(FILE *f);

#endif
