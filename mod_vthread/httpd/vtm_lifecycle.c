/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * An owned connection's life after the handler, from the MPM letting go
 * to its teardown.
 *
 * httpd 2.4 cannot give a suspended connection back to the event MPM, so
 * mod_vthread owns it until it ends (docs/lifecycle.md, After SUSPENDED).
 * Read top to bottom, in the order a connection lives:
 *
 * vtm_handler_suspended()  (vtm_handler.c) suspend_connection hook: the
 *     MPM is done with the first request; its fiber starts only now
 *     (docs/lifecycle.md, Race 1).
 * vtm_lifecycle_finish_request()  on the fiber: log the request (EOR).
 * vtm_lifecycle_carry_on()  a loop on the same fiber: write completion
 *     (park on POLLOUT, bounded by Timeout), then close, or the next
 *     request: at once if pipelined, else after a keep-alive wait (park
 *     on POLLIN, bounded by KeepAliveTimeout).
 * vtm_lifecycle_read_next()  ap_run_process_connection on the fiber, as
 *     event's process_socket(): the request is read and processed here;
 *     its handler runs here or, for a location without VThreadHandler,
 *     on an MPM worker (vtm_handler_owned). No thread switch for a
 *     keep-alive request to an offloaded location.
 * vtm_lifecycle_close()  lingering close: shutdown, drain up to 2 s on
 *     the reactor, then teardown.
 * vtm_lifecycle_teardown()  c->cs->state = CONN_STATE_SUSPENDED (what the
 *     MPM's pool cleanup must find: docs/lifecycle.md, Race 3),
 *     apr_pool_clear(c->pool) (the MPM's counters, the socket), and the
 *     pool's destruction once the MPM's last stores are behind us
 *     (docs/lifecycle.md, Race 2; vtm_lifecycle_await_mpm).
 *
 * Idle connections (in the keep-alive wait) are listed so that
 * child_stopping can close them at once: a graceful restart does not wait
 * for their KeepAliveTimeout. A listed fiber is cancelled under the list's
 * mutex, and unlists itself under it, so the handle is always valid. The
 * connection then gets a last, short wait (vtm_lifecycle_last_wait) on a
 * new fiber (the cancelled one can no longer park): a request that was on
 * its way is answered, with "Connection: close", not lost. A connection
 * whose response went out with keep-alive just before the stop gets the
 * same last wait, on its own fiber.
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

#include "vtm_glue.h"
#include "vtm_conn.h"
#include "vtm_filters.h"
#include "vtm_listener.h"
#include "vtm_recycle.h"
#include "vtm_status.h"
#include "vtm_state.h"
#include "vt_spawn.h"

APLOG_USE_MODULE(vthread);

/** Longest lingering close (httpd's SECONDS_TO_LINGER). */
#define VTM_LINGER_TIME apr_time_from_sec(2)
/** Least time between the MPM letting go and the pool's destruction, once
 *  the MPM's last store was seen. */
#define VTM_GRACE apr_time_from_msec(20)
/** The same when it was not seen. */
#define VTM_GRACE_UNSEEN apr_time_from_sec(1)
/** The longest last wait for a request on an idle keep-alive connection
 *  when the child stops (vtm_lifecycle_last_wait). */
#define VTM_STOP_GRACE apr_time_from_sec(1)
/** How long a finishing fiber waits to see the MPM's last store. */
#define VTM_MPM_WAIT apr_time_from_sec(1)

/** What follows a request on the connection's fiber. */
typedef enum {
    VTM_NEXT_READ,      /**< read the next request here */
    VTM_NEXT_CLOSE,     /**< lingering close, teardown */
    VTM_NEXT_GONE       /**< another fiber has the connection now */
} vtm_next_e;

static void vtm_lifecycle_carry_on(vtm_conn_t *conn);
static vtm_next_e vtm_lifecycle_between(vtm_conn_t *conn);
static apr_status_t vtm_lifecycle_wait_keepalive(vtm_conn_t *conn);
static apr_status_t vtm_lifecycle_wait_idle(vtm_conn_t *conn,
                                           apr_interval_time_t timeout);
static apr_status_t vtm_lifecycle_peek(vtm_conn_t *conn);
static vtm_next_e vtm_lifecycle_last_wait(vtm_conn_t *conn);
static vtm_next_e vtm_lifecycle_rescue(vtm_conn_t *conn);
static apr_status_t vtm_lifecycle_rescue_main(void *arg);
static int vtm_lifecycle_read_next(vtm_conn_t *conn);
static apr_interval_time_t vtm_lifecycle_ka_timeout(const request_rec *r);
static void vtm_lifecycle_close(vtm_conn_t *conn);
static void vtm_lifecycle_drain(vtm_conn_t *conn);
static void vtm_lifecycle_teardown(vtm_conn_t *conn);
static void vtm_lifecycle_await_mpm(vtm_conn_t *conn);
static void vtm_lifecycle_pause_until(apr_time_t when);

/* The keep-alive registry of this child. */
static apr_thread_mutex_t *vtm_lifecycle_mutex;
static vtm_conn_t *vtm_lifecycle_idle;
static int vtm_lifecycle_closing;

apr_status_t vtm_lifecycle_child_init(apr_pool_t *pchild)
{
    vtm_lifecycle_idle = NULL;
    vtm_lifecycle_closing = 0;
    return apr_thread_mutex_create(&vtm_lifecycle_mutex,
                                   APR_THREAD_MUTEX_DEFAULT, pchild);
}

void vtm_lifecycle_child_stopping(int graceful)
{
    vtm_conn_t *conn;

    (void)graceful;
    if (!vtm_lifecycle_mutex) {
        return;
    }
    apr_thread_mutex_lock(vtm_lifecycle_mutex);
    vtm_lifecycle_closing = 1;
    for (conn = vtm_lifecycle_idle; conn; conn = conn->idle_next) {
        vt_spawn_cancel(conn->idle_fiber);
    }
    apr_thread_mutex_unlock(vtm_lifecycle_mutex);
}

void vtm_lifecycle_finish_request(vtm_conn_t *conn, request_rec *r)
{
    conn_rec *c = conn->c;

    conn->ka_timeout = vtm_lifecycle_ka_timeout(r);
    /* The EOR uses c->sbh (status, counts): it must be the MPM's NULL,
     * not its handle on a worker's slot. Offloaded requests are counted
     * by vtm_scoreboard.c instead. */
    vtm_lifecycle_await_mpm(conn);
    /* EOR: logs the request and destroys r->pool, on this fiber. */
    ap_process_request_after_handler(r);
    ap_log_cerror(APLOG_MARK, APLOG_TRACE4, 0, c,
                  "request finished and logged");
    vtm_lifecycle_carry_on(conn);
}

/* ------------------------------------------------------------------ */

int vtm_lifecycle_post_read_request(request_rec *r)
{
    vtm_conn_t *conn = vtm_conn_get(r->connection);

    /* Only requests read on our fiber: a first request's are noted when
     * it finishes (vtm_lifecycle_finish_request). */
    if (conn && conn->owned && vthread_on_fiber()) {
        conn->ka_timeout = vtm_lifecycle_ka_timeout(r);
        if (vtm_state_is_stopping()) {
            r->connection->keepalive = AP_CONN_CLOSE;
        }
    }
    return DECLINED;
}

/* As event: the vhost's KeepAliveTimeout if it set one, else the base
 * server's. */
static apr_interval_time_t vtm_lifecycle_ka_timeout(const request_rec *r)
{
    return r->server->keep_alive_timeout_set
           ? r->server->keep_alive_timeout
           : r->connection->base_server->keep_alive_timeout;
}

/* ------------------------------------------------------------------ */

static void vtm_lifecycle_carry_on(vtm_conn_t *conn)
{
    for (;;) {
        switch (vtm_lifecycle_between(conn)) {
        case VTM_NEXT_READ:
            if (!vtm_lifecycle_read_next(conn)) {
                return;
            }
            break;
        case VTM_NEXT_CLOSE:
            vtm_lifecycle_close(conn);
            return;
        case VTM_NEXT_GONE:
            return;
        }
    }
}

/* After a request: write completion, then close or wait for the next. */
static vtm_next_e vtm_lifecycle_between(vtm_conn_t *conn)
{
    conn_rec *c = conn->c;
    apr_status_t rv;
    int close = 0;

    if (c->cs->state == CONN_STATE_KEEPALIVE) {
        c->cs->state = CONN_STATE_WRITE_COMPLETION;
    }
    if (c->cs->state != CONN_STATE_WRITE_COMPLETION || c->aborted) {
        close = 1;
    }
    else {
        /* Operator's view: counted and aged in mod_status, and traced. */
        vtm_status_track(&conn->track, VTM_TRACK_WRITING);
        ap_log_cerror(APLOG_MARK, APLOG_TRACE4, 0, c,
                      "write completion: sending what is still buffered");
        rv = vtm_filters_drain(conn);
        ap_log_cerror(APLOG_MARK, APLOG_TRACE3, rv, c,
                      "write completion done after %" APR_TIME_T_FMT " us",
                      apr_time_now() - conn->track.since);
        vtm_status_track(&conn->track, VTM_TRACK_NONE);
        if (rv != APR_SUCCESS) {
            ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, APLOGNO(10930)
                          "write completion failed: closing");
            close = 1;
        }
    }
    c->sbh = NULL;
    if (close || c->keepalive != AP_CONN_KEEPALIVE || c->aborted) {
        return VTM_NEXT_CLOSE;
    }
    /* The response promised keep-alive, so the client may have sent its
     * next request already: closing now would lose it. */
    if (vtm_state_is_stopping()) {
        return vthread_cancelled() ? vtm_lifecycle_rescue(conn)
                                   : vtm_lifecycle_last_wait(conn);
    }
    if (vthread_cancelled()) {
        return VTM_NEXT_CLOSE;
    }
    if (c->data_in_input_filters) {
        ap_log_cerror(APLOG_MARK, APLOG_TRACE3, 0, c,
                      "next request already read (pipelined): no "
                      "keep-alive wait");
        return VTM_NEXT_READ;
    }
    /* Operator's view: counted and aged in mod_status, and traced. */
    vtm_status_track(&conn->track, VTM_TRACK_KEEPALIVE);
    ap_log_cerror(APLOG_MARK, APLOG_TRACE3, 0, c,
                  "keep-alive wait (KeepAliveTimeout %" APR_TIME_T_FMT
                  " ms)", apr_time_as_msec(conn->ka_timeout));
    rv = vtm_lifecycle_wait_keepalive(conn);
    ap_log_cerror(APLOG_MARK, APLOG_TRACE3, 0, c,
                  "keep-alive wait ended after %" APR_TIME_T_FMT " ms: %s",
                  apr_time_as_msec(apr_time_now() - conn->track.since),
                  rv == APR_SUCCESS ? "the next request is there"
                                    : "closing");
    vtm_status_track(&conn->track, VTM_TRACK_NONE);
    if (rv != APR_SUCCESS && rv != APR_ECONNABORTED) {
        return VTM_NEXT_CLOSE;  /* timed out, or the client left */
    }
    /* Cancelled by child_stopping (maybe just as the request came: the
     * wait ended first), unlisted now, so no cancel comes later. */
    if (vthread_cancelled()) {
        return vtm_lifecycle_rescue(conn);
    }
    return rv == APR_SUCCESS ? VTM_NEXT_READ
                             : vtm_lifecycle_last_wait(conn);
}

/*
 * The child stops: one last, short wait for a request. A client that is
 * using the connection (a request may already be on its way: closing now
 * would lose it, as a client cannot know) sends one within the grace and
 * has it answered with "Connection: close"; an idle one is closed after
 * it. Unlisted: child_stopping has run.
 */
static vtm_next_e vtm_lifecycle_last_wait(vtm_conn_t *conn)
{
    apr_interval_time_t grace = conn->ka_timeout < VTM_STOP_GRACE
                                ? conn->ka_timeout : VTM_STOP_GRACE;
    apr_status_t rv = vtm_lifecycle_peek(conn);

    if (APR_STATUS_IS_EAGAIN(rv)
        && vthread_wait_io(conn->sock, APR_POLLIN, grace) == APR_SUCCESS) {
        rv = vtm_lifecycle_peek(conn);
    }
    ap_log_cerror(APLOG_MARK, APLOG_TRACE2, rv, conn->c,
                  "child stopping: %s", rv == APR_SUCCESS
                  ? "a last request, answered with Connection: close"
                  : "no request within the grace: closing");
    return rv == APR_SUCCESS ? VTM_NEXT_READ : VTM_NEXT_CLOSE;
}

/* Wait for the next request, bounded by KeepAliveTimeout. A hang-up is
 * noticed here, so a closing client costs no MPM worker. */
static apr_status_t vtm_lifecycle_wait_keepalive(vtm_conn_t *conn)
{
    conn_rec *c = conn->c;
    apr_time_t deadline = apr_time_now() + conn->ka_timeout;
    apr_status_t rv;

    for (;;) {
        apr_interval_time_t left = deadline - apr_time_now();

        rv = vtm_lifecycle_wait_idle(conn, left > 0 ? left : 0);
        if (rv != APR_SUCCESS) {
            ap_log_cerror(APLOG_MARK, APLOG_TRACE2, rv, c, APLOGNO(10931)
                          "keep-alive wait ended: closing");
            return rv;
        }
        rv = vtm_lifecycle_peek(conn);
        if (!APR_STATUS_IS_EAGAIN(rv)) {
            return rv;  /* a request, or EOF or error: the client is gone */
        }
        /* Nothing yet (e.g. TLS records without data): wait again. */
        ap_log_cerror(APLOG_MARK, APLOG_TRACE4, 0, c,
                      "keep-alive wait: readable but no request data yet");
    }
}

/* Park until readable, listed so that child_stopping can cancel us. */
static apr_status_t vtm_lifecycle_wait_idle(vtm_conn_t *conn,
                                           apr_interval_time_t timeout)
{
    apr_status_t rv;

    apr_thread_mutex_lock(vtm_lifecycle_mutex);
    if (vtm_lifecycle_closing) {
        apr_thread_mutex_unlock(vtm_lifecycle_mutex);
        return APR_ECONNABORTED;
    }
    conn->idle_fiber = vt_fiber_current();
    conn->idle_prev = NULL;
    conn->idle_next = vtm_lifecycle_idle;
    if (vtm_lifecycle_idle) {
        vtm_lifecycle_idle->idle_prev = conn;
    }
    vtm_lifecycle_idle = conn;
    apr_thread_mutex_unlock(vtm_lifecycle_mutex);

    rv = vthread_wait_io(conn->sock, APR_POLLIN, timeout);

    apr_thread_mutex_lock(vtm_lifecycle_mutex);
    if (conn->idle_prev) {
        conn->idle_prev->idle_next = conn->idle_next;
    }
    else {
        vtm_lifecycle_idle = conn->idle_next;
    }
    if (conn->idle_next) {
        conn->idle_next->idle_prev = conn->idle_prev;
    }
    conn->idle_fiber = NULL;
    conn->idle_prev = conn->idle_next = NULL;
    apr_thread_mutex_unlock(vtm_lifecycle_mutex);
    return rv;
}

/* Has the client sent something (a next request) that we have not read?
 * Without parking, so also on a cancelled fiber: APR_SUCCESS if so,
 * APR_EAGAIN if not yet, else EOF or the error (the client is gone). */
static apr_status_t vtm_lifecycle_peek(vtm_conn_t *conn)
{
    conn_rec *c = conn->c;
    apr_status_t rv;

    if (!conn->peek_bb) {
        conn->peek_bb = apr_brigade_create(c->pool, c->bucket_alloc);
    }
    rv = ap_get_brigade(c->input_filters, conn->peek_bb,
                        AP_MODE_SPECULATIVE, APR_NONBLOCK_READ, 1);
    if (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(conn->peek_bb)) {
        rv = APR_EAGAIN;
    }
    apr_brigade_cleanup(conn->peek_bb);
    return rv;
}

/*
 * The keep-alive wait was cancelled (child stopping): the last wait, and
 * the request the client may send meanwhile, go to a new fiber. This one
 * is cancelled, and would fail every wait of the handler.
 */
static vtm_next_e vtm_lifecycle_rescue(vtm_conn_t *conn)
{
    vt_runtime_t *rt = vtm_state_runtime();
    vt_fiber_t *f;
    apr_status_t rv;

    rv = rt ? vt_spawn_create(&f, rt, vtm_lifecycle_rescue_main, conn,
                              conn->c->client_ip)
            : APR_ECONNABORTED;
    if (rv != APR_SUCCESS) {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, rv, conn->c, APLOGNO(10932)
                      "child stopping: no fiber left for a last request on "
                      "an idle keep-alive connection; closing it");
        return VTM_NEXT_CLOSE;
    }
    vt_spawn_start(f);  /* from here the connection is the new fiber's */
    vt_spawn_detach(f);
    return VTM_NEXT_GONE;
}

