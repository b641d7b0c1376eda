/*
 * trainer.h — the trainer's entry below the public API. The dn_trainer_* functions of
 * dagnet.h are implemented in trainer.c on a graph executor; dn_trainer_new (api/api.c) hands
 * over the session's executor through dn_trainer_open.
 */
#ifndef DN_TRAINER_H
#define DN_TRAINER_H

#include "dagnet.h"
#include "graph/exec.h"

/* As dn_trainer_new, on the executor e (borrowed: it must outlive the trainer). On failure *out
 * still holds a trainer with the message, or NULL when even that could not be allocated. */
dn_status dn_trainer_open(dn_exec *e, const dn_train_options *o, const dn_binding *bind,
                          dn_trainer **out);

#endif
