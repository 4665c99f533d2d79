/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_reaper.h
 * @brief The thread that destroys closed connections' pools off the
 *        carriers.
 */
#ifndef VTM_REAPER_H
#define VTM_REAPER_H

#include "vtm_glue.h"

#pragma GCC visibility push(hidden)

/** Start the thread that destroys closed connections' pools; while it
 *  has none to destroy it calls @a on_idle twice a second. */
apr_status_t vtm_reaper_child_init(apr_pool_t *pchild, void (*on_idle)(void));
/**
 * Destroy a cleared pool on the reaper thread (or here, if it is not
 * running). The caller must not touch @a pool afterwards.
 */
void vtm_reaper_destroy(apr_pool_t *pool);

#pragma GCC visibility pop

#endif /* VTM_REAPER_H */
