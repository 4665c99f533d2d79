/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_handler.h
 * @brief The handler hook: the offload decision, and the fiber that runs
 *        the real handler.
 */
#ifndef VTM_HANDLER_H
#define VTM_HANDLER_H

#include "vtm_glue.h"

#pragma GCC visibility push(hidden)

/** handler hook (APR_HOOK_REALLY_FIRST): offload or decline. */
int vtm_handler_offload(request_rec *r);
/** suspend_connection hook: the MPM has let go of a first offloaded
 *  request; start its fiber (docs/lifecycle.md, Race 1). */
void vtm_handler_suspended(conn_rec *c, request_rec *r);

#pragma GCC visibility pop

#endif /* VTM_HANDLER_H */
