/*
 * graph.c — the computation graph laid out by Graphviz (draw.h: dn_draw_graph).
 *
 * The model's values become Graphviz nodes built with cgraph's API (no DOT text to escape
 * by hand): every graph input (green ellipse: name, shape), every param (yellow note: name,
 * shape) and every op node (blue rounded box: name, op, output shape with N for the batch,
 * parameter count). An edge runs from each tensor a node reads to the node. Graphviz's dot
 * engine ranks them top to bottom, and gvc renders SVG (its core plugin), PNG (its cairo
 * plugin) or the laid-out DOT text into memory, which is then written atomically.
 *
 * The loss path: the op nodes the loss depends on (walking the nodes in reverse execution
 * order from the loss, marking the producers of what a marked node reads) are outlined in
 * red, as are the edges into them from ops and params: the way gradients flow back. The
 * loss node has a double border. Inputs never take gradients and stay unmarked.
 */
#include <gvc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw/canvas.h"

#define RED "#c0392b"

/* Graphviz is process-wide state (its error hook, its plugins, the context below), so
 * dn_draw_graph runs one graph at a time: the lock makes two threads drawing graphs wait for
 * each other instead of racing in Graphviz. It guards gv_message and shared_context. */
static pthread_mutex_t graphviz_lock = PTHREAD_MUTEX_INITIALIZER;

/* Graphviz reports through a global hook; we keep its last message for ours. */
static char gv_message[512];

/* One Graphviz context for the process, made on first use and kept: Graphviz 2.42's pango
 * plugin remembers the last font name across contexts, pointing into the font table of the
 * context that measured it, so freeing a context and making another reads freed memory (the
 * sanitizer build finds it on the second graph). Kept, it also loads the plugins once. */
static GVC_t *shared_context;

static int capture(char *text)
{
    size_t n = strlen(gv_message);
    if (n < sizeof gv_message - 1)
        snprintf(gv_message + n, sizeof gv_message - n, "%s", text);
    return 0;
}

