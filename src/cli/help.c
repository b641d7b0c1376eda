/*
 * help.c — everything `dagnet` says about itself, made from the command tables (args.h,
 * commands.c): the overview (`dagnet --help`), a command's help (`dagnet CMD --help`), the
 * version and build (`dagnet --version`), and, for the build (CMakeLists.txt runs them after
 * linking the command), the man page dagnet.1 (`dagnet --man`) and the bash completion script
 * (`dagnet --completion`). Help goes to 80 columns.
 */
#include <stdbool.h>
#include <string.h>

#include "cli/args.h"

#define WIDTH 80
#define HELP_COLUMN 26 /* where an option's help starts */

static const char exit_status[] =
    "0 success; 1 a failure, its message on stderr; 2 a usage error (a bad option, value or "
    "operand); 130 training interrupted by Ctrl-C, after saving a checkpoint.";

/* ------------------------------------------------------------------ plain text */

/* `text` from column `col`, words wrapped at WIDTH onto lines indented by `indent`; ends the
 * line. */
static void wrap(FILE *f, const char *text, int col, int indent)
{
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " ");
        if (!len)
            break;
        if (col > indent && col + 1 + (int)len > WIDTH) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', f);
            col++;
        }
        fwrite(p, 1, len, f);
        col += (int)len;
        p += len;
    }
    fputc('\n', f);
}

static void roff(FILE *f, const char *text);

/* An example command line from column `indent`, as the shell reads it: an option stays with
 * its value, and a line that would pass column WIDTH - 2 breaks before an option, continued
 * with " \" on a line indented 4 more. */
static void example(FILE *f, const char *text, int indent, bool for_roff)
{
    char group[1024];
    int col = indent;
    fprintf(f, "%*s", indent, "");
    for (const char *p = text; *p;) {
        /* the next group: words up to the next option (a word starting with '-') */
        const char *end = p + strcspn(p, " ");
        while (*end == ' ' && end[1] && end[1] != '-')
            end += 1 + strcspn(end + 1, " ");
        int len = (int)(end - p);
        snprintf(group, sizeof group, "%.*s", len, p);
        if (p != text && col + 1 + len > WIDTH - 2) {
            fprintf(f, " \\%s\n%*s", for_roff ? "e" : "", indent + 4, "");
            col = indent + 4;
        } else if (p != text) {
            fputc(' ', f);
            col++;
        }
        if (for_roff)
            roff(f, group);
        else
            fputs(group, f);
        col += len;
        p = end;
        while (*p == ' ')
            p++;
    }
    fputc('\n', f);
}

/* The help of an option: its text, its choices, its default, whether it is required. */
static void option_text(const opt_spec *s, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "%s", s->help);
    if (s->choices && used < size) {
        char choices[256];
        snprintf(choices, sizeof choices, "%s", s->choices);
        for (char *bar = strchr(choices, '|'); bar; bar = strchr(bar, '|'))
            *bar = ','; /* shown as "a, b, c" below */
        used += (size_t)snprintf(buf + used, size - used, " (%s",
                                 strchr(s->choices, '|') ? "one of " : "");
        for (char *save = NULL, *t = strtok_r(choices, ",", &save); t && used < size;
             t = strtok_r(NULL, ",", &save))
            used +=
                (size_t)snprintf(buf + used, size - used, "%s%s", t, save && *save ? ", " : ")");
    }
    if (s->def && used < size)
        used += (size_t)snprintf(buf + used, size - used, " (default: %s)", s->def);
    if (s->required && used < size)
        snprintf(buf + used, size - used, " (required)");
}

/* "--name METAVAR" */
static int option_head(const opt_spec *s, char *buf, size_t size)
{
    return snprintf(buf, size, "--%s%s%s", s->name, s->metavar ? " " : "",
                    s->metavar ? s->metavar : "");
}

/* "dagnet infer MODEL.json --out OUT.npy [options]": the required options spelt out. */
static void synopsis(const command_spec *c, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "dagnet %s %s", c->name, c->operands);
    for (int i = 0; i < c->n_opts && used < size; i++)
        if (c->opts[i].required)
            used += (size_t)snprintf(buf + used, size - used, " --%s %s", c->opts[i].name,
                                     c->opts[i].metavar);
    if (used < size && c->n_opts > 0)
        snprintf(buf + used, size - used, " [options]");
}

void cli_print_overview(FILE *f)
{
    fprintf(f, "dagnet %s: %s\n\n", dn_version(), cli_tagline);
    fprintf(f, "usage: dagnet COMMAND MODEL.json [options]\n"
               "       dagnet help [COMMAND]          (or: dagnet COMMAND --help)\n"
               "       dagnet --version\n\ncommands:\n");
    for (int i = 0; i < cli_command_count; i++)
        fprintf(f, "  %-12s %s\n", cli_commands[i].name, cli_commands[i].summary);
    fputc('\n', f);
    wrap(f, cli_notes, 0, 0);
    fputc('\n', f);
    wrap(f,
         "'dagnet help COMMAND' shows a command's options with their defaults, and examples; "
         "'man dagnet' shows every command.",
         0, 0);
    fprintf(f, "\nexit status: ");
    wrap(f, exit_status, 13, 0);
}

