/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * Keeps the event MPM's listener accepting once mod_vthread owns the
 * connections.
 *
 * When a new connection finds every worker busy, event takes its
 * listening sockets out of its pollset (the scoreboard's not_accepting)
 * and puts them back only when its listener thread wakes for some other
 * reason and finds an idle worker. In stock httpd the keep-alive
 * connections in that pollset wake it soon enough. The connections
 * mod_vthread owns are not there: with every connection offloaded,
 * nothing woke the listener, and new connections waited in the listen
 * backlog for its longest timeout (Timeout: 30 s in a test that fetched
 * from its own server with 4 workers).
 *
 * So wherever mod_vthread frees a worker or a connection, and twice a
 * second from the idle reaper thread (the listener may stop accepting
 * after the last of those), it looks at the child's not_accepting; while
 * that is set, a no-op timed callback wakes the listener every
 * VTM_NUDGE_PERIOD, which is all it needs to look again. One chain
 * of such callbacks at most; none while accepting.
 */
#include <stdatomic.h>
#include <unistd.h>

#include "vtm_glue.h"
#include "vtm_listener.h"
#include "vtm_state.h"

#include <ap_mpm.h>
#include <scoreboard.h>

/** How often a listener that stopped accepting is woken to look again. */
#define VTM_NUDGE_PERIOD apr_time_from_msec(20)

/** This child's process slot in the scoreboard; -1 until found. */
static _Atomic int vtm_listener_slot = -1;
/** A nudge callback is registered and not yet run. */
static atomic_flag vtm_listener_nudging = ATOMIC_FLAG_INIT;

void vtm_listener_child_init(void)
{
    atomic_store(&vtm_listener_slot, -1);
    atomic_flag_clear(&vtm_listener_nudging);
}

static int vtm_listener_not_accepting(void)
{
    int slot = atomic_load_explicit(&vtm_listener_slot,
                                    memory_order_relaxed);
    int limit = 0;

    if (!ap_scoreboard_image) {
        return 0;
    }
    if (slot < 0) {
        pid_t pid = getpid();

        ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit);
        for (int i = 0; i < limit; i++) {
            if (ap_scoreboard_image->parent[i].pid == pid) {
                slot = i;
                atomic_store(&vtm_listener_slot, slot);
                break;
            }
        }
        if (slot < 0) {
            return 0;
        }
    }
    return ((volatile process_score *)&ap_scoreboard_image->parent[slot])
        ->not_accepting;
}

static void vtm_listener_tick(void *baton);

/* With the nudging flag held: wake the listener after a period, or let
 * go of the flag if there is nothing to do. */
static void vtm_listener_schedule(void)
{
    if (!vtm_listener_not_accepting() || vtm_state_is_stopping()
        || ap_mpm_register_timed_callback(VTM_NUDGE_PERIOD,
                                          vtm_listener_tick, NULL)
               != APR_SUCCESS) {
        atomic_flag_clear(&vtm_listener_nudging);
    }
}

/* On an MPM worker: the listener woke to queue this, and looked again at
 * its listening sockets on the way. Go on while it still does not
 * accept. */
static void vtm_listener_tick(void *baton)
{
    (void)baton;
    vtm_listener_schedule();
}

void vtm_listener_nudge(void)
{
    if (!vtm_state_is_async() || !vtm_listener_not_accepting()
        || atomic_flag_test_and_set(&vtm_listener_nudging)) {
        return;
    }
    vtm_listener_schedule();
}
