/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * Accounting of offloaded requests in the scoreboard.
 *
 * httpd counts a request (access count, bytes) in ap_increment_counts()
 * when its EOR bucket is destroyed, on the slot of c->sbh. After a
 * suspend the event MPM has set c->sbh to NULL, so offloaded requests
 * would not be counted. Reusing the MPM's handle from a fiber is not safe:
 * that slot belongs to a worker thread that serves other connections
 * meanwhile and updates it without locks; nor is a slot of our own safe
 * in general (ThreadLimit may leave none beside ThreadsPerChild).
 *
 * What is safe is one writer per slot, each worker writing its own:
 * - vtm_scoreboard_count() (log_transaction hook) adds an offloaded
 *   request, logged on a fiber with c->sbh NULL, to per-child atomic
 *   totals, exactly as ap_increment_counts() would measure it;
 * - vtm_scoreboard_flush(), run on MPM workers only (from our handler
 *   hook, which runs first for every request, and from our callback),
 *   moves those totals into the calling worker's own slot. mod_status
 *   sums all slots, so "Total Accesses" and "Total kBytes" are right, and
 *   are up to date whenever server-status is served (its request passes
 *   our handler hook first).
 * - in our callback, which serves a request inline on an MPM worker,
 *   c->sbh points to that worker's own slot, found once per thread by its
 *   thread id, and is reset to NULL before the connection leaves the
 *   worker: that request is counted as the MPM would count it.
 */
#include <stdatomic.h>
#include <unistd.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <ap_mpm.h>
#include <scoreboard.h>

#include "vtm_glue.h"
#include "vtm_conn.h"
#include "vtm_scoreboard.h"

APLOG_USE_MODULE(vthread);

static int vtm_sb_threads_per_child;
static int vtm_sb_thread_limit;
static int vtm_sb_server_limit;
/** This child's row in the scoreboard, or -1 until an MPM worker found
 *  it. */
static atomic_int vtm_sb_child = -1;
/** This thread's column: -2 not looked up yet, -1 not an MPM worker. */
static _Thread_local int vtm_sb_worker_slot = -2;
/** Offloaded requests logged and not yet added to a worker's slot. */
static atomic_ulong vtm_sb_accesses;
static atomic_llong vtm_sb_bytes;

void vtm_scoreboard_child_init(void)
{
    vtm_sb_threads_per_child = 0;
    vtm_sb_thread_limit = 0;
    vtm_sb_server_limit = 0;
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &vtm_sb_threads_per_child);
    ap_mpm_query(AP_MPMQ_HARD_LIMIT_THREADS, &vtm_sb_thread_limit);
    ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &vtm_sb_server_limit);
    atomic_store(&vtm_sb_child, -1);
    atomic_store(&vtm_sb_accesses, 0);
    atomic_store(&vtm_sb_bytes, 0);
}

void vtm_scoreboard_locate(void)
{
    apr_os_thread_t me;
    pid_t pid;
    int i, j, first, last;

    if (vtm_sb_worker_slot != -2) {
        return;
    }
    vtm_sb_worker_slot = -1;
    if (!ap_scoreboard_image || vthread_on_fiber()
        || vtm_sb_threads_per_child < 1) {
        return;
    }
    me = apr_os_thread_current();
    pid = getpid();
    first = atomic_load(&vtm_sb_child);
    last = first;
    if (first < 0) {
        first = 0;
        last = vtm_sb_server_limit - 1;
    }
    for (i = first; i <= last; i++) {
        for (j = 0; j < vtm_sb_threads_per_child
                    && j < vtm_sb_thread_limit; j++) {
            worker_score *ws = &ap_scoreboard_image->servers[i][j];

            if (ws->pid == pid && apr_os_thread_equal(ws->tid, me)) {
                atomic_store(&vtm_sb_child, i);
                vtm_sb_worker_slot = j;
                return;
            }
        }
    }
}

ap_sb_handle_t *vtm_scoreboard_worker(vtm_conn_t *conn)
{
    int child;

    vtm_scoreboard_locate();
    child = atomic_load(&vtm_sb_child);
    if (child < 0 || vtm_sb_worker_slot < 0) {
        return NULL;
    }
    if (!conn->sbh_worker) {
        ap_create_sb_handle(&conn->sbh_worker, conn->c->pool, child,
                            vtm_sb_worker_slot);
    }
    else {
        ap_update_sb_handle(conn->sbh_worker, child,
                            vtm_sb_worker_slot);
    }
    return conn->sbh_worker;
}

int vtm_scoreboard_count(request_rec *r)
{
    apr_off_t bytes;

    const vtm_conn_t *conn;

    /* Only what ap_increment_counts() skips: a request logged without a
     * scoreboard handle because it was offloaded, or read on the fiber of
     * a connection mod_vthread owns. */
    if (!ap_extended_status || r->connection->sbh) {
        return DECLINED;
    }
    conn = vtm_conn_get(r->connection);
    if (!ap_get_module_config(r->request_config, &vthread_module)
        && !(conn && conn->owned)) {
        return DECLINED;
    }
    if (r->method_number == M_GET && r->method && r->method[0] == 'H') {
        bytes = 0;  /* HEAD */
    }
    else {
        bytes = r->bytes_sent;
    }
    atomic_fetch_add(&vtm_sb_accesses, 1);
    atomic_fetch_add(&vtm_sb_bytes, (long long)bytes);
    return DECLINED;
}

void vtm_scoreboard_flush(void)
{
    worker_score *ws;
    unsigned long n;
    long long bytes;
    int child;

    if (!atomic_load_explicit(&vtm_sb_accesses, memory_order_relaxed)) {
        return;
    }
    vtm_scoreboard_locate();
    child = atomic_load(&vtm_sb_child);
    if (child < 0 || vtm_sb_worker_slot < 0) {
        return;
    }
    n = atomic_exchange(&vtm_sb_accesses, 0);
    bytes = atomic_exchange(&vtm_sb_bytes, 0);
    ws = &ap_scoreboard_image->servers[child][vtm_sb_worker_slot];
    ws->access_count += n;
    ws->my_access_count += n;
    ws->bytes_served += bytes;
    ws->my_bytes_served += bytes;
}
