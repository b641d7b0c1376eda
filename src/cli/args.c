/*
 * args.c — the one option parser of every `dagnet` command (args.h), driven by the command's
 * table in commands.c, and the suggestions for misspelt names.
 *
 * Suggestions: the optimal string alignment distance (Levenshtein's insertions, deletions and
 * substitutions, plus a swap of two neighbours counting one, so "trian" is 1 from "train"). A
 * name is suggested when it is within 1 edit for words of up to 4 letters, 2 for up to 8 and
 * 3 beyond, or when the word is a prefix of it (3 letters at least): close enough to be a
 * slip, far enough from chance matches. Abbreviations are never accepted silently: a script
 * using one would break when a second option with that prefix is added.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"

const command_spec *cli_find_command(const char *name)
{
    for (int i = 0; i < cli_command_count; i++)
        if (strcmp(name, cli_commands[i].name) == 0)
            return &cli_commands[i];
    return NULL;
}

/* ------------------------------------------------------------------ suggestions */

#define MAX_WORD 64

static int distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n >= MAX_WORD || m >= MAX_WORD)
        return MAX_WORD;
    int d[MAX_WORD + 1][MAX_WORD + 1];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

const char *cli_suggest(const char *word, const char *const *names, int n)
{
    size_t len = strlen(word);
    int limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    const char *best = NULL;
    int best_d = limit + 1;
    for (int i = 0; i < n; i++) {
        int d = distance(word, names[i]);
        if (len >= 3 && strncmp(word, names[i], len) == 0)
            d = d < 1 ? d : 1; /* a prefix: as good as one slip */
        if (d < best_d) {
            best = names[i];
            best_d = d;
        }
    }
    return best;
}

/* ------------------------------------------------------------------ errors */

/* "dagnet CMD: MESSAGE" and a pointer to the command's help; PARSE_ERROR. */
static int usage_error(const command_spec *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const command_spec *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dagnet %s: ", c->name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(dagnet %s --help lists its options)\n", c->name);
    va_end(ap);
    return PARSE_ERROR;
}

/* An option cmd does not have: the nearest of its own, else the commands that take it. */
static int unknown_option(const command_spec *c, const char *arg, const char *name)
{
    const char *names[64];
    int n = 0;
    for (int i = 0; i < c->n_opts && n < 63; i++)
        names[n++] = c->opts[i].name;
    names[n++] = "help";
    const char *near = cli_suggest(name, names, n);
    if (near)
        return usage_error(c, "unknown option '%s' (did you mean '--%s'?)", arg, near);
    char others[256] = "";
    size_t used = 0;
    for (int k = 0; k < cli_command_count; k++)
        for (int i = 0; i < cli_commands[k].n_opts; i++)
            if (strcmp(cli_commands[k].opts[i].name, name) == 0 && used < sizeof others) {
                int w = snprintf(others + used, sizeof others - used, "%s%s", used ? ", " : "",
                                 cli_commands[k].name);
                used += w > 0 ? (size_t)w : 0;
            }
    if (used)
        return usage_error(c, "unknown option '%s' (an option of %s, not of %s)", arg, others,
                           c->name);
    return usage_error(c, "unknown option '%s'", arg);
}

/* What a number option allows, in words: "a positive integer", "a number in [0, 1)". */
static void allowed_number(const opt_spec *s, char *buf, size_t size)
{
    if (s->kind == ARG_REAL) {
        if (isinf(s->hi))
            snprintf(buf, size, "a number %s %g", s->lo_open ? ">" : ">=", s->lo);
        else
            snprintf(buf, size, "a number in %c%g, %g%c", s->lo_open ? '(' : '[', s->lo, s->hi,
                     s->hi_open ? ')' : ']');
    } else if (s->hi >= 1e12 && s->lo <= 1) {
        snprintf(buf, size, s->lo == 1 ? "a positive integer" : "an integer >= 0");
    } else {
        snprintf(buf, size, "an integer from %.0f to %.0f", s->lo, s->hi);
    }
}

/* ------------------------------------------------------------------ values */

static void *field(options *o, const opt_spec *s) { return (char *)o + s->offset; }

static bool is_choice(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        p += len + (bar != NULL);
    }
    return false;
}

/* "a, b or c" of "a|b|c", with the nearest suggested. */
static int bad_choice(const command_spec *c, const opt_spec *s, const char *v)
{
    char list[512], copy[512];
    const char *names[32];
    int n = 0;
    snprintf(copy, sizeof copy, "%s", s->choices);
    for (char *save = NULL, *t = strtok_r(copy, "|", &save); t && n < 32;
         t = strtok_r(NULL, "|", &save))
        names[n++] = t;
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; i < n && used < sizeof list; i++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s",
                         i == 0       ? ""
                         : i == n - 1 ? " or "
                                      : ", ",
                         names[i]);
        used += w > 0 ? (size_t)w : 0;
    }
    const char *near = cli_suggest(v, names, n);
    if (near)
        return usage_error(c, "--%s: expected %s, found '%s' (did you mean '%s'?)", s->name, list,
                           v, near);
    return usage_error(c, "--%s: expected %s, found '%s'", s->name, list, v);
}

