/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_borrow.h
 * @brief Running a handler that must not run on a fiber (a location
 *        without VThreadHandler) on an MPM worker while the fiber waits.
 */
#ifndef VTM_BORROW_H
#define VTM_BORROW_H

#include "vtm_glue.h"

#pragma GCC visibility push(hidden)

/** Create the list of requests waiting for an MPM worker. */
apr_status_t vtm_borrow_child_init(apr_pool_t *pchild);
/** Child exit, MPM workers joined: fail the requests still waiting. */
void vtm_borrow_child_exit(void);
/**
 * On the fiber of an owned connection: run @a req's handler on an MPM
 * worker, parked meanwhile.
 * @return the handler's result, as vtm_invoke_handler(); 503 if no
 *         worker will run it (child exit)
 */
int vtm_borrow_run(vtm_req_t *req);

#pragma GCC visibility pop

#endif /* VTM_BORROW_H */
