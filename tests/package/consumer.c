/*
 * consumer.c — a program built against an installed dagnet (scripts/check_package.sh builds
 * it three ways: CMake's find_package, CMake's pkg_check_modules, plain cc with pkg-config).
 * Loads the model given, reads its first output's shape before running, shares one set of
 * weights with an inference session, runs it on zeros and checks the output's shape.
 *
 *   consumer MODEL.json      prints "consumer: dagnet 0.2.0, <model>: output [1,10] ok"
 */
#include <dagnet.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what, const char *msg)
{
    fprintf(stderr, "consumer: %s: %s\n", what, msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return fail("usage", "consumer MODEL.json");
    if (DN_VERSION_NUMBER != DN_VERSION_MAJOR * 10000 + DN_VERSION_MINOR * 100 + DN_VERSION_PATCH)
        return fail("version", "DN_VERSION_NUMBER");
    dn_model *m = NULL;
    if (dn_model_load(argv[1], &m))
        return fail(argv[1], dn_model_errmsg(m));
    dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
    o.threads = 1;
    dn_session *train = NULL;
    if (dn_session_new(m, &o, &train))
        return fail("session", dn_session_errmsg(train));
    dn_weights *w = NULL;
    if (dn_weights_from_session(train, &w))
        return fail("weights", dn_weights_errmsg(w));
    o.weights = w;
    dn_session *s = NULL;
    if (dn_session_new(m, &o, &s))
        return fail("inference session", dn_session_errmsg(s));
    dn_tensor_info in, out;
    if (dn_model_input_info(m, 0, &in) || dn_model_output_info(m, 0, &out))
        return fail("info", dn_model_errmsg(m));
    int64_t n = 1;
    for (int d = 1; d < in.rank; d++)
        n *= in.shape[d];
    float *zeros = calloc((size_t)n, sizeof *zeros);
    dn_view v;
    if (!zeros || dn_session_set_input(s, in.name, DN_F32, in.rank, in.shape, zeros) ||
        dn_session_forward(s, DN_INFER, NULL, 0) || dn_session_tensor(s, out.name, &v))
        return fail("run", dn_session_errmsg(s));
    if (v.rank != out.rank || v.shape[0] != 1 || v.shape[1] != out.shape[1])
        return fail("run", "the output's shape differs from dn_model_output_info's");
    printf("consumer: dagnet %s, %s: output [%lld,%lld] ok\n", dn_version(), dn_model_name(m),
           (long long)v.shape[0], (long long)v.shape[1]);
    free(zeros);
    dn_session_free(s);
    dn_weights_free(w);
    dn_session_free(train);
    dn_model_free(m);
    return 0;
}
