/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_status.h
 * @brief mod_vthread's lines in mod_status, and the tracking of
 *        requests and connections they count.
 */
#ifndef VTM_STATUS_H
#define VTM_STATUS_H

#include "vtm_glue.h"

#pragma GCC visibility push(hidden)

/** Add mod_vthread's lines to mod_status (from register_hooks). */
void vtm_status_register(void);
/**
 * Move @a t to @a kind (a vtm_track_e; VTM_TRACK_NONE stops
 * tracking it), from the thread that owns it. Its time in @a kind starts
 * now.
 */
void vtm_status_track(vtm_track_t *t, int kind);
/** On the thread that owns @a conn: count it as owned by mod_vthread
 *  until its pool is cleared (which also stops tracking it). */
void vtm_status_own(vtm_conn_t *conn);
/** Count one offload decision (a vtm_offload_e). */
void vtm_status_count(int how);

#pragma GCC visibility pop

#endif /* VTM_STATUS_H */
