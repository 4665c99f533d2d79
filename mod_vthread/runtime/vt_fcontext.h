/**
 * @file  vt_fcontext.h
 * @brief Boost.Context's C-callable context switch, declared for C.
 *
 * libboost_context exports these with C linkage (extern "C" in
 * boost/context/detail/fcontext.hpp); that header is C++, so the three
 * symbols are declared again here. transfer_t is two pointers, returned in
 * registers on every ABI Boost supports, identically from C.
 */
#ifndef VT_FCONTEXT_H
#define VT_FCONTEXT_H

#include <stddef.h>

/** A suspended context: an opaque pointer into its stack. */
typedef void *vt_fcontext_t;

/** What a jump delivers to the context it resumes. */
typedef struct vt_transfer_t {
    vt_fcontext_t fctx; /**< the context that jumped (to jump back to) */
    void *data;         /**< the value it passed */
} vt_transfer_t;

/** Suspend the caller and resume @a to, passing it @a vp. */
vt_transfer_t jump_fcontext(vt_fcontext_t const to, void *vp);

/** Make a context that will run @a fn on the stack whose top is @a sp. */
vt_fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(vt_transfer_t));

#endif /* VT_FCONTEXT_H */
