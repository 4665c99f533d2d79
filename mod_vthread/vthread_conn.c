/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * An offloaded connection, from the MPM letting go to its teardown.
 *
 * httpd 2.4 cannot give a suspended connection back to the event MPM, so
 * mod_vthread owns it until it ends (see /work/shared/LIFECYCLE.md). Read
 * top to bottom, in the order a connection lives:
 *
 * vthread_conn_offload()        handler hook (MPM worker): remember the
 *                               request whose fiber is created.
 * vthread_conn_suspended()      suspend_connection hook: the MPM is done
 *                               with the request; start its fiber. Only
 *                               now (race 1: the MPM reads c->cs->state
 *                               after r->invoke_mtx is released).
 * vthread_conn_finish_request() on the fiber: log the request (EOR).
 * vthread_conn_carry_on()       write completion (park on POLLOUT,
 *                               bounded by Timeout), then close, or the
 *                               next request: at once if pipelined,
 *                               else after a keep-alive wait (park on
 *                               POLLIN, bounded by KeepAliveTimeout).
 * vthread_conn_hand_off()       ap_mpm_register_timed_callback(0): the
 *                               next request is read on an MPM worker.
 * vthread_conn_resume()         that callback: ap_run_process_connection;
 *                               SUSPENDED by our hook: start the new
 *                               fiber; served inline: a connection fiber
 *                               carries on as above.
 * vthread_conn_close()          lingering close: shutdown, drain up to
 *                               2 s on the reactor, then teardown.
 * vthread_conn_teardown()       c->cs->state = CONN_STATE_SUSPENDED (what
 *                               the MPM's pool cleanup must find, race 3),
 *                               apr_pool_clear(c->pool) (the MPM's
 *                               counters, the socket), apr_pool_destroy
 *                               once the MPM's last stores are behind us
 *                               (race 2; see vthread_conn_await_mpm).
 *
 * Idle connections (in the keep-alive wait) are listed so that
 * child_stopping can close them at once: a graceful restart does not wait
 * for their KeepAliveTimeout. A listed fiber is cancelled under the list's
 * mutex, and unlists itself under it, so the handle is always valid.
 */
#include <sched.h>

#include <httpd.h>
#include <http_config.h>
#include <http_connection.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_mpm.h>

#include <apr_thread_mutex.h>

#include "vthread_glue.h"

APLOG_USE_MODULE(vthread);

/** Longest lingering close (httpd's SECONDS_TO_LINGER). */
#define VTHREAD_LINGER_TIME apr_time_from_sec(2)
/** Least time between the MPM letting go and the pool's destruction, once
 *  the MPM's last store was seen. */
#define VTHREAD_GRACE apr_time_from_msec(20)
/** The same when it was not seen. */
#define VTHREAD_GRACE_UNSEEN apr_time_from_sec(1)
/** How long a finishing fiber waits to see the MPM's last store. */
#define VTHREAD_MPM_WAIT apr_time_from_sec(1)

static void vthread_conn_carry_on(vthread_conn_t *conn);
static apr_status_t vthread_conn_wait_keepalive(vthread_conn_t *conn);
static apr_status_t vthread_conn_wait_idle(vthread_conn_t *conn,
                                           apr_interval_time_t timeout);
static void vthread_conn_hand_off(vthread_conn_t *conn);
static void vthread_conn_resume(void *baton);
static apr_status_t vthread_conn_fiber_main(void *arg);
static void vthread_conn_close(vthread_conn_t *conn);
static void vthread_conn_close_inline(vthread_conn_t *conn);
static void vthread_conn_drain(vthread_conn_t *conn);
static void vthread_conn_teardown(vthread_conn_t *conn);
static void vthread_conn_await_mpm(vthread_conn_t *conn);
static void vthread_conn_pause_until(apr_time_t when);

/* The keep-alive registry of this child. */
static apr_thread_mutex_t *vthread_conn_mutex;
static vthread_conn_t *vthread_conn_idle;
static int vthread_conn_closing;

apr_status_t vthread_conn_child_init(apr_pool_t *pchild)
{
    vthread_conn_idle = NULL;
    vthread_conn_closing = 0;
    return apr_thread_mutex_create(&vthread_conn_mutex,
                                   APR_THREAD_MUTEX_DEFAULT, pchild);
}

void vthread_conn_child_stopping(int graceful)
{
    vthread_conn_t *conn;

    (void)graceful;
    if (!vthread_conn_mutex) {
        return;
    }
    apr_thread_mutex_lock(vthread_conn_mutex);
    vthread_conn_closing = 1;
    for (conn = vthread_conn_idle; conn; conn = conn->idle_next) {
        vt_fiber_cancel(conn->idle_fiber);
    }
    apr_thread_mutex_unlock(vthread_conn_mutex);
}

vthread_conn_t *vthread_conn_get(conn_rec *c)
{
    return ap_get_module_config(c->conn_config, &vthread_module);
}

vthread_conn_t *vthread_conn_ensure(conn_rec *c)
{
    vthread_conn_t *conn = vthread_conn_get(c);

    if (!conn) {
        conn = apr_pcalloc(c->pool, sizeof(*conn));
        conn->c = c;
        conn->sock = ap_get_conn_socket(c);
        ap_set_module_config(c->conn_config, &vthread_module, conn);
    }
    return conn;
}

int vthread_conn_offload(vthread_req_t *req)
{
    req->conn->pending = req;
    return SUSPENDED;
}

void vthread_conn_suspended(conn_rec *c, request_rec *r)
{
    vthread_conn_t *conn = vthread_conn_get(c);
    vthread_req_t *req;

    (void)r;
    /* Called for every connection the MPM parks (keep-alive, write
     * completion...); only a first offload is ours to start. Later
     * offloads are started by vthread_conn_resume(). */
    if (!conn || conn->owned || !conn->pending) {
        return;
    }
    req = conn->pending;
    conn->pending = NULL;
    conn->owned = 1;
    conn->released_at = apr_time_now();
    /* Operator's view: owned until c->pool is cleared (mod_status). */
    vthread_status_own(conn);
    ap_log_cerror(APLOG_MARK, APLOG_TRACE3, 0, c,
                  "the MPM let go of the connection: mod_vthread owns it "
                  "until it closes");
    vthread_handler_start(req);
}

void vthread_conn_enter_fiber(vthread_conn_t *conn)
{
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 122)
    conn->c->current_thread = ap_thread_current();
#endif
    conn->fiber_io = 1;
    conn->out_pending_known = 0;
}

