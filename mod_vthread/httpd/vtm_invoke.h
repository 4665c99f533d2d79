/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_invoke.h
 * @brief Running an offloaded request's real handler.
 */
#ifndef VTM_INVOKE_H
#define VTM_INVOKE_H

#include "vtm_glue.h"

#pragma GCC visibility push(hidden)

/**
 * Run @a req's real handler on the calling thread (the request's owner).
 * @return its result, mapped as ap_invoke_handler() maps it: never
 *         DECLINED (500, logged)
 */
int vtm_invoke_handler(vtm_req_t *req);

#pragma GCC visibility pop

#endif /* VTM_INVOKE_H */
