/*
 * onnx_export.c — a dagnet model → an ONNX ModelProto (see onnx.h).
 */
#include "io/onnx.h"

dn_status dn_onnx_export(const char *json, size_t json_len, const dn_onnx_param *params,
                         int n_params, const dn_onnx_value_shape *shapes, int n_shapes,
                         const dn_onnx_export_opts *opts, unsigned char **out, size_t *out_len,
                         dn_err *err)
{
    (void)json, (void)json_len, (void)params, (void)n_params, (void)shapes, (void)n_shapes;
    (void)opts, (void)out, (void)out_len;
    return dn_err_set(err, DN_ERR_ARG, "ONNX export is not written yet");
}
