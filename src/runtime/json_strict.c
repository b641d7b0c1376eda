/*
 * json_strict.c — duplicate keys and \u0000 escapes refused (see json_strict.h).
 *
 * NUL: cJSON has already decoded the strings, and a decoded "\u0000" just ends the C string,
 * so the check reads the raw text. A quick search for the six bytes \u0000 settles the usual
 * case (none) without allocating; otherwise a small scanner walks the text (valid JSON, since
 * cJSON accepted it) keeping a stack of containers, so that the message can give the JSON
 * location of the string, and tells an escape from an escaped backslash followed by "u0000".
 * Duplicates: every object of the tree; up to 16 keys pairwise, beyond that a sorted array of
 * pointers, so a huge object costs O(n log n), not O(n²).
 */
#include "runtime/json_strict.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys compared pairwise up to this many; sorted beyond. */
#define PAIRWISE_MAX 16
#define PATH_MAX_LEN 512

/* ---------------------------------------------------------------- JSON pointers */

typedef struct path {
    char s[PATH_MAX_LEN];
    size_t len;
} path;

/* Append "/" + n bytes of name; a path too long for the buffer ends in "...". */
static size_t path_push(path *p, const char *name, size_t n)
{
    size_t old = p->len;
    if (p->len + n + 2 < sizeof p->s - 4) {
        p->s[p->len++] = '/';
        memcpy(p->s + p->len, name, n);
        p->len += n;
    } else if (p->len < sizeof p->s - 4) {
        memcpy(p->s + p->len, "...", 3);
        p->len += 3;
    }
    p->s[p->len] = '\0';
    return old;
}

static size_t path_push_index(path *p, int i)
{
    char num[16];
    int n = snprintf(num, sizeof num, "%d", i);
    return path_push(p, num, (size_t)n);
}

static void path_pop(path *p, size_t old)
{
    p->len = old;
    p->s[old] = '\0';
}

/* ---------------------------------------------------------------- \u0000 */

typedef struct frame {
    bool object, expect_key;
    int index;
    const char *key;
    size_t key_len;
} frame;

static bool nul_escape_at(const char *q, const char *end)
{
    return end - q >= 6 && q[0] == '\\' && q[1] == 'u' && memcmp(q + 2, "0000", 4) == 0;
}

static dn_status report_nul(const char *text, const char *at, const frame *st, int depth,
                            bool is_key, const char *start, const char *label, dn_err *err)
{
    path p = { .len = 0 };
    p.s[0] = '\0';
    for (int i = 0; i < depth; i++) {
        if (!st[i].object)
            path_push_index(&p, st[i].index);
        else if (!(i == depth - 1 && is_key) && st[i].key)
            path_push(&p, st[i].key, st[i].key_len);
    }
    int line = 1, col = 1;
    for (const char *q = text; q < at; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return dn_err_set(err, DN_ERR_PARSE,
                      "%s: (%s): \\u0000 in %s \"%.*s\\u0000...\" (line %d, column %d): NUL "
                      "characters are not allowed in JSON strings",
                      label, p.len ? p.s : "/", is_key ? "the key" : "the string",
                      (int)(at - start < 64 ? at - start : 64), start, line, col);
}

static dn_status check_nul(const char *text, size_t len, const char *label, dn_err *err)
{
    const char *end = text + len;
    bool any = false;
    for (const char *q = memchr(text, '\\', len); q && !any;
         q = memchr(q + 1, '\\', (size_t)(end - q - 1)))
        any = nul_escape_at(q, end);
    if (!any)
        return DN_OK;
    /* cJSON's nesting limit bounds the depth. */
    int cap = CJSON_NESTING_LIMIT + 2, depth = 0;
    frame *st = malloc((size_t)cap * sizeof *st);
    if (!st)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate to check the JSON strings",
                          label);
    dn_status s = DN_OK;
    for (const char *p = text; p < end && s == DN_OK; p++) {
        switch (*p) {
        case '"': {
            const char *start = p + 1, *q = start, *nul = NULL;
            while (q < end && *q != '"') {
                if (*q == '\\') {
                    if (!nul && nul_escape_at(q, end))
                        nul = q;
                    q += 2; /* the escaped character; \uXXXX's digits are plain */
                } else {
                    q++;
                }
            }
            frame *top = depth ? &st[depth - 1] : NULL;
            bool is_key = top && top->object && top->expect_key;
            if (nul) {
                s = report_nul(text, nul, st, depth, is_key, start, label, err);
                break;
            }
            if (is_key) {
                top->key = start;
                top->key_len = (size_t)(q - start);
                top->expect_key = false;
            }
            p = q; /* the closing quote; the loop steps past it */
            break;
        }
        case '{':
        case '[':
            if (depth < cap)
                st[depth++] = (frame){ .object = *p == '{', .expect_key = *p == '{' };
            break;
        case '}':
        case ']':
            if (depth > 0)
                depth--;
            break;
        case ',':
            if (depth > 0) {
                if (st[depth - 1].object)
                    st[depth - 1].expect_key = true;
                else
                    st[depth - 1].index++;
            }
            break;
        default: break;
        }
    }
    free(st);
    return s;
}

