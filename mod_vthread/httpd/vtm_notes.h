/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_notes.h
 * @brief Access-log notes (vthread-*) and the request's trace lines.
 */
#ifndef VTM_NOTES_H
#define VTM_NOTES_H

#include "vtm_glue.h"

#pragma GCC visibility push(hidden)

/** The handler hook declined a request that asked for a fiber: note
 *  vthread-offload (inline, overflow-inline or 503) and count it. */
void vtm_notes_inline(request_rec *r, vtm_offload_e how,
                          const char *why);
/** Where an offloaded handler runs. */
typedef enum {
    VTM_WHERE_SUSPENDED = 0,    /**< new fiber, request suspended */
    VTM_WHERE_JOINED,           /**< new fiber, the worker waits */
    VTM_WHERE_CONN_FIBER        /**< the owned connection's fiber */
} vtm_where_e;

/** The handler hook offloaded @a r (trace log). */
void vtm_notes_offloaded(request_rec *r, vtm_where_e where);
/** An internal redirect: copy the vthread-* notes of r->prev. */
void vtm_notes_inherit(request_rec *r);
/** First thing on the request's fiber: start timing it. */
void vtm_notes_fiber_start(vtm_req_t *req);
/** On the fiber, once the real handler returned @a status: set the
 *  vthread-* notes on the request (and its internal redirects). */
void vtm_notes_handler_end(vtm_req_t *req, int status);

#pragma GCC visibility pop

#endif /* VTM_NOTES_H */
