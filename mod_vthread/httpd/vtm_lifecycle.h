/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_lifecycle.h
 * @brief An owned connection's life after the handler: finish, write
 *        completion, keep-alive, next request, close, teardown.
 *
 * From the first offload's release on, mod_vthread owns the connection
 * until it ends, on one fiber (docs/lifecycle.md). The caller of
 * vtm_lifecycle_finish_request() gives the connection up.
 */
#ifndef VTM_LIFECYCLE_H
#define VTM_LIFECYCLE_H

#include "vtm_glue.h"

#pragma GCC visibility push(hidden)

/** Create the registry of idle connections for this child. */
apr_status_t vtm_lifecycle_child_init(apr_pool_t *pchild);
/** Close idle owned connections now; no keep-alive from here on. */
void vtm_lifecycle_child_stopping(int graceful);
/** post_read_request hook: for a request read on an owned connection's
 *  fiber, note its KeepAliveTimeout (and no keep-alive if stopping). */
int vtm_lifecycle_post_read_request(request_rec *r);
/**
 * On the request's fiber, once the response is complete (error page
 * sent, request finalised): log the request, then carry the connection on
 * (write completion, keep-alive, next request or close). The caller must
 * not touch the request or the connection afterwards.
 */
void vtm_lifecycle_finish_request(vtm_conn_t *conn, request_rec *r);

#pragma GCC visibility pop

#endif /* VTM_LIFECYCLE_H */