void vthread_conn_finish_request(vthread_conn_t *conn, request_rec *r)
{
    conn_rec *c = conn->c;

    /* As event: the vhost's KeepAliveTimeout if it set one, else the
     * base server's. */
    conn->ka_timeout = r->server->keep_alive_timeout_set
                       ? r->server->keep_alive_timeout
                       : c->base_server->keep_alive_timeout;
    /* The EOR uses c->sbh (status, counts): it must be the MPM's NULL,
     * not its handle on a worker's slot. Offloaded requests are counted
     * by vthread_scoreboard.c instead. */
    vthread_conn_await_mpm(conn);
    /* EOR: logs the request and destroys r->pool, on this fiber. */
    ap_process_request_after_handler(r);
    ap_log_cerror(APLOG_MARK, APLOG_TRACE4, 0, c,
                  "request finished and logged");
    vthread_conn_carry_on(conn);
}

/* ------------------------------------------------------------------ */

static void vthread_conn_carry_on(vthread_conn_t *conn)
{
    conn_rec *c = conn->c;
    int close = 0;

    if (c->cs->state == CONN_STATE_KEEPALIVE) {
        c->cs->state = CONN_STATE_WRITE_COMPLETION;
    }
    if (c->cs->state != CONN_STATE_WRITE_COMPLETION || c->aborted) {
        close = 1;
    }
    else {
        apr_status_t rv;

        /* Operator's view: counted and aged in mod_status, and traced. */
        vthread_status_track(&conn->track, VTHREAD_TRACK_WRITING);
        ap_log_cerror(APLOG_MARK, APLOG_TRACE4, 0, c,
                      "write completion: sending what is still buffered");
        rv = vthread_filters_drain(conn);
        ap_log_cerror(APLOG_MARK, APLOG_TRACE3, rv, c,
                      "write completion done after %" APR_TIME_T_FMT " us",
                      apr_time_now() - conn->track.since);
        vthread_status_track(&conn->track, VTHREAD_TRACK_NONE);
        if (rv != APR_SUCCESS) {
            ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, APLOGNO(10930)
                          "write completion failed: closing");
            close = 1;
        }
    }
    c->sbh = NULL;
    if (!close && (c->keepalive != AP_CONN_KEEPALIVE || c->aborted
                   || vthread_child_is_stopping() || vthread_cancelled())) {
        close = 1;
    }
    if (!close && c->data_in_input_filters) {
        ap_log_cerror(APLOG_MARK, APLOG_TRACE3, 0, c,
                      "next request already read (pipelined): no "
                      "keep-alive wait");
    }
    else if (!close) {
        /* Operator's view: counted and aged in mod_status, and traced. */
        vthread_status_track(&conn->track, VTHREAD_TRACK_KEEPALIVE);
        ap_log_cerror(APLOG_MARK, APLOG_TRACE3, 0, c,
                      "keep-alive wait (KeepAliveTimeout %" APR_TIME_T_FMT
                      " ms)", apr_time_as_msec(conn->ka_timeout));
        if (vthread_conn_wait_keepalive(conn) != APR_SUCCESS) {
            close = 1;
        }
        ap_log_cerror(APLOG_MARK, APLOG_TRACE3, 0, c,
                      "keep-alive wait ended after %" APR_TIME_T_FMT
                      " ms: %s",
                      apr_time_as_msec(apr_time_now() - conn->track.since),
                      close ? "closing" : "the next request is there");
        vthread_status_track(&conn->track, VTHREAD_TRACK_NONE);
    }
    if (close) {
        vthread_conn_close(conn);
    }
    else {
        vthread_conn_hand_off(conn);
    }
}

