/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/* The child's shared state: see vtm_state.h. */
#include <stdatomic.h>

#include "vtm_state.h"

static vt_runtime_t *_Atomic vtm_state_rt;
static atomic_int vtm_state_async;
static atomic_int vtm_state_stopping;
static atomic_int vtm_state_transparent_on;

vt_runtime_t *vtm_state_runtime(void)
{
    return atomic_load_explicit(&vtm_state_rt, memory_order_acquire);
}

void vtm_state_set_runtime(vt_runtime_t *rt)
{
    atomic_store_explicit(&vtm_state_rt, rt, memory_order_release);
}

int vtm_state_is_async(void)
{
    return atomic_load_explicit(&vtm_state_async, memory_order_relaxed);
}

void vtm_state_set_async(int async)
{
    atomic_store(&vtm_state_async, async);
}

int vtm_state_is_stopping(void)
{
    return atomic_load_explicit(&vtm_state_stopping, memory_order_acquire);
}

void vtm_state_set_stopping(int stopping)
{
    atomic_store_explicit(&vtm_state_stopping, stopping,
                          memory_order_release);
}

int vtm_state_transparent(void)
{
    return atomic_load_explicit(&vtm_state_transparent_on,
                                memory_order_relaxed);
}

void vtm_state_set_transparent(int installed)
{
    atomic_store(&vtm_state_transparent_on, installed);
}
