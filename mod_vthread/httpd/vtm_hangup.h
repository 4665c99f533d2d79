/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_hangup.h
 * @brief Cancelling the fiber of a client that went away.
 */
#ifndef VTM_HANGUP_H
#define VTM_HANGUP_H

#include "vtm_glue.h"

#pragma GCC visibility push(hidden)

/** Start watching clients for hang-ups in this child. */
apr_status_t vtm_hangup_child_init(apr_pool_t *pchild);
/** Stop watching (child exit). */
void vtm_hangup_child_exit(void);
/** On the fiber that runs @a conn's handler: cancel it if the client
 *  hangs up. */
void vtm_hangup_watch(vtm_conn_t *conn);
/** The same, deferred to the fiber's first wait (vt_fiber_on_first_wait):
 *  a handler that never waits cannot be cancelled anyway, and is spared
 *  the watch's two epoll_ctl and its lock. */
void vtm_hangup_arm(vtm_conn_t *conn);
/** Stop watching @a conn (before the connection goes on). */
void vtm_hangup_unwatch(vtm_conn_t *conn);

#pragma GCC visibility pop

#endif /* VTM_HANGUP_H */
