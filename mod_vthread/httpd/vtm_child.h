/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_child.h
 * @brief The runtime of each httpd child: start-up warnings, child_init,
 *        child_stopping, child exit.
 */
#ifndef VTM_CHILD_H
#define VTM_CHILD_H

#include "vtm_glue.h"

#pragma GCC visibility push(hidden)

/** post_config: start-up warnings. */
int vtm_child_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp, server_rec *s);
/** child_init: start the runtime of this child. */
void vtm_child_init(apr_pool_t *pchild, server_rec *s);
/** child_stopping: close idle connections, refuse keep-alive. */
void vtm_child_stopping(apr_pool_t *pchild, int graceful);

#pragma GCC visibility pop

#endif /* VTM_CHILD_H */