/* A label: the lines joined by Graphviz's "\n", backslashes in names escaped as "\\". */
static void label_append(char *buf, size_t size, const char *text)
{
    size_t n = strlen(buf);
    for (const char *p = text; *p && n + 2 < size; p++) {
        if (*p == '\\')
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    buf[n] = '\0';
}

static void set(void *obj, const char *name, const char *value)
{
    agsafeset(obj, (char *)name, (char *)value, "");
}

static Agnode_t *value_node(Agraph_t *g, const char *name, const char *label, const char *shape,
                            const char *fill)
{
    Agnode_t *v = agnode(g, (char *)name, 1);
    if (!v)
        return NULL;
    set(v, "label", label);
    set(v, "shape", shape);
    set(v, "style", "filled");
    set(v, "fillcolor", fill);
    return v;
}

/* Build the Graphviz graph; counts the nodes made. NULL when memory ran out. */
static Agraph_t *build(const dn_model *m, int *boxes)
{
    Agraph_t *g = agopen((char *)dn_model_name(m), Agdirected, NULL);
    if (!g)
        return NULL;
    agattr(g, AGRAPH, "rankdir", "TB");
    agattr(g, AGRAPH, "nodesep", "0.25");
    agattr(g, AGRAPH, "ranksep", "0.3");
    agattr(g, AGRAPH, "fontname", "DejaVu Sans");
    agattr(g, AGRAPH, "fontsize", "11");
    agattr(g, AGRAPH, "labelloc", "b");
    agattr(g, AGNODE, "fontname", "DejaVu Sans");
    agattr(g, AGNODE, "fontsize", "10");
    agattr(g, AGNODE, "margin", "0.08,0.04");
    agattr(g, AGNODE, "color", "#555555");
    agattr(g, AGNODE, "penwidth", "1");
    agattr(g, AGEDGE, "color", "#777777");
    agattr(g, AGEDGE, "penwidth", "1");
    agattr(g, AGEDGE, "arrowsize", "0.6");
    char label[1024], shape[256];
    *boxes = 0;
    for (int i = 0; i < dn_model_input_count(m); i++) {
        dn_tensor_info t;
        if (dn_model_input_info(m, i, &t))
            continue;
        dn_shape_text(shape, sizeof shape, t.rank, t.shape, t.batched);
        label[0] = '\0';
        label_append(label, sizeof label, t.name);
        snprintf(label + strlen(label), sizeof label - strlen(label), "\\n%s%s", shape,
                 t.dtype == DN_I32 ? " int32" : "");
        if (!value_node(g, t.name, label, "ellipse", "#d9f2d9"))
            return agclose(g), NULL;
        ++*boxes;
    }
    for (int i = 0; i < dn_model_param_count(m); i++) {
        dn_tensor_info t;
        if (dn_model_param_info(m, i, &t))
            continue;
        dn_shape_text(shape, sizeof shape, t.rank, t.shape, false);
        label[0] = '\0';
        label_append(label, sizeof label, t.name);
        snprintf(label + strlen(label), sizeof label - strlen(label), "\\n%s", shape);
        Agnode_t *v = value_node(g, t.name, label, "note", "#fff2c2");
        if (!v)
            return agclose(g), NULL;
        set(v, "fontsize", "9");
        ++*boxes;
    }
    int n = dn_model_node_count(m);
    bool *on_path = calloc((size_t)(n > 0 ? n : 1), sizeof *on_path);
    if (!on_path)
        return agclose(g), NULL;
    const char *loss = dn_model_loss_name(m);
    for (int i = n - 1; i >= 0; i--) {
        dn_node_info a;
        if (dn_model_node_info(m, i, &a))
            continue;
        if (loss && strcmp(a.name, loss) == 0)
            on_path[i] = true;
        if (!on_path[i])
            continue;
        for (int k = 0; k < a.n_inputs; k++)
            for (int j = 0; j < i; j++) {
                dn_node_info b;
                if (!dn_model_node_info(m, j, &b) && strcmp(b.name, a.inputs[k]) == 0)
                    on_path[j] = true;
            }
    }
    for (int i = 0; i < n; i++) {
        dn_node_info a;
        if (dn_model_node_info(m, i, &a))
            continue;
        if (a.rank == 0)
            snprintf(shape, sizeof shape, "scalar");
        else
            dn_shape_text(shape, sizeof shape, a.rank, a.shape, a.batched);
        label[0] = '\0';
        label_append(label, sizeof label, a.name);
        size_t used = strlen(label);
        snprintf(label + used, sizeof label - used, ": %s\\n%s", a.op, shape);
        used = strlen(label);
        if (a.params > 0)
            snprintf(label + used, sizeof label - used, "\\n%lld params", (long long)a.params);
        bool is_loss = loss && strcmp(a.name, loss) == 0;
        Agnode_t *v = value_node(g, a.name, label, "box", is_loss ? "#f9dcd6" : "#dce8f7");
        if (!v) {
            free(on_path);
            return agclose(g), NULL;
        }
        set(v, "style", "rounded,filled");
        if (on_path[i]) {
            set(v, "color", RED);
            set(v, "penwidth", "2");
        }
        if (is_loss)
            set(v, "peripheries", "2");
        ++*boxes;
        for (int k = 0; k < a.n_inputs; k++) {
            Agnode_t *from = agnode(g, (char *)a.inputs[k], 0);
            if (!from)
                continue;
            Agedge_t *e = agedge(g, from, v, NULL, 1);
            if (!e) {
                free(on_path);
                return agclose(g), NULL;
            }
            bool from_input = false;
            for (int j = 0; j < dn_model_input_count(m); j++) {
                dn_tensor_info t;
                if (!dn_model_input_info(m, j, &t) && strcmp(t.name, a.inputs[k]) == 0)
                    from_input = true;
            }
            if (on_path[i] && !from_input) {
                set(e, "color", RED);
                set(e, "penwidth", "2");
            }
        }
    }
    free(on_path);
    char caption[512];
    snprintf(caption, sizeof caption,
             "%s\nboxes: ops (output shape, params); green ellipses: inputs; yellow notes: "
             "params%s",
             dn_model_name(m), loss ? "; red: the loss path (what backward visits)" : "");
    set(g, "label", caption);
    return g;
}

dn_status dn_draw_graph(const dn_model *m, const char *path, int *boxes, dn_draw_err *err)
{
    int count = 0;
    if (boxes)
        *boxes = 0;
    if (!m)
        return dn_draw_fail(err, DN_ERR_ARG, "dn_draw_graph: the model is NULL");
    dn_draw_format format;
    dn_status st = dn_draw_format_of(path, true, &format, err);
    if (st)
        return st;
    pthread_mutex_lock(&graphviz_lock);
    gv_message[0] = '\0';
    agusererrf old_hook = agseterrf(capture);
    agerrlevel_t old_level = agseterr(AGERR);
    if (!shared_context)
        shared_context = gvContext();
    GVC_t *gvc = shared_context;
    Agraph_t *g = gvc ? build(m, &count) : NULL;
    char *data = NULL;
    unsigned int size = 0;
    static const char *const formats[] = { "png", "svg", "dot" };
    if (!gvc || !g)
        st = dn_draw_fail(err, DN_ERR_NOMEM, "%s: Graphviz ran out of memory", path);
    else if (gvLayout(gvc, g, "dot") != 0)
        st = dn_draw_fail(err, DN_ERR_IO, "%s: Graphviz could not lay out the graph: %s", path,
                          gv_message[0] ? gv_message : "no reason given");
    else {
        if (gvRenderData(gvc, g, formats[format], &data, &size) != 0 || !data)
            st = dn_draw_fail(err, DN_ERR_IO,
                              "%s: Graphviz could not render %s: %s (is its %s plugin "
                              "installed?)",
                              path, formats[format], gv_message[0] ? gv_message : "no reason given",
                              format == DN_DRAW_PNG ? "cairo" : "core");
        gvFreeLayout(gvc, g);
    }
    if (!st)
        st = dn_draw_write_file(path, data, size, err);
    if (data)
        gvFreeRenderData(data);
    if (g)
        agclose(g);
    agseterr(old_level);
    agseterrf(old_hook);
    pthread_mutex_unlock(&graphviz_lock);
    if (!st && boxes)
        *boxes = count;
    return st;
}