/* Wait for the next request, bounded by KeepAliveTimeout. A hang-up is
 * noticed here, so a closing client costs no MPM worker. */
static apr_status_t vthread_conn_wait_keepalive(vthread_conn_t *conn)
{
    conn_rec *c = conn->c;
    apr_time_t deadline = apr_time_now() + conn->ka_timeout;
    apr_status_t rv;

    if (!conn->peek_bb) {
        conn->peek_bb = apr_brigade_create(c->pool, c->bucket_alloc);
    }
    for (;;) {
        apr_interval_time_t left = deadline - apr_time_now();

        rv = vthread_conn_wait_idle(conn, left > 0 ? left : 0);
        if (rv != APR_SUCCESS) {
            ap_log_cerror(APLOG_MARK, APLOG_TRACE2, rv, c, APLOGNO(10931)
                          "keep-alive wait ended: closing");
            return rv;
        }
        rv = ap_get_brigade(c->input_filters, conn->peek_bb,
                            AP_MODE_SPECULATIVE, APR_NONBLOCK_READ, 1);
        if (rv == APR_SUCCESS && !APR_BRIGADE_EMPTY(conn->peek_bb)) {
            apr_brigade_cleanup(conn->peek_bb);
            return APR_SUCCESS;
        }
        apr_brigade_cleanup(conn->peek_bb);
        if (rv != APR_SUCCESS && !APR_STATUS_IS_EAGAIN(rv)) {
            return rv;  /* EOF or error: the client is gone */
        }
        /* Nothing yet (e.g. TLS records without data): wait again. */
        ap_log_cerror(APLOG_MARK, APLOG_TRACE4, 0, c,
                      "keep-alive wait: readable but no request data yet");
    }
}

/* Park until readable, listed so that child_stopping can cancel us. */
static apr_status_t vthread_conn_wait_idle(vthread_conn_t *conn,
                                           apr_interval_time_t timeout)
{
    apr_status_t rv;

    apr_thread_mutex_lock(vthread_conn_mutex);
    if (vthread_conn_closing) {
        apr_thread_mutex_unlock(vthread_conn_mutex);
        return APR_ECONNABORTED;
    }
    conn->idle_fiber = vt_fiber_current();
    conn->idle_prev = NULL;
    conn->idle_next = vthread_conn_idle;
    if (vthread_conn_idle) {
        vthread_conn_idle->idle_prev = conn;
    }
    vthread_conn_idle = conn;
    apr_thread_mutex_unlock(vthread_conn_mutex);

    rv = vthread_wait_io(conn->sock, APR_POLLIN, timeout);

    apr_thread_mutex_lock(vthread_conn_mutex);
    if (conn->idle_prev) {
        conn->idle_prev->idle_next = conn->idle_next;
    }
    else {
        vthread_conn_idle = conn->idle_next;
    }
    if (conn->idle_next) {
        conn->idle_next->idle_prev = conn->idle_prev;
    }
    conn->idle_fiber = NULL;
    conn->idle_prev = conn->idle_next = NULL;
    apr_thread_mutex_unlock(vthread_conn_mutex);
    return rv;
}

/* The next request is read on an MPM worker (a handler that is not
 * offloaded must not run on a carrier). After registering, the callback
 * may run at once: this fiber must not touch the connection again. */
static void vthread_conn_hand_off(vthread_conn_t *conn)
{
    apr_status_t rv;

    ap_log_cerror(APLOG_MARK, APLOG_TRACE2, 0, conn->c,
                  "handing the connection to an MPM worker to read the "
                  "next request");
    conn->fiber_io = 0;
    rv = ap_mpm_register_timed_callback(0, vthread_conn_resume, conn);
    if (rv != APR_SUCCESS) {
        conn->fiber_io = 1;
        ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, conn->c, APLOGNO(10932)
                      "cannot hand the connection to an MPM worker: "
                      "closing it");
        vthread_conn_close(conn);
    }
}

