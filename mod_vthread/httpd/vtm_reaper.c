/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * Destroys the pools of connections mod_vthread closes, on a thread of
 * its own. The event MPM gives each connection a pool with its own
 * allocator and recycles it; httpd 2.4 offers no way to hand it back, so
 * mod_vthread destroys it, and with Debian's mmap-backed APR allocator
 * that is one munmap (a TLB shoot-down on every CPU) per block. Done on a
 * carrier it delayed every fiber there (the benchmark's 10,000 x 1 s run
 * spent about 1 ms per connection in it). On this thread it still costs
 * the carriers: each munmap takes the process's memory map lock (their
 * page faults wait) and interrupts their CPUs. Connections tend to close
 * in bursts (a wave of answers), so the reaper waits for the burst to
 * pass: it destroys what is pending once no pool came for
 * VTM_REAP_QUIET, or once VTM_REAP_MAX pools (up to 64 KiB each)
 * or VTM_REAP_AGE of waiting have piled up.
 *
 * The teardown clears the pool first (the MPM's cleanups must run then),
 * so only the memory is left; the queue link lives in the pool itself.
 * Most pools do not come here: vtm_recycle.c keeps their memory for
 * the next connections, and only what it has no room for is destroyed
 * here. While idle, this thread also runs its owner's idle task twice a
 * second (vtm_child.c: trim what vtm_recycle.c kept too long, wake event's
 * listener): a callback, so the reaper calls nothing above it.
 */
#include "vtm_glue.h"
#include "vtm_reaper.h"
#include "vt_thread_name.h"

#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <http_log.h>

APLOG_USE_MODULE(vthread);

/** No new pool for this long: the burst is over. */
#define VTM_REAP_QUIET apr_time_from_msec(50)
/** Destroy at once from this many pending pools. */
#define VTM_REAP_MAX 256
/** The longest a pool waits, under a steady trickle of closes. */
#define VTM_REAP_AGE apr_time_from_sec(1)
/** While idle, how often the idle task runs. */
#define VTM_REAP_TRIM apr_time_from_msec(500)

typedef struct vtm_reap_t {
    apr_pool_t *pool;
    struct vtm_reap_t *next;
} vtm_reap_t;

static struct {
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *cond;
    apr_thread_t *thread;
    vtm_reap_t *head;   /* under lock */
    int pending;            /* under lock: pools in the list */
    apr_time_t first_at;    /* under lock: when the oldest came */
    apr_time_t last_at;     /* under lock: when the newest came */
    int stop;               /* under lock */
    int running;            /* set once at child_init */
    void (*on_idle)(void);  /* set once at child_init */
} vtm_reaper;

/* Under the lock, with pools pending: wait until it is time to destroy
 * them (see the top of this file). */
static void vtm_reaper_settle(void)
{
    while (!vtm_reaper.stop
           && vtm_reaper.pending < VTM_REAP_MAX) {
        apr_time_t now = apr_time_now();
        apr_time_t quiet = vtm_reaper.last_at + VTM_REAP_QUIET;
        apr_time_t old = vtm_reaper.first_at + VTM_REAP_AGE;
        apr_time_t until = quiet < old ? quiet : old;

        if (now >= until) {
            return;
        }
        apr_thread_cond_timedwait(vtm_reaper.cond, vtm_reaper.lock,
                                  until - now);
    }
}

static void *APR_THREAD_FUNC vtm_reaper_main(apr_thread_t *t, void *d)
{
    (void)t;
    (void)d;
    vt_thread_name("reaper", -1);
    apr_thread_mutex_lock(vtm_reaper.lock);
    for (;;) {
        vtm_reap_t *batch;
        while (!vtm_reaper.head && !vtm_reaper.stop) {
            /* Idle: the owner's task, outside the lock (it unmaps). */
            apr_thread_mutex_unlock(vtm_reaper.lock);
            vtm_reaper.on_idle();
            apr_thread_mutex_lock(vtm_reaper.lock);
            if (!vtm_reaper.head && !vtm_reaper.stop) {
                apr_thread_cond_timedwait(vtm_reaper.cond,
                                          vtm_reaper.lock,
                                          VTM_REAP_TRIM);
            }
        }
        vtm_reaper_settle();
        batch = vtm_reaper.head;
        vtm_reaper.head = NULL;
        vtm_reaper.pending = 0;
        if (!batch) {
            break;      /* stopping, and nothing left */
        }
        apr_thread_mutex_unlock(vtm_reaper.lock);
        while (batch) {
            vtm_reap_t *item = batch;
            batch = item->next;         /* read before the pool goes */
            apr_pool_destroy(item->pool);
        }
        apr_thread_mutex_lock(vtm_reaper.lock);
    }
    apr_thread_mutex_unlock(vtm_reaper.lock);
    return NULL;
}

/* A normal pchild cleanup: it runs after the pre-cleanup that stops the
 * runtime (so no teardown queues anything later) and before the lock and
 * condition, registered earlier, are destroyed. */
static apr_status_t vtm_reaper_exit(void *data)
{
    apr_status_t rv;
    (void)data;
    apr_thread_mutex_lock(vtm_reaper.lock);
    vtm_reaper.stop = 1;
    apr_thread_cond_signal(vtm_reaper.cond);
    apr_thread_mutex_unlock(vtm_reaper.lock);
    apr_thread_join(&rv, vtm_reaper.thread);
    vtm_reaper.running = 0;
    return APR_SUCCESS;
}

apr_status_t vtm_reaper_child_init(apr_pool_t *pchild, void (*on_idle)(void))
{
    apr_status_t rv;
    vtm_reaper.on_idle = on_idle;
    vtm_reaper.head = NULL;
    vtm_reaper.pending = 0;
    vtm_reaper.stop = 0;
    if ((rv = apr_thread_mutex_create(&vtm_reaper.lock,
                                      APR_THREAD_MUTEX_DEFAULT, pchild))
            != APR_SUCCESS
        || (rv = apr_thread_cond_create(&vtm_reaper.cond, pchild))
            != APR_SUCCESS
        || (rv = apr_thread_create(&vtm_reaper.thread, NULL,
                                   vtm_reaper_main, NULL, pchild))
            != APR_SUCCESS) {
        return rv;
    }
    vtm_reaper.running = 1;
    apr_pool_cleanup_register(pchild, NULL, vtm_reaper_exit,
                              apr_pool_cleanup_null);
    return APR_SUCCESS;
}

void vtm_reaper_destroy(apr_pool_t *pool)
{
    vtm_reap_t *item;
    apr_time_t now;

    if (!vtm_reaper.running) {
        apr_pool_destroy(pool);
        return;
    }
    item = apr_palloc(pool, sizeof(*item));
    item->pool = pool;
    now = apr_time_now();
    apr_thread_mutex_lock(vtm_reaper.lock);
    item->next = vtm_reaper.head;
    if (!vtm_reaper.head) {
        vtm_reaper.first_at = now;
    }
    vtm_reaper.head = item;
    vtm_reaper.last_at = now;
    /* Wake the reaper to start its clock, or to destroy a full list. */
    if (++vtm_reaper.pending == 1
        || vtm_reaper.pending == VTM_REAP_MAX) {
        apr_thread_cond_signal(vtm_reaper.cond);
    }
    apr_thread_mutex_unlock(vtm_reaper.lock);
}
