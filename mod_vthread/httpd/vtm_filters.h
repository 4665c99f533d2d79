/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_filters.h
 * @brief Client I/O filters that park the fiber instead of blocking the
 *        carrier.
 */
#ifndef VTM_FILTERS_H
#define VTM_FILTERS_H

#include "vtm_glue.h"

#pragma GCC visibility push(hidden)

/** Register the connection filters (from register_hooks). */
void vtm_filters_register(void);
/** pre_connection: insert the filters just above the core. */
int vtm_filters_attach(conn_rec *c, void *csd);
/**
 * Send what the core output filter holds, parking the fiber while the
 * socket is full; bounded by the socket's timeout (Timeout).
 * @return APR_SUCCESS once nothing is held; otherwise the connection is
 *         marked aborted and the error returned
 */
apr_status_t vtm_filters_drain(vtm_conn_t *conn);

#pragma GCC visibility pop

#endif /* VTM_FILTERS_H */