/* On an MPM worker: what event's process_socket() does for a connection
 * that has a request to read. */
static void vthread_conn_resume(void *baton)
{
    vthread_conn_t *conn = baton;
    conn_rec *c = conn->c;
    vt_runtime_t *rt;
    vt_fiber_t *f;
    vthread_req_t *req;
    conn_state_e state;
    apr_status_t rv;
    int rc;

#if AP_MODULE_MAGIC_AT_LEAST(20120211, 122)
    c->current_thread = ap_thread_current();
#endif
    vthread_scoreboard_flush();
    c->sbh = vthread_scoreboard_worker(conn);
    c->cs->state = CONN_STATE_PROCESSING;
    c->cs->sense = CONN_SENSE_DEFAULT;
    ap_log_cerror(APLOG_MARK, APLOG_TRACE3, 0, c,
                  "on an MPM worker: reading the next request");

    rc = ap_run_process_connection(c);

    state = c->cs->state;
    if (state == CONN_STATE_SUSPENDED) {
        c->sbh = NULL;
        req = conn->pending;
        conn->pending = NULL;
        if (req) {
            /* Offloaded again: no MPM hook follows on this path, so the
             * fiber may start now. */
            ap_log_cerror(APLOG_MARK, APLOG_TRACE3, 0, c,
                          "next request offloaded: starting its fiber");
            vthread_handler_start(req);
            return;
        }
        ap_log_cerror(APLOG_MARK, APLOG_ERR, 0, c, APLOGNO(10933)
                      "a handler suspended a connection that mod_vthread "
                      "owns: giving the connection up");
        return;
    }
    if (rc == DONE) {
        rc = OK;
    }
    if (rc == OK && state == CONN_STATE_KEEPALIVE) {
        state = CONN_STATE_WRITE_COMPLETION;
    }
    if (rc != OK || c->aborted || state != CONN_STATE_WRITE_COMPLETION) {
        state = CONN_STATE_LINGER;
    }
    c->cs->state = state;

    /* Served inline: a fiber carries the connection on. */
    rt = vthread_child_runtime();
    rv = rt ? vt_fiber_create(&f, rt, vthread_conn_fiber_main, conn,
                              c->client_ip)
            : APR_ECONNABORTED;
    if (rv != APR_SUCCESS) {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, rv, c, APLOGNO(10934)
                      "no fiber to carry the connection on: closing it "
                      "on this worker");
        vthread_conn_close_inline(conn);
        return;
    }
    ap_log_cerror(APLOG_MARK, APLOG_TRACE3, 0, c,
                  "next request served inline: a fiber carries the "
                  "connection on");
    c->sbh = NULL;
    vt_fiber_start(f);
    vt_fiber_detach(f);
}

