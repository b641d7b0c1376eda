/*
 * test_registry.c — every op of the registry comes with what ops/registry.c says adding an op
 * takes, so that forgetting a step fails here, naming the op, rather than going unnoticed:
 *   - a finite-difference gradient test: a suite <id>_grad whose test names the op, in a
 *     source of tests/ that calls dn_gradcheck (tests/gradcheck.h);
 *   - a section of docs/ops.md: a `## ` heading naming the op as a word ("## ReLU, Sigmoid,
 *     Tanh" serves all three) and its name, in backquotes, in docs/format.md;
 *   - an entry "<Name>": in the TORCH_OPS table of tests/parity/parity.py, and a model in
 *     examples/models/ that uses the op, so that the pytorch_parity test runs that entry.
 * The sources are read, as text, from DAGNET_SOURCE_DIR (the tree the tests were built from).
 * Each op is checked with cr_expect, so one run names every op that misses something.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

#define SOURCE(rel) DAGNET_SOURCE_DIR "/" rel

/* The whole file, NUL-terminated (the caller frees); the test fails when it cannot be read. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    size_t cap = 1 << 16, len = 0, got;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    while ((got = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            cap *= 2;
            text = realloc(text, cap);
            cr_assert_not_null(text);
        }
    }
    cr_assert(!ferror(f), "cannot read %s", path);
    fclose(f);
    text[len] = '\0';
    return text;
}

static bool is_word_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Whether `needle` occurs in text[0, len). */
static bool has_text(const char *text, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(text + i, needle, n) == 0)
            return true;
    return false;
}

/* Whether `word` occurs in text[0, len) with no letter, digit or '_' on either side. */
static bool has_word(const char *text, size_t len, const char *word)
{
    size_t n = strlen(word);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(text + i, word, n) == 0 && (i == 0 || !is_word_char(text[i - 1])) &&
            (i + n == len || !is_word_char(text[i + n])))
            return true;
    return false;
}

/* ---------------------------------------------------------------- the table itself */

/* Each id is its op's name in lower snake case, every name finds its own op (so no two ops
 * share a name), and every descriptor has what the engine calls unconditionally. */
Test(registry_table, ids_names_and_required_fields)
{
    int n = dn_op_count();
    cr_assert_gt(n, 0);
    cr_assert_null(dn_op_at(n));
    cr_assert_null(dn_op_id_at(n));
    cr_assert_null(dn_op_at(-1));
    for (int i = 0; i < n; i++) {
        const dn_op *op = dn_op_at(i);
        const char *id = dn_op_id_at(i);
        cr_assert(op && id && op->name && *op->name, "op %d: no descriptor, id or name", i);
        char squashed[64] = "", lower[64] = "";
        for (size_t j = 0, k = 0; id[j] && k < sizeof squashed - 1; j++)
            if (id[j] != '_')
                squashed[k++] = id[j];
        for (size_t j = 0; op->name[j] && j < sizeof lower - 1; j++)
            lower[j] = (char)tolower((unsigned char)op->name[j]);
        cr_expect_str_eq(squashed, lower, "%s: its id \"%s\" is not its name in lower snake case",
                         op->name, id);
        cr_expect_eq(dn_op_find(op->name), op, "%s: dn_op_find finds another op of that name",
                     op->name);
        cr_expect(op->parse_attrs && op->infer && op->flops && op->forward && op->backward,
                  "%s: parse_attrs, infer, flops, forward and backward are all required", op->name);
        cr_expect(op->min_inputs >= 1 && (op->max_inputs < 0 || op->max_inputs >= op->min_inputs),
                  "%s: inputs [%d, %d]", op->name, op->min_inputs, op->max_inputs);
    }
}

/* ---------------------------------------------------------------- gradient tests */

typedef struct source {
    char name[256];
    char *text;
} source;

/* The .c files of tests/ but this one, whose messages name suites. Returns how many. */
static int read_test_sources(source *out, int max)
{
    DIR *d = opendir(SOURCE("tests"));
    cr_assert_not_null(d, "cannot list %s", SOURCE("tests"));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 3 || strcmp(e->d_name + len - 2, ".c") != 0 ||
            strcmp(e->d_name, "test_registry.c") == 0 || len >= sizeof out[0].name)
            continue;
        cr_assert_lt(n, max, "more than %d test sources", max);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", SOURCE("tests"), e->d_name);
        memcpy(out[n].name, e->d_name, len + 1);
        out[n].text = slurp(path);
        n++;
    }
    closedir(d);
    return n;
}

/* The body of the next `Test(<suite>, …)` at or after *from, as [*body, *end), and *from
 * moved past it; false when there is none. Spaces after `Test(` are allowed. */
static bool next_test_of_suite(const char *suite, const char **from, const char **body,
                               const char **end)
{
    size_t n = strlen(suite);
    for (const char *t = strstr(*from, "Test("); t; t = strstr(t + 1, "Test(")) {
        const char *s = t + strlen("Test(");
        while (isspace((unsigned char)*s))
            s++;
        if (strncmp(s, suite, n) != 0 || is_word_char(s[n]))
            continue;
        const char *open = strchr(s, '{'), *close = open ? strstr(open, "\n}") : NULL;
        if (!close)
            return false;
        *body = open;
        *end = close;
        *from = close;
        return true;
    }
    return false;
}

