/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_conn.h
 * @brief mod_vthread's state of a connection: find it, create it, hand it
 *        to a fiber.
 *
 * Used by whichever thread owns the connection (vtm_glue.h, the rule of
 * ownership): the MPM worker until the first offload is released, then
 * the connection's fiber.
 */
#ifndef VTM_CONN_H
#define VTM_CONN_H

#include "vtm_glue.h"

#pragma GCC visibility push(hidden)

/** The connection's state, or NULL if no request was offloaded on it. */
vtm_conn_t *vtm_conn_get(conn_rec *c);
/** The connection's state, created if needed (by its owning thread). */
vtm_conn_t *vtm_conn_ensure(conn_rec *c);
/** A fiber takes the connection over (client I/O yields from now). */
void vtm_conn_enter_fiber(vtm_conn_t *conn);

#pragma GCC visibility pop

#endif /* VTM_CONN_H */
