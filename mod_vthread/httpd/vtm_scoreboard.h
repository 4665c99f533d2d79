/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_scoreboard.h
 * @brief Accounting of offloaded requests in the scoreboard.
 */
#ifndef VTM_SCOREBOARD_H
#define VTM_SCOREBOARD_H

#include "vtm_glue.h"

#pragma GCC visibility push(hidden)

/** Remember the scoreboard geometry for this child. */
void vtm_scoreboard_child_init(void);
/** On an MPM worker: find its scoreboard slot (once per thread). */
void vtm_scoreboard_locate(void);
/** On an MPM worker: a handle on its own slot for @a conn, or NULL. */
ap_sb_handle_t *vtm_scoreboard_worker(vtm_conn_t *conn);
/** log_transaction hook: count an offloaded request logged without a
 *  scoreboard handle. */
int vtm_scoreboard_count(request_rec *r);
/** On an MPM worker (no-op elsewhere): add the offloaded requests counted
 *  so far to its own slot. */
void vtm_scoreboard_flush(void);

#pragma GCC visibility pop

#endif /* VTM_SCOREBOARD_H */