Test(registry_coverage, every_op_has_a_gradient_test)
{
    source src[64];
    int n_src = read_test_sources(src, 64);
    for (int i = 0; i < dn_op_count(); i++) {
        const dn_op *op = dn_op_at(i);
        const char *id = dn_op_id_at(i);
        char suite[80], symbol[80], quoted[80];
        snprintf(suite, sizeof suite, "%s_grad", id);
        snprintf(symbol, sizeof symbol, "dn_op_%s", id);
        snprintf(quoted, sizeof quoted, "\"%s\"", op->name);
        int tests = 0, checked = 0;
        for (int f = 0; f < n_src; f++) {
            bool harness = strstr(src[f].text, "dn_gradcheck(") != NULL;
            const char *from = src[f].text, *body, *end;
            while (next_test_of_suite(suite, &from, &body, &end)) {
                tests++;
                /* the test is about this op (by descriptor or by name) and its file runs the
                 * finite-difference harness */
                size_t len = (size_t)(end - body);
                bool names_op = has_word(body, len, symbol) || has_text(body, len, quoted);
                checked += names_op && harness;
            }
        }
        cr_expect_gt(tests, 0,
                     "%s (ops/%s.c): no finite-difference gradient test: no Criterion suite "
                     "%s in tests/",
                     op->name, id, suite);
        cr_expect(tests == 0 || checked > 0,
                  "%s (ops/%s.c): suite %s has %d test(s), but none names %s in a file that "
                  "calls dn_gradcheck (tests/gradcheck.h)",
                  op->name, id, suite, tests, symbol);
    }
    for (int f = 0; f < n_src; f++)
        free(src[f].text);
}

/* ---------------------------------------------------------------- docs */

Test(registry_coverage, every_op_has_a_section_in_ops_md)
{
    char *doc = slurp(SOURCE("docs/ops.md"));
    for (int i = 0; i < dn_op_count(); i++) {
        const dn_op *op = dn_op_at(i);
        bool found = false;
        for (const char *line = doc; line && !found; line = strchr(line, '\n')) {
            if (*line == '\n')
                line++;
            if (strncmp(line, "## ", 3) != 0)
                continue;
            const char *eol = strchr(line, '\n');
            found = has_word(line, eol ? (size_t)(eol - line) : strlen(line), op->name);
        }
        cr_expect(found, "%s (ops/%s.c): no section in docs/ops.md (a `## ` heading naming it)",
                  op->name, dn_op_id_at(i));
    }
    free(doc);
}

Test(registry_coverage, every_op_is_named_in_format_md)
{
    char *doc = slurp(SOURCE("docs/format.md"));
    for (int i = 0; i < dn_op_count(); i++) {
        const dn_op *op = dn_op_at(i);
        char quoted[80];
        snprintf(quoted, sizeof quoted, "`%s`", op->name);
        cr_expect(strstr(doc, quoted), "%s (ops/%s.c): not in docs/format.md's list of ops (%s)",
                  op->name, dn_op_id_at(i), quoted);
    }
    free(doc);
}

/* ---------------------------------------------------------------- parity with PyTorch */

Test(registry_coverage, every_op_has_a_parity_entry)
{
    char *py = slurp(SOURCE("tests/parity/parity.py"));
    const char *start = strstr(py, "\nTORCH_OPS = {");
    cr_assert_not_null(start, "tests/parity/parity.py: no `TORCH_OPS = {` table");
    const char *end = strstr(start, "\n}");
    cr_assert_not_null(end, "tests/parity/parity.py: TORCH_OPS has no closing `}` line");
    size_t len = (size_t)(end - start);
    for (int i = 0; i < dn_op_count(); i++) {
        const dn_op *op = dn_op_at(i);
        char key[80];
        snprintf(key, sizeof key, "\"%s\":", op->name);
        cr_expect(has_text(start, len, key),
                  "%s (ops/%s.c): no entry %s in TORCH_OPS of tests/parity/parity.py", op->name,
                  dn_op_id_at(i), key);
    }
    free(py);
}

/* The pytorch_parity test runs the example models, so an op that no example model uses has a
 * TORCH_OPS entry that nothing exercises: each op must appear in one of examples/models/. */
Test(registry_coverage, every_op_runs_in_an_example_model)
{
    DIR *d = opendir(SOURCE("examples/models"));
    cr_assert_not_null(d, "cannot list %s", SOURCE("examples/models"));
    char *texts[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        cr_assert_lt(n, 64, "more than 64 example models");
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", SOURCE("examples/models"), e->d_name);
        texts[n++] = slurp(path);
    }
    closedir(d);
    for (int i = 0; i < dn_op_count(); i++) {
        const dn_op *op = dn_op_at(i);
        char key[80];
        snprintf(key, sizeof key, "\"op\": \"%s\"", op->name);
        bool used = false;
        for (int k = 0; k < n && !used; k++)
            used = strstr(texts[k], key) != NULL;
        cr_expect(used,
                  "%s (ops/%s.c): no model in examples/models/ uses it (%s), so the PyTorch "
                  "parity test never runs it",
                  op->name, dn_op_id_at(i), key);
    }
    for (int k = 0; k < n; k++)
        free(texts[k]);
}