void cli_print_help(const command_spec *c, FILE *f)
{
    char line[1024];
    synopsis(c, line, sizeof line);
    fprintf(f, "usage: %s\n\n", line);
    for (const char *p = c->about; *p;) {
        const char *end = strstr(p, "\n\n");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        wrap(f, line, 0, 0);
        p += len + (end ? 2 : 0);
        if (*p)
            fputc('\n', f);
    }
    fprintf(f, "\noptions:\n");
    for (int i = 0; i < c->n_opts; i++) {
        char head[128], text[1024];
        int w = option_head(&c->opts[i], head, sizeof head);
        option_text(&c->opts[i], text, sizeof text);
        fprintf(f, "  %s", head);
        if (2 + w + 2 > HELP_COLUMN)
            fprintf(f, "\n%*s", HELP_COLUMN, "");
        else
            fprintf(f, "%*s", HELP_COLUMN - 2 - w, "");
        wrap(f, text, HELP_COLUMN, HELP_COLUMN);
    }
    fprintf(f, "  -h, --help%*sthis help\n", HELP_COLUMN - 12, "");
    fprintf(f, "\nexamples:\n");
    for (const char *const *e = c->examples; *e; e++)
        example(f, *e, 2, false);
    fputc('\n', f);
    wrap(f,
         "Options and operands may come in any order; --name=VALUE works too. A repeated "
         "option takes its last value, except --feed, which accumulates.",
         0, 0);
}

void cli_print_version(FILE *f)
{
    char build[512], wait[128];
    dn_build_info(build, sizeof build);
    cli_describe_wait_policy(wait, sizeof wait);
    fprintf(f,
            "dagnet %s\nformat: %s (model files), and ONNX (opsets 7 to 17)\nbuild: %s\n"
            "threads wait: %s\n",
            dn_version(), dn_format(), build, wait);
}

/* ------------------------------------------------------------------ man page */

/* Text for roff: backslashes and hyphens escaped, a leading dot or quote neutralised. */
static void roff(FILE *f, const char *text)
{
    if (*text == '.' || *text == '\'')
        fputs("\\&", f);
    for (const char *p = text; *p; p++) {
        if (*p == '\\')
            fputs("\\e", f);
        else if (*p == '-')
            fputs("\\-", f);
        else if (*p == '\n' && p[1] == '\n') {
            fputs("\n.PP\n", f);
            p++;
        } else
            fputc(*p, f);
    }
}

void cli_print_man(FILE *f)
{
    fprintf(f, ".\\\" dagnet.1, made by `dagnet --man` from the command tables (src/cli/commands.c)"
               "; do not edit.\n");
    fprintf(f, ".TH DAGNET 1 \"\" \"dagnet %s\" \"User Commands\"\n", dn_version());
    fprintf(f, ".nh\n.SH NAME\ndagnet \\- ");
    roff(f, cli_tagline);
    fprintf(f, "\n.SH SYNOPSIS\n.B dagnet\n.I COMMAND OPERAND\n[\\fIoptions\\fR]\n.br\n"
               ".B dagnet help\n[\\fICOMMAND\\fR]\n.br\n.B dagnet\n\\fICOMMAND\\fR \\fB\\-\\-help"
               "\\fR\n.br\n.B dagnet \\-\\-version\n");
    fprintf(f, ".SH DESCRIPTION\ndagnet trains, runs, measures and draws convolutional networks "
               "described as JSON computation graphs (the format of docs/format.md, \"");
    roff(f, dn_format());
    fprintf(f, "\"), and converts them from and to ONNX.\n.PP\n");
    roff(f, cli_notes);
    fprintf(f, "\n.PP\n\\fB\\-\\-version\\fR prints the version, the model format it reads and "
               "the BLIS and OpenMP build it runs on.\n.SH COMMANDS\n");
    for (int i = 0; i < cli_command_count; i++) {
        const command_spec *c = &cli_commands[i];
        char line[1024];
        synopsis(c, line, sizeof line);
        fprintf(f, ".SS \"");
        roff(f, line);
        fprintf(f, "\"\n");
        roff(f, c->about);
        fputc('\n', f);
        for (int k = 0; k < c->n_opts; k++) {
            const opt_spec *s = &c->opts[k];
            char text[1024];
            option_text(s, text, sizeof text);
            fprintf(f, ".TP\n\\fB\\-\\-");
            roff(f, s->name);
            fprintf(f, "\\fR");
            if (s->metavar) {
                fprintf(f, " \\fI");
                roff(f, s->metavar);
                fprintf(f, "\\fR");
            }
            fputc('\n', f);
            roff(f, text);
            fputc('\n', f);
        }
        fprintf(f, ".PP\nExamples:\n.RS\n.nf\n");
        for (const char *const *e = c->examples; *e; e++)
            example(f, *e, 0, true);
        fprintf(f, ".fi\n.RE\n");
    }
    fprintf(f, ".SH EXIT STATUS\n");
    roff(f, exit_status);
    fprintf(f, "\n.SH ENVIRONMENT\n.TP\n.B OMP_NUM_THREADS\nthe threads a session uses without "
               "\\fB\\-\\-threads\\fR.\n.TP\n.B OMP_WAIT_POLICY\n\\fBpassive\\fR lets idle "
               "OpenMP threads sleep instead of spinning, on a shared machine.\n"
               ".SH SEE ALSO\nThe documentation in the source tree: README.md, docs/cli.md, "
               "docs/format.md, docs/ops.md, docs/pictures.md, docs/onnx.md, "
               "docs/distributed.md.\n");
}

