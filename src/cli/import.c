/*
 * import.c — `dagnet import MODEL.onnx --out MODEL.json --weights MODEL.safetensors
 * [--loss softmax-cross-entropy --label NAME]`: an ONNX model as a dagnet model file and its
 * weights (docs/onnx.md), through dn_model_load_onnx.
 */
#include <stdio.h>

#include "cli/cli.h"

int cmd_import(const dn_model *unused, const options *o)
{
    (void)unused;
    if (!o->loss != !o->label) {
        fprintf(stderr, "dagnet import: --loss and --label go together\n");
        return 2;
    }
    dn_onnx_options opts = DN_ONNX_OPTIONS_DEFAULT;
    opts.loss = o->loss;
    opts.label = o->label;
    dn_model *m = NULL;
    int rc = 0;
    if (dn_model_load_onnx(o->model, &opts, &m) || dn_model_save(m, o->out) ||
        dn_model_save_weights(m, o->weights))
        rc = fail_model(m);
    else
        printf("%s: %d nodes, %d params -> %s, %s\n", o->model, dn_model_node_count(m),
               dn_model_param_count(m), o->out, o->weights);
    dn_model_free(m);
    return rc;
}
