/*
 * export.c — `dagnet export MODEL.json [--weights W.safetensors] --out MODEL.onnx
 * [--with-loss]`: a dagnet model with its weights as ONNX, opset 13 (docs/onnx.md), through
 * dn_session_export_onnx.
 */
#include <stdio.h>

#include "cli/cli.h"

int cmd_export(const dn_model *m, const options *o)
{
    dn_session *s = NULL;
    int rc = open_session(m, o, &s);
    if (!rc && dn_session_export_onnx(s, o->out, o->with_loss))
        rc = fail_session(s);
    dn_session_free(s);
    return rc;
}
