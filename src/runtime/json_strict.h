/*
 * json_strict.h — what cJSON accepts but dagnet refuses: duplicate keys and NUL in strings.
 *
 * JSON (RFC 8259) leaves duplicate names undefined: cJSON keeps the first when looked up,
 * Python's json the last, so two tools would read two different models from one file. And
 * cJSON decodes a "\u0000" escape into a C string that ends there, so "conv\u0000x" would
 * silently become "conv". Both are refused, with the JSON location (a JSON pointer, names as
 * written in the file) in the message:
 *
 *     model.json: (/nodes/3/attrs): duplicate key "kernel"
 *     model.json: (/nodes/0/name): \u0000 in a string (line 5, column 17): NUL characters are
 *         not allowed
 *
 * Every reader that parses JSON with cJSON (the model loader, including its "train" section,
 * and safetensors headers) calls dn_json_check_strict on the text and the tree it parsed.
 */
#ifndef DN_JSON_STRICT_H
#define DN_JSON_STRICT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "runtime/error.h"

/* Check `text` (len bytes, the JSON cJSON parsed into root) for \u0000 escapes inside strings
 * and every object of root for duplicate keys. Cost: one pass over the text, and per object
 * O(n log n) in its number of keys (a sort of pointers past 16 keys). `label` names the file
 * in messages. Errors: DN_ERR_PARSE; DN_ERR_NOMEM. */
dn_status dn_json_check_strict(const char *text, size_t len, const cJSON *root, const char *label,
                               dn_err *err);

/* The two halves of dn_json_check_strict, for readers that report some duplicates in their
 * own words first (safetensors: "tensor "w" appears twice"). */
dn_status dn_json_check_nul(const char *text, size_t len, const char *label, dn_err *err);
dn_status dn_json_check_dups(const cJSON *root, const char *label, dn_err *err);

#endif