static apr_status_t vthread_conn_fiber_main(void *arg)
{
    vthread_conn_t *conn = arg;

    vthread_conn_enter_fiber(conn);
    vthread_conn_carry_on(conn);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */

static void vthread_conn_close(vthread_conn_t *conn)
{
    conn_rec *c = conn->c;

    /* Operator's view: counted and aged in mod_status, and traced. */
    vthread_status_track(&conn->track, VTHREAD_TRACK_LINGER);
    ap_log_cerror(APLOG_MARK, APLOG_TRACE2, 0, c,
                  "closing the connection (lingering close)");
    c->sbh = NULL;
    c->cs->state = CONN_STATE_LINGER;
    /* Flushes (parking in our output filter) and shuts down for write. */
    if (!ap_start_lingering_close(c)) {
        vthread_conn_drain(conn);
    }
    vthread_conn_teardown(conn);
}

/* Read and discard until the client closes, for up to 2 s, so that data
 * it still sends does not make the kernel reset the connection before it
 * has read our response. */
static void vthread_conn_drain(vthread_conn_t *conn)
{
    apr_time_t deadline = apr_time_now() + VTHREAD_LINGER_TIME;
    char buf[2048];

    for (;;) {
        apr_interval_time_t left = deadline - apr_time_now();
        apr_size_t len = sizeof(buf);

        if (left <= 0) {
            break;
        }
        apr_socket_timeout_set(conn->sock, left);
        if (vthread_socket_recv(conn->sock, buf, &len) != APR_SUCCESS) {
            break;
        }
    }
}

/* No fiber to be had: close on the MPM worker, which blocks for the
 * final flush (bounded by Timeout) as the worker MPM would. */
static void vthread_conn_close_inline(vthread_conn_t *conn)
{
    conn_rec *c = conn->c;
    char buf[2048];
    int i;

    /* Operator's view: counted and aged in mod_status, and traced. */
    vthread_status_track(&conn->track, VTHREAD_TRACK_LINGER);
    ap_log_cerror(APLOG_MARK, APLOG_TRACE2, 0, c,
                  "closing the connection on this MPM worker");
    c->cs->state = CONN_STATE_LINGER;
    if (!ap_start_lingering_close(c)) {
        apr_socket_timeout_set(conn->sock, 0);
        for (i = 0; i < 16; i++) {
            apr_size_t len = sizeof(buf);

            if (apr_socket_recv(conn->sock, buf, &len) != APR_SUCCESS) {
                break;
            }
        }
    }
    c->sbh = NULL;
    vthread_conn_teardown(conn);
}

static void vthread_conn_teardown(vthread_conn_t *conn)
{
    conn_rec *c = conn->c;
    apr_pool_t *pool = c->pool;

    ap_log_cerror(APLOG_MARK, APLOG_TRACE2, 0, c,
                  "connection done: releasing it");
    vthread_conn_await_mpm(conn);
    vthread_conn_pause_until(conn->released_at
                             + (conn->mpm_gone > 0 ? VTHREAD_GRACE
                                                   : VTHREAD_GRACE_UNSEEN));
    /* The MPM's pool cleanup decrements the counter of the state it
     * finds: suspended is where the MPM counted this connection. */
    c->cs->state = CONN_STATE_SUSPENDED;
    vthread_status_track(&conn->track, VTHREAD_TRACK_NONE); /* mod_status */
    apr_pool_clear(pool);   /* from here, conn and c are gone */
    vthread_reaper_destroy(pool);   /* its memory, off the carrier */
}

/*
 * The MPM's last touch of a connection it suspends: right after our
 * suspend_connection hook returns, event stores c->sbh = NULL and a flag
 * of its own, both in c->pool (LIFECYCLE.md, race 2). Seeing c->sbh NULL
 * tells that those stores happened (or are an instruction away); a short
 * grace after that covers the second one. If it is not seen within a
 * second (it always is, unless the worker thread was stalled), the pool
 * is kept for VTHREAD_GRACE_UNSEEN after the hook instead.
 * Sampled once per connection, before mod_vthread sets c->sbh itself.
 */
static void vthread_conn_await_mpm(vthread_conn_t *conn)
{
    conn_rec *c = conn->c;
    apr_time_t start, deadline;
    int spins = 0;

    if (conn->mpm_gone) {
        return;
    }
    start = apr_time_now();
    deadline = start + VTHREAD_MPM_WAIT;
    while (__atomic_load_n(&c->sbh, __ATOMIC_ACQUIRE) != NULL
           && apr_time_now() < deadline) {
        /* The worker is a few instructions away, unless it lost its
         * CPU (to this carrier, maybe): give the CPU away a few times,
         * then sleep in small steps. */
        if (++spins <= 64) {
            if (vthread_on_fiber()) {
                vthread_yield();
            }
            sched_yield();
        }
        else {
            vthread_conn_pause_until(apr_time_now() + 100);
        }
    }
    if (__atomic_load_n(&c->sbh, __ATOMIC_ACQUIRE) == NULL) {
        conn->mpm_gone = 1;
        if (spins) {
            ap_log_cerror(APLOG_MARK, APLOG_TRACE2, 0, c, APLOGNO(10936)
                          "waited %" APR_TIME_T_FMT " us (%d yields) for "
                          "the MPM to let go", apr_time_now() - start,
                          spins);
        }
    }
    else {
        conn->mpm_gone = -1;
        ap_log_cerror(APLOG_MARK, APLOG_WARNING, 0, c, APLOGNO(10935)
                      "the MPM did not let go of the connection within "
                      "%d ms: keeping its memory %d ms longer",
                      (int)apr_time_as_msec(VTHREAD_MPM_WAIT),
                      (int)apr_time_as_msec(VTHREAD_GRACE_UNSEEN));
    }
}

/* Wait on a fiber; off one, or once cancelled (child exit, when the MPM
 * workers are gone), sleep the thread. */
static void vthread_conn_pause_until(apr_time_t when)
{
    apr_time_t now;

    while ((now = apr_time_now()) < when) {
        if (!vthread_on_fiber() || vthread_cancelled()
            || vthread_sleep(when - now) != APR_SUCCESS) {
            apr_sleep(when - now);
        }
    }
}
