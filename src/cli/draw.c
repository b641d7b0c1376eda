/*
 * draw.c — the picture commands: `dagnet filters`, `activations`, `plot` and `graph`, and the
 * pictures `train --filters DIR` and `eval --confusion FILE` make. The drawing itself is the
 * draw/ layer's (draw/draw.h); this file turns options into its calls and its failures into
 * messages and exit codes (1 a failure, 2 a usage error).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "draw/draw.h"

static int fail_draw(const dn_draw_err *err)
{
    fprintf(stderr, "dagnet: %s\n", err->msg);
    return 1;
}

static dn_draw_tiles tiles_of(const options *o, const char *note)
{
    dn_draw_tiles t = DN_DRAW_TILES_DEFAULT;
    t.scale = o->scale;
    t.note = note;
    return t;
}

/* ------------------------------------------------------------------ filters */

int cmd_filters(const dn_model *m, const options *o)
{
    dn_session *s = NULL;
    int rc = open_session(m, o, &s);
    if (!rc) {
        char note[512];
        if (o->weights)
            snprintf(note, sizeof note, "weights: %s", o->weights);
        else
            snprintf(note, sizeof note, "initialised from seed %llu (no --weights)", o->seed);
        dn_draw_tiles t = tiles_of(o, note);
        dn_draw_err err;
        if (dn_draw_filters(s, m, o->node, &t, o->out, NULL, &err))
            rc = fail_draw(&err);
        else
            printf("filters: %s\n", o->out);
    }
    dn_session_free(s);
    return rc;
}

int write_filters_picture(const dn_model *m, dn_session *s, const options *o, const char *tag,
                          const char *note)
{
    if (mkdir(o->filters, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "dagnet: cannot create %s: %s\n", o->filters, strerror(errno));
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/filters-%s.png", o->filters, tag);
    dn_draw_tiles t = tiles_of(o, note);
    dn_draw_err err;
    if (dn_draw_filters(s, m, o->node, &t, path, NULL, &err))
        return fail_draw(&err);
    printf("filters: %s\n", path);
    return 0;
}

/* ------------------------------------------------------------------ activations */

/* "FILE" or "FILE:INDEX" (INDEX decimal digits after the last colon). */
static bool split_image(const char *spec, char **file, long long *index)
{
    const char *colon = strrchr(spec, ':');
    *index = 0;
    if (colon && colon[1]) {
        const char *p = colon + 1;
        while (isdigit((unsigned char)*p))
            p++;
        if (*p == '\0' && p - colon - 1 <= 12) {
            *index = strtoll(colon + 1, NULL, 10);
            *file = strndup(spec, (size_t)(colon - spec));
            return *file && **file;
        }
    }
    *file = strdup(spec);
    return *file && **file;
}

int cmd_activations(const dn_model *m, const options *o)
{
    char *file = NULL;
    long long index = 0;
    if (!split_image(o->image, &file, &index)) {
        fprintf(stderr, "dagnet: --image expects FILE[:INDEX], found \"%s\"\n", o->image);
        free(file);
        return 2;
    }
    dn_dataset *d = NULL;
    dn_session *s = NULL;
    int rc = 0;
    dn_view all;
    if (dn_dataset_load_images(file, &d) || dn_dataset_images(d, &all)) {
        fprintf(stderr, "dagnet: %s\n", dn_dataset_errmsg(d));
        rc = 1;
    } else if (index >= all.shape[0]) {
        fprintf(stderr,
                "dagnet: --image %s: index %lld is out of range: the file holds %lld "
                "image%s\n",
                file, index, (long long)all.shape[0], all.shape[0] == 1 ? "" : "s");
        rc = 1;
    }
    if (!rc)
        rc = open_session(m, o, &s);
    if (!rc) {
        int64_t per = all.shape[1] * all.shape[2] * all.shape[3];
        dn_view one = { .dtype = DN_F32,
                        .rank = 3,
                        .shape = { all.shape[1], all.shape[2], all.shape[3] },
                        .data = (float *)all.data + index * per };
        const char *base = strrchr(file, '/');
        char note[512];
        snprintf(note, sizeof note, "image %lld of %s; %s", index, base ? base + 1 : file,
                 o->weights ? o->weights : "weights initialised from the seed");
        dn_draw_tiles t = tiles_of(o, note);
        dn_draw_err err;
        if (dn_draw_activations(s, m, o->node, NULL, &one, &t, o->out, NULL, &err))
            rc = fail_draw(&err);
        else
            printf("activations: %s\n", o->out);
    }
    dn_session_free(s);
    dn_dataset_free(d);
    free(file);
    return rc;
}

/* ------------------------------------------------------------------ plot, graph */

int cmd_plot(const dn_model *m, const options *o)
{
    (void)m;
    dn_draw_err err;
    if (dn_draw_plot(o->logs, o->n_logs, o->title, o->out, &err))
        return fail_draw(&err);
    printf("plot: %s\n", o->out);
    return 0;
}

int cmd_graph(const dn_model *m, const options *o)
{
    dn_draw_err err;
    int boxes = 0;
    if (dn_draw_graph(m, o->out, &boxes, &err))
        return fail_draw(&err);
    printf("graph: %s (%d nodes, inputs and params)\n", o->out, boxes);
    return 0;
}

/* ------------------------------------------------------------------ confusion */

static bool contains_fashion(const char *path)
{
    for (const char *p = path; *p; p++)
        if (strncasecmp(p, "fashion", 7) == 0)
            return true;
    return false;
}

int write_confusion_picture(const dn_model *m, const options *o, const dn_eval_result *r)
{
    const char *names[1000];
    char *list = NULL;
    const char *const *use = NULL;
    const char *data = o->data ? o->data : DEFAULT_DATA_DIR;
    if (o->classes && strcmp(o->classes, "fashion-mnist") == 0) {
        use = dn_draw_fashion_mnist_classes;
    } else if (o->classes && strcmp(o->classes, "numbers") == 0) {
        use = NULL;
    } else if (o->classes) {
        /* "a,b,c": one name per class */
        list = strdup(o->classes);
        int n = 0;
        char *save = NULL;
        for (char *t = list ? strtok_r(list, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
            if (n < 1000)
                names[n++] = t;
        if (n != r->classes) {
            fprintf(stderr,
                    "dagnet: --classes names %d classes, but the model predicts %d; give one "
                    "name per class separated by commas, or fashion-mnist, or numbers\n",
                    n, r->classes);
            free(list);
            return 2;
        }
        use = names;
    } else if (r->classes == 10 && contains_fashion(data)) {
        use = dn_draw_fashion_mnist_classes;
    }
    char title[512];
    const char *base = strrchr(data, '/');
    snprintf(title, sizeof title, "%s on %s (test set)", dn_model_name(m),
             base && base[1] ? base + 1 : data);
    dn_draw_err err;
    int rc = 0;
    if (dn_draw_confusion(r->confusion, r->classes, use, title, o->confusion, &err))
        rc = fail_draw(&err);
    else
        printf("confusion matrix: %s\n", o->confusion);
    free(list);
    return rc;
}
