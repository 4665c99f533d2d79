/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_state.h
 * @brief The state of this httpd child that every part of the glue reads:
 *        its fiber runtime, whether the MPM is async, whether it stops.
 *
 * The lowest unit of the glue: it calls nothing. vtm_child.c writes it
 * (child_init, child_stopping, child exit); the other parts only read it,
 * from any thread, so none of them needs to call back up into the child
 * set-up.
 */
#ifndef VTM_STATE_H
#define VTM_STATE_H

#include "vt_runtime.h"

#pragma GCC visibility push(hidden)

/** The runtime of this child, or NULL (not started, or stopped). */
vt_runtime_t *vtm_state_runtime(void);
/** Publish the child's runtime (NULL once stopped). */
void vtm_state_set_runtime(vt_runtime_t *rt);
/** Does the MPM suspend connections (event)? */
int vtm_state_is_async(void);
/** Record what the MPM said at child_init. */
void vtm_state_set_async(int async);
/** Is this child stopping (graceful or not)? */
int vtm_state_is_stopping(void);
/** Mark the child stopping (1), or not yet (0, child_init). */
void vtm_state_set_stopping(int stopping);

/** Are the transparent hooks installed in this child? */
int vtm_state_transparent(void);
/** Record whether they are (child_init). */
void vtm_state_set_transparent(int installed);

#pragma GCC visibility pop

#endif /* VTM_STATE_H */
