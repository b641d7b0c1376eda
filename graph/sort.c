/*
 * sort.c — topological order of the nodes (Kahn's algorithm).
 *
 * Deterministic for a given file: whenever several nodes are ready, the one written first in
 * the file runs first (a min-heap on file position), so a file already in order keeps its
 * order. When nodes remain that never become ready, they sit on or behind a cycle; following
 * unfinished inputs from any of them must revisit a node, and that loop is reported by name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

typedef struct heap {
    int *items;
    int size;
} heap;

static void heap_push(heap *h, int x)
{
    int i = h->size++;
    h->items[i] = x;
    while (i > 0 && h->items[(i - 1) / 2] > h->items[i]) {
        int p = (i - 1) / 2, t = h->items[p];
        h->items[p] = h->items[i];
        h->items[i] = t;
        i = p;
    }
}

static int heap_pop(heap *h)
{
    int top = h->items[0];
    h->items[0] = h->items[--h->size];
    for (int i = 0;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->size && h->items[l] < h->items[m])
            m = l;
        if (r < h->size && h->items[r] < h->items[m])
            m = r;
        if (m == i)
            break;
        int t = h->items[m];
        h->items[m] = h->items[i];
        h->items[i] = t;
        i = m;
    }
    return top;
}

/* Walk from a node that never became ready through inputs that never finished, until a node
 * repeats; report the loop. */
static dn_status report_cycle(const dn_node *nodes, int n, const int *producer, const int *pending,
                              const char *file, dn_err *err)
{
    int *seen_at = malloc((size_t)n * sizeof *seen_at);
    int *path = malloc((size_t)n * sizeof *path);
    if (!seen_at || !path) {
        free(seen_at);
        free(path);
        return dn_err_set(err, DN_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        seen_at[i] = -1;
    int cur = 0;
    while (pending[cur] == 0)
        cur++;
    int len = 0;
    while (seen_at[cur] < 0) {
        seen_at[cur] = len;
        path[len++] = cur;
        int next = -1;
        for (int i = 0; i < nodes[cur].n_inputs && next < 0; i++) {
            int p = producer[nodes[cur].inputs[i]];
            if (p >= 0 && pending[p] > 0)
                next = p;
        }
        cur = next; /* a pending node always has a pending producer */
    }
    /* path[seen_at[cur] .. len) is the loop, each node reading the next one's output: print
     * it in data-flow order (producer first). */
    char msg[DN_ERRMSG_MAX];
    size_t used = 0;
    for (int i = len - 1; i >= seen_at[cur] && used < sizeof msg; i--) {
        int w = snprintf(msg + used, sizeof msg - used, "\"%s\" -> ", nodes[path[i]].name);
        used += w > 0 ? (size_t)w : 0;
    }
    if (used < sizeof msg)
        snprintf(msg + used, sizeof msg - used, "\"%s\"", nodes[path[len - 1]].name);
    dn_status st =
        dn_err_set(err, DN_ERR_MODEL, "%s: (/nodes): the graph has a cycle: %s", file, msg);
    free(seen_at);
    free(path);
    return st;
}

dn_status dn_graph_sort(dn_node *nodes, int n, const int *producer, const char *file, int *order,
                        dn_err *err)
{
    /* pending[i]: inputs of node i produced by nodes not yet ordered. consumers: CSR lists. */
    int *pending = calloc((size_t)n, sizeof *pending);
    int *first = calloc((size_t)n + 1, sizeof *first);
    int64_t edges = 0;
    for (int i = 0; i < n; i++)
        edges += nodes[i].n_inputs;
    int *consumers = malloc(((size_t)edges + 1) * sizeof *consumers);
    int *fill = calloc((size_t)n + 1, sizeof *fill);
    heap ready = { malloc(((size_t)n + 1) * sizeof(int)), 0 };
    dn_status st = DN_OK;
    if (!pending || !first || !consumers || !fill || !ready.items) {
        st = dn_err_set(err, DN_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nodes[i].n_inputs; j++) {
            int p = producer[nodes[i].inputs[j]];
            if (p >= 0) {
                pending[i]++;
                first[p + 1]++;
            }
        }
    for (int i = 0; i < n; i++)
        first[i + 1] += first[i];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nodes[i].n_inputs; j++) {
            int p = producer[nodes[i].inputs[j]];
            if (p >= 0)
                consumers[first[p] + fill[p]++] = i;
        }
    for (int i = 0; i < n; i++)
        if (pending[i] == 0)
            heap_push(&ready, i);
    int done = 0;
    while (ready.size > 0) {
        int i = heap_pop(&ready);
        order[done++] = i;
        for (int e = first[i]; e < first[i + 1]; e++)
            if (--pending[consumers[e]] == 0)
                heap_push(&ready, consumers[e]);
    }
    if (done < n)
        st = report_cycle(nodes, n, producer, pending, file, err);
out:
    free(pending);
    free(first);
    free(consumers);
    free(fill);
    free(ready.items);
    return st;
}