/* ---------------------------------------------------------------- duplicate keys */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that appears twice among the object's keys, or NULL. */
static dn_status find_duplicate(const cJSON *obj, const char *label, const char **dup, dn_err *err)
{
    *dup = NULL;
    int n = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        n++;
    if (n <= PAIRWISE_MAX) {
        for (const cJSON *a = obj->child; a && !*dup; a = a->next)
            for (const cJSON *b = a->next; b && !*dup; b = b->next)
                if (strcmp(a->string, b->string) == 0)
                    *dup = a->string;
        return DN_OK;
    }
    const char **names = malloc((size_t)n * sizeof *names);
    if (!names)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate to check %d JSON keys", label, n);
    int i = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        names[i++] = c->string;
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    for (i = 1; i < n && !*dup; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            *dup = names[i];
    free(names);
    return DN_OK;
}

static dn_status check_dups(const cJSON *node, path *p, const char *label, dn_err *err)
{
    if (cJSON_IsObject(node)) {
        const char *dup = NULL;
        dn_status s = find_duplicate(node, label, &dup, err);
        if (s != DN_OK)
            return s;
        if (dup)
            return dn_err_set(err, DN_ERR_PARSE,
                              "%s: (%s): duplicate key \"%s\" (a key may appear once per "
                              "object)",
                              label, p->len ? p->s : "/", dup);
        for (const cJSON *c = node->child; c; c = c->next) {
            size_t old = path_push(p, c->string, strlen(c->string));
            s = check_dups(c, p, label, err);
            path_pop(p, old);
            if (s != DN_OK)
                return s;
        }
    } else if (cJSON_IsArray(node)) {
        int i = 0;
        for (const cJSON *c = node->child; c; c = c->next, i++) {
            size_t old = path_push_index(p, i);
            dn_status s = check_dups(c, p, label, err);
            path_pop(p, old);
            if (s != DN_OK)
                return s;
        }
    }
    return DN_OK;
}

dn_status dn_json_check_nul(const char *text, size_t len, const char *label, dn_err *err)
{
    return text ? check_nul(text, len, label ? label : "JSON", err) : DN_OK;
}

dn_status dn_json_check_dups(const cJSON *root, const char *label, dn_err *err)
{
    if (!root)
        return DN_OK;
    path p = { .len = 0 };
    p.s[0] = '\0';
    return check_dups(root, &p, label ? label : "JSON", err);
}

dn_status dn_json_check_strict(const char *text, size_t len, const cJSON *root, const char *label,
                               dn_err *err)
{
    /* NUL first: a truncated key could otherwise pass for a duplicate of another. */
    dn_status s = dn_json_check_nul(text, len, label, err);
    return s != DN_OK ? s : dn_json_check_dups(root, label, err);
}
