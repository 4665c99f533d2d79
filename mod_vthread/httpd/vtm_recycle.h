/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_recycle.h
 * @brief Closed connections' allocators and blocks, given to new
 *        connections.
 */
#ifndef VTM_RECYCLE_H
#define VTM_RECYCLE_H

#include "vtm_glue.h"

#pragma GCC visibility push(hidden)

/** Set up the store of closed connections' allocators (child_init): as
 *  many as @a max_fibers (VThreadMaxFibers; 0: unlimited). */
apr_status_t vtm_recycle_child_init(apr_pool_t *pchild,
                                        apr_uint32_t max_fibers);
/**
 * Destroy a cleared connection pool, keeping its allocator and blocks for
 * the next connections if there is room, else on the reaper thread. The
 * caller must not touch @a pool afterwards.
 */
void vtm_recycle_pool(apr_pool_t *pool);
/**
 * pre_connection hook, first: give the new connection's allocator blocks
 * kept from a closed connection, so that it maps none of its own.
 */
int vtm_recycle_give(conn_rec *c, void *csd);
/** Destroy the kept allocators that were not given for a while (called
 *  twice a second by the idle reaper thread). */
void vtm_recycle_trim(void);
/** For server-status: closed connections' allocators kept now, and new
 *  connections given memory from one since the child started. */
void vtm_recycle_stats(int *kept, apr_uint64_t *given);

#pragma GCC visibility pop

#endif /* VTM_RECYCLE_H */
