// header.cpp — dagnet.h as a C++ program sees it (scripts/check_cxx_header.sh compiles this
// with g++ -Wall -Wextra -pedantic -Werror): extern "C" linkage, and default initialisers
// that C++ accepts. Not run; the script checks the object refers to unmangled C names.
#include <dagnet.h>

#include <cstdio>

// The C++ defaults are C's (dagnet.h spells them twice: designated in C, positional in C++).
constexpr dn_train_options cxx_train = DN_TRAIN_OPTIONS_DEFAULT;
static_assert(cxx_train.struct_size == sizeof(dn_train_options) && cxx_train.optimizer == DN_ADAM &&
                  cxx_train.lr == 0.001f && cxx_train.momentum == 0.9f &&
                  cxx_train.weight_decay == 0.0f && cxx_train.schedule == DN_LR_CONSTANT &&
                  cxx_train.step_size == 10 && cxx_train.gamma == 0.1f && cxx_train.epochs == 3 &&
                  cxx_train.batch == 100 && cxx_train.seed == 0,
              "DN_TRAIN_OPTIONS_DEFAULT in C++");
constexpr dn_session_options cxx_session = DN_SESSION_OPTIONS_DEFAULT;
static_assert(cxx_session.struct_size == sizeof(dn_session_options) && cxx_session.seed == 0 &&
                  cxx_session.threads == 0 && !cxx_session.keep_tensors &&
                  cxx_session.weights == nullptr,
              "DN_SESSION_OPTIONS_DEFAULT in C++");

int use_dagnet(const char *model_path)
{
    static_assert(DN_VERSION_NUMBER >= 200, "version macros");
    dn_session_options so = DN_SESSION_OPTIONS_DEFAULT;
    so.threads = 1;
    dn_train_options to = DN_TRAIN_OPTIONS_DEFAULT;
    dn_binding bind = DN_BINDING_DEFAULT;
    dn_onnx_options oo = DN_ONNX_OPTIONS_DEFAULT;
    static_assert(sizeof oo.struct_size == sizeof(size_t), "dn_onnx_options starts with its size");
    dn_model *m = nullptr;
    if (dn_model_load(model_path, &m) != DN_OK) {
        std::fprintf(stderr, "%s\n", dn_model_errmsg(m));
        dn_model_free(m);
        return 1;
    }
    dn_session *s = nullptr;
    dn_status st = dn_session_new(m, &so, &s);
    dn_trainer *t = nullptr;
    if (st == DN_OK)
        st = dn_trainer_new(s, &to, &bind, &t);
    std::printf("%s %s %s\n", dn_version(), dn_format(), dn_status_name(st));
    dn_trainer_free(t);
    dn_session_free(s);
    dn_model_free(m);
    return st == DN_OK ? 0 : 1;
}
