/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * mod_vthread in mod_status (server-status): the runtime of the child
 * that serves the status request, and what that child's glue is doing.
 *
 * The runtime counts fibers per carrier (vt_runtime_carrier_stats). What
 * the runtime cannot tell cheaply, the glue tracks here:
 * - offloaded handlers running now, and connections mod_vthread owns in
 *   write completion, keep-alive wait or lingering close: each one is a
 *   vtm_track_t (in its vtm_req_t / vtm_conn_t) moved between
 *   kinds by vtm_status_track() from the thread that owns it;
 * - connections owned (from the suspend hook to the pool's clear);
 * - offload decisions so far (fiber, inline, overflow-inline, 503).
 *
 * Tracked items sit in one list per kind and slot; a fiber never
 * migrates, so each carrier has its slot (1 + carrier index) and only the
 * status reader ever contends for its lock; off a fiber (an MPM worker)
 * slot 0 is shared. Lists are in order of entry, so the head of a list is
 * its oldest item: a status request reads counts and ages in O(slots).
 *
 * ?auto keys, one "Key: value" a line (docs/operations.md says what each
 * means):
 *   VThreadChildPid VThreadCarriers VThreadFibers VThreadFibersLimit VThreadRunnable
 *   VThreadParkedTimer VThreadParkedIO VThreadParkedSync VThreadStarted
 *   VThreadSwitches VThreadStacksCached VThreadStacksCachedBytes
 *   VThreadPinned VThreadHandlers VThreadHandlerLongestMs
 *   VThreadOffloaded VThreadOffloadInline VThreadOffloadOverflowInline
 *   VThreadOffload503 VThreadConnsOwned VThreadConnsWriting
 *   VThreadConnsKeepAlive VThreadConnsLingering VThreadConnWaitLongestMs
 *   VThreadConnMemoryKept VThreadConnMemoryReused
 *   and transparent mode's (vtm_transparent.c): VThreadTransparent
 *   VThreadHook{Calls,Parked,Passed,Pinned} VThreadHook<Call>{Calls,Parked,
 *   Pinned} VThreadBlocking{Threads,Busy,Queued,Done,Refused}
 */
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>
#include <mod_status.h>

#include "vtm_config.h"
#include "vtm_glue.h"
#include "vtm_recycle.h"
#include "vtm_status.h"
#include "vtm_state.h"
#include "vtm_transparent.h"

/** Slot 0 for threads that are not carriers, then one per carrier. */
#define VTM_STATUS_SLOTS (VT_MAX_CARRIERS + 1)

typedef struct {
    _Alignas(64) atomic_int lock;   /* one cache line or more per slot */
    vtm_track_t *head[VTM_TRACK_KINDS];
    vtm_track_t *tail[VTM_TRACK_KINDS];
    apr_uint32_t count[VTM_TRACK_KINDS];
} vtm_status_slot_t;

/** What a status request reports, gathered first. */
typedef struct {
    vt_carrier_stats_t sum;
    apr_uint32_t live;
    apr_uint32_t count[VTM_TRACK_KINDS];
    apr_time_t oldest[VTM_TRACK_KINDS];   /**< 0: none */
    apr_uint64_t offload[VTM_OFFLOAD_KINDS];
    apr_uint32_t owned;
    int mem_kept;               /**< vtm_recycle_stats */
    apr_uint64_t mem_reused;
    apr_time_t now;
} vtm_status_view_t;

static int vtm_status_hook(request_rec *r, int flags);
static void vtm_status_gather(vt_runtime_t *rt,
                                  vtm_status_view_t *v);
static apr_int64_t vtm_status_age_ms(const vtm_status_view_t *v,
                                       int kind);
static apr_int64_t
vtm_status_conn_wait_ms(const vtm_status_view_t *v);
static void vtm_status_html(request_rec *r, vt_runtime_t *rt,
                                const vtm_status_view_t *v);
static void vtm_status_lock(vtm_status_slot_t *s);
static void vtm_status_unlock(vtm_status_slot_t *s);
static apr_status_t vtm_status_disown(void *data);

static vtm_status_slot_t vtm_status_slots[VTM_STATUS_SLOTS];
static atomic_uint vtm_status_owned;
static atomic_ullong vtm_status_offload[VTM_OFFLOAD_KINDS];

void vtm_status_register(void)
{
    APR_OPTIONAL_HOOK(ap, status_hook, vtm_status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
}

void vtm_status_track(vtm_track_t *t, int kind)
{
    vtm_status_slot_t *s;
    vt_fiber_t *f;

    if (t->kind == VTM_TRACK_NONE && kind == VTM_TRACK_NONE) {
        return;
    }
    if (t->kind != VTM_TRACK_NONE) {
        s = &vtm_status_slots[t->slot];
        vtm_status_lock(s);
        if (t->prev) {
            t->prev->next = t->next;
        }
        else {
            s->head[t->kind] = t->next;
        }
        if (t->next) {
            t->next->prev = t->prev;
        }
        else {
            s->tail[t->kind] = t->prev;
        }
        s->count[t->kind]--;
        vtm_status_unlock(s);
        t->prev = t->next = NULL;
        t->kind = VTM_TRACK_NONE;
    }
    if (kind <= VTM_TRACK_NONE || kind >= VTM_TRACK_KINDS) {
        return;
    }
    f = vt_fiber_current();
    t->slot = f ? 1 + vt_fiber_carrier_index(f) : 0;
    if (t->slot >= VTM_STATUS_SLOTS) {
        t->slot = 0;
    }
    t->kind = kind;
    t->since = apr_time_now();
    t->next = NULL;
    s = &vtm_status_slots[t->slot];
    vtm_status_lock(s);
    t->prev = s->tail[kind];
    if (t->prev) {
        t->prev->next = t;
    }
    else {
        s->head[kind] = t;
    }
    s->tail[kind] = t;
    s->count[kind]++;
    vtm_status_unlock(s);
}

void vtm_status_own(vtm_conn_t *conn)
{
    atomic_fetch_add_explicit(&vtm_status_owned, 1,
                              memory_order_relaxed);
    apr_pool_cleanup_register(conn->c->pool, conn, vtm_status_disown,
                              apr_pool_cleanup_null);
}

void vtm_status_count(int how)
{
    if (how >= 0 && how < VTM_OFFLOAD_KINDS) {
        atomic_fetch_add_explicit(&vtm_status_offload[how], 1,
                                  memory_order_relaxed);
    }
}

/* c->pool cleanup of an owned connection: however it ends (teardown, or
 * given up to a handler that suspended it), it is no longer ours. */
static apr_status_t vtm_status_disown(void *data)
{
    vtm_conn_t *conn = data;

    vtm_status_track(&conn->track, VTM_TRACK_NONE);
    atomic_fetch_sub_explicit(&vtm_status_owned, 1,
                              memory_order_relaxed);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */

static int vtm_status_hook(request_rec *r, int flags)
{
    vt_runtime_t *rt = vtm_state_runtime();
    const vtm_srv_conf_t *sc = vtm_config_srv(r->server);
    vtm_status_view_t v;

    if (!rt) {
        return OK;
    }
    vtm_status_gather(rt, &v);
    if (!(flags & AP_STATUS_SHORT)) {
        vtm_status_html(r, rt, &v);
        vtm_transparent_status(r, 0);
        return OK;
    }
    ap_rprintf(r,
               "VThreadChildPid: %" APR_PID_T_FMT "\n"
               "VThreadCarriers: %d\n"
               "VThreadFibers: %u\n"
               "VThreadFibersLimit: %u\n"
               "VThreadRunnable: %u\n"
               "VThreadParkedTimer: %u\n"
               "VThreadParkedIO: %u\n"
               "VThreadParkedSync: %u\n"
               "VThreadStarted: %" APR_UINT64_T_FMT "\n"
               "VThreadSwitches: %" APR_UINT64_T_FMT "\n"
               "VThreadStacksCached: %u\n"
               "VThreadStacksCachedBytes: %" APR_SIZE_T_FMT "\n"
               "VThreadPinned: %u\n",
               getpid(), vt_runtime_carriers(rt), v.live, sc->max_fibers,
               v.sum.runnable, v.sum.parked_timer, v.sum.parked_io,
               v.sum.parked_sync, v.sum.started, v.sum.switches,
               v.sum.stacks_cached, v.sum.stacks_cached_bytes,
               v.sum.pinned);
    ap_rprintf(r,
               "VThreadHandlers: %u\n"
               "VThreadHandlerLongestMs: %" APR_INT64_T_FMT "\n"
               "VThreadOffloaded: %" APR_UINT64_T_FMT "\n"
               "VThreadOffloadInline: %" APR_UINT64_T_FMT "\n"
               "VThreadOffloadOverflowInline: %" APR_UINT64_T_FMT "\n"
               "VThreadOffload503: %" APR_UINT64_T_FMT "\n"
               "VThreadConnsOwned: %u\n"
               "VThreadConnsWriting: %u\n"
               "VThreadConnsKeepAlive: %u\n"
               "VThreadConnsLingering: %u\n"
               "VThreadConnWaitLongestMs: %" APR_INT64_T_FMT "\n"
               "VThreadConnMemoryKept: %d\n"
               "VThreadConnMemoryReused: %" APR_UINT64_T_FMT "\n",
               v.count[VTM_TRACK_HANDLER],
               vtm_status_age_ms(&v, VTM_TRACK_HANDLER),
               v.offload[VTM_OFFLOAD_FIBER],
               v.offload[VTM_OFFLOAD_INLINE],
               v.offload[VTM_OFFLOAD_OVERFLOW_INLINE],
               v.offload[VTM_OFFLOAD_503], v.owned,
               v.count[VTM_TRACK_WRITING],
               v.count[VTM_TRACK_KEEPALIVE],
               v.count[VTM_TRACK_LINGER],
               vtm_status_conn_wait_ms(&v), v.mem_kept, v.mem_reused);
    vtm_transparent_status(r, 1);
    return OK;
}

static void vtm_status_gather(vt_runtime_t *rt,
                                  vtm_status_view_t *v)
{
    vt_carrier_stats_t one;
    int i, k, n = vt_runtime_carriers(rt);

    memset(v, 0, sizeof(*v));
    for (i = 0; i < n; i++) {
        if (vt_runtime_carrier_stats(rt, i, &one) != APR_SUCCESS) {
            continue;
        }
        v->sum.live += one.live;
        v->sum.runnable += one.runnable;
        v->sum.parked_timer += one.parked_timer;
        v->sum.parked_io += one.parked_io;
        v->sum.parked_sync += one.parked_sync;
        v->sum.switches += one.switches;
        v->sum.started += one.started;
        v->sum.stacks_cached += one.stacks_cached;
        v->sum.stacks_cached_bytes += one.stacks_cached_bytes;
        v->sum.pinned += one.pinned;
    }
    v->live = vt_runtime_live(rt);
    for (i = 0; i <= n && i < VTM_STATUS_SLOTS; i++) {
        vtm_status_slot_t *s = &vtm_status_slots[i];

        vtm_status_lock(s);
        for (k = VTM_TRACK_NONE + 1; k < VTM_TRACK_KINDS; k++) {
            v->count[k] += s->count[k];
            if (s->head[k] && (!v->oldest[k]
                               || s->head[k]->since < v->oldest[k])) {
                v->oldest[k] = s->head[k]->since;
            }
        }
        vtm_status_unlock(s);
    }
    for (k = 0; k < VTM_OFFLOAD_KINDS; k++) {
        v->offload[k] = atomic_load_explicit(&vtm_status_offload[k],
                                             memory_order_relaxed);
    }
    v->owned = atomic_load_explicit(&vtm_status_owned,
                                    memory_order_relaxed);
    vtm_recycle_stats(&v->mem_kept, &v->mem_reused);
    v->now = apr_time_now();
}

/* How long the oldest item of @a kind has been in it (0: none). */
static apr_int64_t vtm_status_age_ms(const vtm_status_view_t *v,
                                       int kind)
{
    if (!v->oldest[kind] || v->oldest[kind] > v->now) {
        return 0;
    }
    return (apr_int64_t)apr_time_as_msec(v->now - v->oldest[kind]);
}

/* The longest current wait of an owned connection (write completion,
 * keep-alive, lingering close). */
static apr_int64_t
vtm_status_conn_wait_ms(const vtm_status_view_t *v)
{
    apr_int64_t ms = 0, one;
    int k;

    for (k = VTM_TRACK_WRITING; k <= VTM_TRACK_LINGER; k++) {
        one = vtm_status_age_ms(v, k);
        if (one > ms) {
            ms = one;
        }
    }
    return ms;
}

static void vtm_status_html(request_rec *r, vt_runtime_t *rt,
                                const vtm_status_view_t *v)
{
    vt_carrier_stats_t one;
    int i, n = vt_runtime_carriers(rt);

    ap_rprintf(r, "<hr />\n<h2>mod_vthread (this child only: pid %"
               APR_PID_T_FMT ")</h2>\n", getpid());
    ap_rprintf(r,
               "<dl><dt>%d carriers, %u fibers alive (limit %u, 0: none): "
               "%u runnable, %u sleeping, %u waiting for I/O, %u waiting "
               "to synchronise</dt>\n"
               "<dt>%u handlers running on fibers, the oldest for %"
               APR_INT64_T_FMT " ms; offloaded so far: %" APR_UINT64_T_FMT
               " on a fiber, %" APR_UINT64_T_FMT " inline, %"
               APR_UINT64_T_FMT " inline at "
               "the fiber limit, %" APR_UINT64_T_FMT " refused (503)</dt>\n"
               "<dt>%u connections owned by mod_vthread: %u in write "
               "completion, %u in keep-alive, %u lingering; longest current "
               "wait %" APR_INT64_T_FMT " ms</dt>\n"
               "<dt>%d closed connections' memory kept for new ones; "
               "%" APR_UINT64_T_FMT " new connections started on it so "
               "far</dt>\n"
               "<dt>%u pinned-carrier reports so far</dt></dl>\n",
               n, v->live, vtm_config_srv(r->server)->max_fibers,
               v->sum.runnable, v->sum.parked_timer, v->sum.parked_io,
               v->sum.parked_sync, v->count[VTM_TRACK_HANDLER],
               vtm_status_age_ms(v, VTM_TRACK_HANDLER),
               v->offload[VTM_OFFLOAD_FIBER],
               v->offload[VTM_OFFLOAD_INLINE],
               v->offload[VTM_OFFLOAD_OVERFLOW_INLINE],
               v->offload[VTM_OFFLOAD_503], v->owned,
               v->count[VTM_TRACK_WRITING],
               v->count[VTM_TRACK_KEEPALIVE],
               v->count[VTM_TRACK_LINGER],
               vtm_status_conn_wait_ms(v), v->mem_kept,
               v->mem_reused, v->sum.pinned);
    ap_rputs("<table border=\"0\"><tr><th>Carrier</th><th>Live</th>"
             "<th>Runnable</th><th>Sleeping</th><th>I/O</th>"
             "<th>Sync</th><th>Started</th><th>Switches</th>"
             "<th>Stacks cached</th><th>Cached KiB committed</th>"
             "<th>Pinned</th></tr>\n", r);
    for (i = 0; i < n; i++) {
        if (vt_runtime_carrier_stats(rt, i, &one) != APR_SUCCESS) {
            continue;
        }
        ap_rprintf(r, "<tr><td>%d</td><td>%u</td><td>%u</td><td>%u</td>"
                      "<td>%u</td><td>%u</td><td>%" APR_UINT64_T_FMT
                      "</td><td>%" APR_UINT64_T_FMT "</td><td>%u</td>"
                      "<td>%" APR_SIZE_T_FMT "</td><td>%u</td></tr>\n",
                   i, one.live, one.runnable, one.parked_timer,
                   one.parked_io, one.parked_sync, one.started,
                   one.switches, one.stacks_cached,
                   one.stacks_cached_bytes / 1024, one.pinned);
    }
    ap_rputs("</table>\n", r);
}

/* ------------------------------------------------------------------ */

/* Held for a few list operations; only the status reader contends with
 * a carrier for its slot. */
static void vtm_status_lock(vtm_status_slot_t *s)
{
    int spins = 0;

    while (atomic_exchange_explicit(&s->lock, 1, memory_order_acquire)) {
        if (++spins > 100) {
            sched_yield();
        }
    }
}

static void vtm_status_unlock(vtm_status_slot_t *s)
{
    atomic_store_explicit(&s->lock, 0, memory_order_release);
}
