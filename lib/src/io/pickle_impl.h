/* pickle_impl.h — shared internals of the pickle reader: the document arena (pickle_tree.c),
 * the call rules (pickle_policy.c) and the opcode interpreter (pickle.c). */
#ifndef UF_PICKLE_IMPL_H
#define UF_PICKLE_IMPL_H

#include "io/pickle.h"

struct pk_nchunk;
struct pk_bchunk;

struct uf_pk_doc {
    uf_pk_opts o;
    uf_pk_limits lim;
    struct pk_nchunk *nodes;
    size_t n_nodes;
    struct pk_bchunk *bytes;
    uint32_t gen;
};

/* A new node of kind k (zeroed), or NULL when the node limit is reached or memory runs out
 * (*limit tells which). */
uf_pk *pk_node(uf_pk_doc *d, uf_pk_kind k, int *limit);
/* A NUL-terminated copy of n bytes in the arena, or NULL. */
char *pk_bytes(uf_pk_doc *d, const void *src, size_t n);
/* Append an item to a sequence node; -1 when memory runs out. */
int pk_seq_push(uf_pk *seq, uf_pk *item);

/* What a call fn(*args) becomes under the rules of pickle.h. On success *out is the result;
 * on refusal returns UF_ERR_FORMAT with a message (no position: the caller prefixes it). */
uf_status pk_call(uf_pk_doc *d, uf_pk *fn, uf_pk *args, uf_pk **out, uf_error *err);
/* NEWOBJ / NEWOBJ_EX of cls(*args, **kwargs) (kwargs may be NULL). */
uf_status pk_newobj(uf_pk_doc *d, uf_pk *cls, uf_pk *args, uf_pk *kwargs, uf_pk **out,
                    uf_error *err);
/* A global node for module.name after the rule-1 check. */
uf_status pk_global(uf_pk_doc *d, const char *module, size_t ml, const char *name, size_t nl,
                    uf_pk **out, uf_error *err);

#endif
