/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_listener.h
 * @brief Waking event's listener when it stopped accepting.
 */
#ifndef VTM_LISTENER_H
#define VTM_LISTENER_H

#include "vtm_glue.h"

#pragma GCC visibility push(hidden)

/** Forget the last child's scoreboard slot and nudges (child_init). */
void vtm_listener_child_init(void);
/** A worker or a connection was freed: if event's listener stopped
 *  accepting, wake it until it accepts again (vtm_listener.c). */
void vtm_listener_nudge(void);

#pragma GCC visibility pop

#endif /* VTM_LISTENER_H */