static apr_status_t vtm_lifecycle_rescue_main(void *arg)
{
    vtm_conn_t *conn = arg;

    vtm_conn_enter_fiber(conn);
    if (vtm_lifecycle_last_wait(conn) == VTM_NEXT_CLOSE) {
        vtm_lifecycle_close(conn);
    }
    else if (vtm_lifecycle_read_next(conn)) {
        vtm_lifecycle_carry_on(conn);
    }
    return APR_SUCCESS;
}

/*
 * What event's process_socket() does for a connection with a request to
 * read, on the fiber: the request is read (parking while it trickles in)
 * and processed; the handler hook runs its handler here or on an MPM
 * worker. Returns 0 if a handler suspended the connection: it is not
 * ours any more.
 */
static int vtm_lifecycle_read_next(vtm_conn_t *conn)
{
    conn_rec *c = conn->c;
    conn_state_e state;
    int rc;

    c->cs->state = CONN_STATE_PROCESSING;
    c->cs->sense = CONN_SENSE_DEFAULT;
    ap_log_cerror(APLOG_MARK, APLOG_TRACE3, 0, c,
                  "reading the next request on the connection's fiber");

    rc = ap_run_process_connection(c);

    state = c->cs->state;
    if (state == CONN_STATE_SUSPENDED) {
        ap_log_cerror(APLOG_MARK, APLOG_ERR, 0, c, APLOGNO(10933)
                      "a handler suspended a connection that mod_vthread "
                      "owns: giving the connection up");
        conn->fiber_io = 0;
        return 0;
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
    return 1;
}

/* ------------------------------------------------------------------ */

static void vtm_lifecycle_close(vtm_conn_t *conn)
{
    conn_rec *c = conn->c;

    /* Operator's view: counted and aged in mod_status, and traced. */
    vtm_status_track(&conn->track, VTM_TRACK_LINGER);
    ap_log_cerror(APLOG_MARK, APLOG_TRACE2, 0, c,
                  "closing the connection (lingering close)");
    c->sbh = NULL;
    c->cs->state = CONN_STATE_LINGER;
    /* Flushes (parking in our output filter) and shuts down for write. */
    if (!ap_start_lingering_close(c)) {
        vtm_lifecycle_drain(conn);
    }
    vtm_lifecycle_teardown(conn);
}

/* Read and discard until the client closes, for up to 2 s, so that data
 * it still sends does not make the kernel reset the connection before it
 * has read our response. */
static void vtm_lifecycle_drain(vtm_conn_t *conn)
{
    apr_time_t deadline = apr_time_now() + VTM_LINGER_TIME;
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

static void vtm_lifecycle_teardown(vtm_conn_t *conn)
{
    conn_rec *c = conn->c;
    apr_pool_t *pool = c->pool;

    ap_log_cerror(APLOG_MARK, APLOG_TRACE2, 0, c,
                  "connection done: releasing it");
    vtm_lifecycle_await_mpm(conn);
    vtm_lifecycle_pause_until(conn->released_at
                             + (conn->mpm_gone > 0 ? VTM_GRACE
                                                   : VTM_GRACE_UNSEEN));
    /* The MPM's pool cleanup decrements the counter of the state it
     * finds: suspended is where the MPM counted this connection. */
    c->cs->state = CONN_STATE_SUSPENDED;
    vtm_status_track(&conn->track, VTM_TRACK_NONE); /* mod_status */
    apr_pool_clear(pool);   /* from here, conn and c are gone */
    vtm_recycle_pool(pool); /* its memory: for the next connection */
    vtm_listener_nudge();   /* one connection fewer for the MPM */
}

/*
 * The MPM's last touch of a connection it suspends: right after our
 * suspend_connection hook returns, event stores c->sbh = NULL and a flag
 * of its own, both in c->pool (docs/lifecycle.md, Race 2). Seeing c->sbh NULL
 * tells that those stores happened (or are an instruction away); a short
 * grace after that covers the second one. If it is not seen within a
 * second (it always is, unless the worker thread was stalled), the pool
 * is kept for VTM_GRACE_UNSEEN after the hook instead.
 * Sampled once per connection, before mod_vthread sets c->sbh itself.
 */
static void vtm_lifecycle_await_mpm(vtm_conn_t *conn)
{
    conn_rec *c = conn->c;
    apr_time_t start, deadline;
    int spins = 0;

    if (conn->mpm_gone) {
        return;
    }
    start = apr_time_now();
    deadline = start + VTM_MPM_WAIT;
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
            vtm_lifecycle_pause_until(apr_time_now() + 100);
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
                      (int)apr_time_as_msec(VTM_MPM_WAIT),
                      (int)apr_time_as_msec(VTM_GRACE_UNSEEN));
    }
}

/* Wait on a fiber; off one, or once cancelled (child exit, when the MPM
 * workers are gone), sleep the thread. */
static void vtm_lifecycle_pause_until(apr_time_t when)
{
    apr_time_t now;

    while ((now = apr_time_now()) < when) {
        if (!vthread_on_fiber() || vthread_cancelled()
            || vthread_sleep(when - now) != APR_SUCCESS) {
            apr_sleep(when - now);
        }
    }
}