static int set_feed(const command_spec *c, const opt_spec *s, const char *v, options *o)
{
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || !eq[1])
        return usage_error(c, "--%s: expected %s, found '%s'", s->name, s->metavar, v);
    if (o->n_feeds == MAX_FEEDS)
        return usage_error(c, "--%s: at most %d inputs, found more ('%s')", s->name, MAX_FEEDS, v);
    char *name = strndup(v, (size_t)(eq - v));
    if (!name) {
        fprintf(stderr, "dagnet: out of memory\n");
        return PARSE_ERROR;
    }
    o->feed_name[o->n_feeds] = name;
    o->feed_path[o->n_feeds++] = eq + 1;
    return PARSE_OK;
}

/* The value of one option into o; PARSE_ERROR (reported) when it is not allowed. */
static int set_value(const command_spec *c, const opt_spec *s, const char *v, options *o)
{
    char allowed[128];
    char *end = NULL;
    switch (s->kind) {
    case ARG_SWITCH: *(bool *)field(o, s) = true; return PARSE_OK;
    case ARG_TEXT:
        if (!*v)
            return usage_error(c, "--%s: expected %s, found an empty value", s->name, s->metavar);
        *(const char **)field(o, s) = v;
        return PARSE_OK;
    case ARG_CHOICE:
        if (!is_choice(s->choices, v))
            return bad_choice(c, s, v);
        *(const char **)field(o, s) = v;
        return PARSE_OK;
    case ARG_FEED: return set_feed(c, s, v, o);
    case ARG_REAL: {
        errno = 0;
        double x = *v ? strtod(v, &end) : NAN;
        bool ok = end && !*end && isfinite(x) && (s->lo_open ? x > s->lo : x >= s->lo) &&
                  (s->hi_open ? x < s->hi : x <= s->hi);
        if (!ok) {
            allowed_number(s, allowed, sizeof allowed);
            return usage_error(c, "--%s: expected %s, found '%s'", s->name, allowed, v);
        }
        *(double *)field(o, s) = x;
        return PARSE_OK;
    }
    case ARG_INT:
    case ARG_LONG:
    case ARG_SEED: {
        errno = 0;
        long long x = *v ? strtoll(v, &end, 10) : 0;
        if (!end || *end || errno || (double)x < s->lo || (double)x > s->hi) {
            allowed_number(s, allowed, sizeof allowed);
            return usage_error(c, "--%s: expected %s, found '%s'", s->name, allowed, v);
        }
        if (s->kind == ARG_INT)
            *(int *)field(o, s) = (int)x;
        else if (s->kind == ARG_LONG)
            *(long long *)field(o, s) = x;
        else {
            *(unsigned long long *)field(o, s) = (unsigned long long)x;
            o->seed_set = true;
        }
        return PARSE_OK;
    }
    }
    return PARSE_ERROR;
}

/* ------------------------------------------------------------------ the parser */

/* A word that is an option, not a value: "--x..." (a lone "-" and negative numbers are
 * values). */
static bool looks_like_option(const char *a) { return a[0] == '-' && a[1] == '-' && a[2]; }

int cli_parse(const command_spec *c, int argc, char **argv, int first, options *o)
{
    for (int i = first; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return PARSE_HELP;
    const char *operands[MAX_LOGS];
    int n_operands = 0;
    bool given[64] = { false }; /* by option index: a table holds far fewer */
    if (c->n_opts > 64)
        return usage_error(c, "internal error: more than 64 options");
    bool options_done = false;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (options_done || a[0] != '-' || a[1] == '\0') {
            if (n_operands == c->max_operands)
                return c->max_operands == 1
                           ? usage_error(c, "unexpected argument '%s' (it takes one %s)", a,
                                         c->operands)
                           : usage_error(c, "unexpected argument '%s' (at most %d operands)", a,
                                         c->max_operands);
            operands[n_operands++] = a;
            continue;
        }
        /* "--name", "--name=VALUE"; a single dash is taken as a slip for two */
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const opt_spec *s = NULL;
        for (int k = 0; k < c->n_opts; k++)
            if (strlen(c->opts[k].name) == len && strncmp(c->opts[k].name, name, len) == 0)
                s = &c->opts[k];
        if (!s || a[1] != '-') {
            char bare[MAX_WORD];
            snprintf(bare, sizeof bare, "%.*s", (int)(len < MAX_WORD - 1 ? len : MAX_WORD - 1),
                     name);
            char shown[MAX_WORD + 8];
            snprintf(shown, sizeof shown, "%.*s", (int)(eq ? eq - a : (long)strlen(a)), a);
            return unknown_option(c, shown, bare);
        }
        given[s - c->opts] = true;
        if (s->kind == ARG_SWITCH) {
            if (eq)
                return usage_error(c, "--%s takes no value, found '%s'", s->name, eq + 1);
            set_value(c, s, "", o);
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v && i + 1 < argc && !looks_like_option(argv[i + 1]))
            v = argv[++i];
        if (!v)
            return usage_error(c, "--%s needs a value (%s)", s->name, s->metavar);
        if (set_value(c, s, v, o) != PARSE_OK)
            return PARSE_ERROR;
    }
    if (n_operands < c->min_operands)
        return usage_error(c, "missing %s", c->operands);
    for (int k = 0; k < c->n_opts; k++)
        if (c->opts[k].required && !given[k])
            return usage_error(c, "missing --%s %s", c->opts[k].name, c->opts[k].metavar);
    o->model = operands[0];
    if (c->max_operands > 1) {
        for (int k = 0; k < n_operands; k++)
            o->logs[k] = operands[k];
        o->n_logs = n_operands;
    }
    return PARSE_OK;
}

void free_options(options *o)
{
    for (int i = 0; i < o->n_feeds; i++)
        free((char *)o->feed_name[i]);
    o->n_feeds = 0;
}