/* ------------------------------------------------------------------ bash completion */

void cli_print_completion(FILE *f)
{
    fprintf(f,
            "# bash completion for dagnet, made by `dagnet --completion` from the command tables\n"
            "# (src/cli/commands.c); do not edit. Completes the commands, each command's options,\n"
            "# the choices of an option, and file names by the extensions an operand or option\n"
            "# takes (folders always, to descend into).\n\n"
            "# _dagnet_files WORD EXTS: folders, and files ending in one of EXTS (\"json|onnx\"),\n"
            "# or folders alone for EXTS \"/\".\n"
            "_dagnet_files()\n{\n"
            "    local IFS=$'\\n' e\n"
            "    COMPREPLY+=($(compgen -d -- \"$1\"))\n"
            "    [[ $2 == / ]] && return\n"
            "    local IFS='|'\n"
            "    for e in $2; do\n"
            "        local IFS=$'\\n'\n"
            "        COMPREPLY+=($(compgen -f -X \"!*.$e\" -- \"$1\"))\n"
            "    done\n"
            "}\n\n"
            "_dagnet()\n{\n"
            "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
            "    local IFS=$' \\t\\n' opts='' operands=''\n"
            "    COMPREPLY=()\n"
            "    # --name=VALUE: bash splits it at '='\n"
            "    if [[ $cur == = ]]; then cur=''; fi\n"
            "    if [[ $prev == = ]] && ((COMP_CWORD >= 2)); then\n"
            "        prev=${COMP_WORDS[COMP_CWORD-2]}\n"
            "    fi\n"
            "    if ((COMP_CWORD == 1)); then\n"
            "        COMPREPLY=($(compgen -W 'help");
    for (int i = 0; i < cli_command_count; i++)
        fprintf(f, " %s", cli_commands[i].name);
    fprintf(f, " --help --version' -- \"$cur\"))\n"
               "        return\n    fi\n"
               "    case ${COMP_WORDS[1]} in\n"
               "    help)\n"
               "        ((COMP_CWORD == 2)) && COMPREPLY=($(compgen -W '");
    for (int i = 0; i < cli_command_count; i++)
        fprintf(f, "%s%s", i ? " " : "", cli_commands[i].name);
    fprintf(f, "' -- \"$cur\"))\n        return\n        ;;\n");
    for (int i = 0; i < cli_command_count; i++) {
        const command_spec *c = &cli_commands[i];
        fprintf(f, "    %s)\n        operands='%s'\n        opts='", c->name, c->operand_complete);
        for (int k = 0; k < c->n_opts; k++)
            fprintf(f, "--%s ", c->opts[k].name);
        fprintf(f, "--help'\n        case $prev in\n");
        for (int k = 0; k < c->n_opts; k++) {
            const opt_spec *s = &c->opts[k];
            if (s->kind == ARG_SWITCH)
                continue;
            fprintf(f, "        --%s)\n            ", s->name);
            if (s->choices) {
                char words[256];
                snprintf(words, sizeof words, "%s", s->choices);
                for (char *bar = strchr(words, '|'); bar; bar = strchr(bar, '|'))
                    *bar = ' ';
                fprintf(f, "COMPREPLY=($(compgen -W '%s' -- \"$cur\"))\n", words);
            } else if (s->complete) {
                fprintf(f, "_dagnet_files \"$cur\" '%s'\n", s->complete);
            } else {
                fprintf(f, ":\n");
            }
            fprintf(f, "            return\n            ;;\n");
        }
        fprintf(f, "        esac\n        ;;\n");
    }
    fprintf(f, "    *) return ;;\n    esac\n"
               "    if [[ $cur == -* ]]; then\n"
               "        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
               "    else\n"
               "        _dagnet_files \"$cur\" \"$operands\"\n"
               "    fi\n"
               "}\n"
               "complete -o filenames -F _dagnet dagnet\n");
}
