/*
 * main.c — the `dagnet` command: help, version and dispatch. The commands, their options and
 * the parser are in commands.c and args.c (args.h), the help texts in help.c.
 *
 * Exit status: 0 success, 1 a failure reported by the library (its message on stderr),
 * 2 a usage error, 130 training interrupted by Ctrl-C (after saving a checkpoint).
 */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"

/* ------------------------------------------------------------------ dispatch */

/* An unknown command (or option before one), with the nearest name. */
static int unknown_command(const char *word)
{
    if (word[0] == '-') {
        const char *names[] = { "help", "version" };
        const char *near = cli_suggest(word + 1 + (word[1] == '-'), names, 2);
        if (near)
            fprintf(stderr, "dagnet: unknown option '%s' (did you mean '--%s'?)\n", word, near);
        else
            fprintf(stderr, "dagnet: unknown option '%s': the command comes first\n", word);
    } else {
        const char *names[64];
        int n = 0;
        for (int i = 0; i < cli_command_count && n < 63; i++)
            names[n++] = cli_commands[i].name;
        names[n++] = "help";
        const char *near = cli_suggest(word, names, n);
        if (near)
            fprintf(stderr, "dagnet: unknown command '%s' (did you mean '%s'?)\n", word, near);
        else
            fprintf(stderr, "dagnet: unknown command '%s'\n", word);
    }
    fprintf(stderr, "(dagnet help lists the commands)\n");
    return 2;
}

/* A dagnet model, or an ONNX one (by its name) with the weights inside it. */
static dn_status load_model(const char *path, dn_model **m)
{
    size_t n = strlen(path);
    if (n > 5 && strcmp(path + n - 5, ".onnx") == 0)
        return dn_model_load_onnx(path, NULL, m);
    return dn_model_load(path, m);
}

/* `dagnet help [COMMAND]`: the overview, or COMMAND's help; an unknown name is a usage error. */
static int help(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[2], "help") == 0) {
        cli_print_overview(stdout);
        return 0;
    }
    const command_spec *c = cli_find_command(argv[2]);
    if (!c)
        return unknown_command(argv[2]);
    cli_print_help(c, stdout);
    return 0;
}

int main(int argc, char **argv)
{
    cli_choose_wait_policy(argv);
    if (argc < 2) {
        cli_print_overview(stderr);
        return 2;
    }
    const char *word = argv[1];
    if (strcmp(word, "help") == 0 || strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0)
        return help(argc, argv);
    if (strcmp(word, "--version") == 0) {
        cli_print_version(stdout);
        return 0;
    }
    /* For the build: the man page and the bash completion, from the same tables. */
    if (strcmp(word, "--man") == 0) {
        cli_print_man(stdout);
        return 0;
    }
    if (strcmp(word, "--completion") == 0) {
        cli_print_completion(stdout);
        return 0;
    }
    const command_spec *cmd = cli_find_command(word);
    if (!cmd)
        return unknown_command(word);
    options o = {
        .epochs = -1, .lr = -1, .weight_decay = -1, .momentum = -1, .warmup = -1, .shift = -1
    };
    int parsed = cli_parse(cmd, argc, argv, 2, &o);
    if (parsed != PARSE_OK) {
        free_options(&o);
        if (parsed == PARSE_HELP)
            cli_print_help(cmd, stdout);
        return parsed == PARSE_HELP ? 0 : 2;
    }
    dn_model *m = NULL;
    int rc = cmd->no_model             ? cmd->run(NULL, &o)
             : load_model(o.model, &m) ? fail_model(m)
                                       : cmd->run(m, &o);
    dn_model_free(m);
    free_options(&o);
    return rc;
}
