/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * The offload decision and the fiber that runs the real handler.
 *
 * Read from the decision to the end of the fiber:
 * vtm_handler_offload()   handler hook, first in the chain, on the
 *                             MPM worker: offload this request or not;
 *   async MPM, HTTP/1.x       create the fiber, return SUSPENDED; the
 *                             fiber starts once the MPM has let go of
 *                             the request (vtm_handler_suspended, the
 *                             suspend_connection hook);
 *   other MPMs                create, start and join the fiber: the
 *                             worker waits, nothing is suspended;
 *   HTTP/2 streams            decline: the handler runs inline.
 * vtm_handler_owned()     the same hook on the fiber of a connection
 *                             mod_vthread owns (its later requests are
 *                             read there): run the handler right here if
 *                             its location asks for a fiber, else on an
 *                             MPM worker (vtm_borrow.c).
 * vtm_handler_async_main  on the fiber: the real handler, its result
 *                             mapped and answered as httpd would, then
 *                             vtm_lifecycle_finish_request() carries the
 *                             connection on.
 * vtm_handler_sync_main   on the fiber: the real handler only; the
 *                             waiting worker does the rest.
 * vtm_handler_discard     r->pool cleanup: a fiber never started (the
 *                             MPM closed the connection instead of
 *                             suspending it) gives its capacity back.
 */
#include <stdatomic.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include <apr_strings.h>

#include "vtm_config.h"
#include "vtm_glue.h"
#include "vtm_borrow.h"
#include "vtm_conn.h"
#include "vtm_lifecycle.h"
#include "vtm_listener.h"
#include "vtm_handler.h"
#include "vtm_invoke.h"
#include "vtm_hangup.h"
#include "vtm_notes.h"
#include "vtm_scoreboard.h"
#include "vtm_status.h"
#include "vtm_state.h"
#include "vt_spawn.h"
#include "vt_wait.h"

APLOG_USE_MODULE(vthread);

static int vtm_handler_suspend(vtm_req_t *req);
static void vtm_handler_start(vtm_req_t *req);
static int vtm_handler_owned(request_rec *r, vtm_conn_t *conn);
static const char *vtm_handler_label(request_rec *r);
static apr_status_t vtm_handler_async_main(void *arg);
static apr_status_t vtm_handler_sync_main(void *arg);
static int vtm_handler_serve(vtm_req_t *req);
static void vtm_handler_respond(request_rec *r, int status);
static int vtm_handler_join(vtm_req_t *req);
static int vtm_handler_overflow(request_rec *r, apr_status_t rv);
static apr_status_t vtm_handler_discard(void *data);
static int vtm_handler_is_h2(const request_rec *r);

/** Last time a 503 at VThreadMaxFibers was logged (one a minute). */
static atomic_llong vtm_handler_overflow_logged;

int vtm_handler_offload(request_rec *r)
{
    conn_rec *c = r->connection;
    const vtm_dir_conf_t *dc;
    vtm_conn_t *conn;
    vt_runtime_t *rt;
    vtm_req_t *req;
    int async;
    apr_status_t rv;

    /* Any request on an MPM worker: add the offloaded requests counted so
     * far to its scoreboard slot (before mod_status reads it). */
    vtm_scoreboard_flush();

    /* Subrequests run where their main request runs. Our own request
     * whose real handler is being run: let it. */
    if (r->main || ap_get_module_config(r->request_config, &vthread_module)) {
        return DECLINED;
    }
    conn = vtm_conn_get(c);
    if (conn && conn->owned && vthread_on_fiber()) {
        return vtm_handler_owned(r, conn);
    }
    /* Internal redirects (ErrorDocument) stay inline on a worker:
     * suspending them crashes the child. */
    if (r->prev) {
        vtm_notes_inherit(r);   /* access-log notes follow */
        return DECLINED;
    }
    dc = ap_get_module_config(r->per_dir_config, &vthread_module);
    if (!vtm_config_wants(dc, r->handler)) {
        return DECLINED;
    }
    rt = vtm_state_runtime();
    if (!rt || vthread_on_fiber() || vtm_handler_is_h2(r)) {
        vtm_notes_inline(r, VTM_OFFLOAD_INLINE,
                             !rt ? "no fiber runtime in this child"
                             : vthread_on_fiber() ? "already on a fiber"
                             : "HTTP/2 stream");
        return DECLINED;
    }

    async = vtm_state_is_async() && c->cs && !c->clogging_input_filters;
    req = apr_pcalloc(r->pool, sizeof(*req));
    req->r = r;
    req->handler = r->handler;
    rv = vt_spawn_create(&req->fiber, rt,
                         async ? vtm_handler_async_main
                               : vtm_handler_sync_main,
                         req, vtm_handler_label(r));
    if (rv != APR_SUCCESS) {
        return vtm_handler_overflow(r, rv);
    }
    req->conn = vtm_conn_ensure(c);
    ap_set_module_config(r->request_config, &vthread_module, req);
    apr_pool_cleanup_register(r->pool, req, vtm_handler_discard,
                              apr_pool_cleanup_null);
    vtm_notes_offloaded(r, async ? VTM_WHERE_SUSPENDED
                                     : VTM_WHERE_JOINED);   /* trace */
    if (async) {
        return vtm_handler_suspend(req);
    }
    return vtm_handler_join(req);
}

/* On the fiber that serves an owned connection, inside
 * ap_process_async_request(): never SUSPENDED, since the caller answers,
 * logs and finishes the request on this fiber. */
static int vtm_handler_owned(request_rec *r, vtm_conn_t *conn)
{
    const vtm_dir_conf_t *dc =
        ap_get_module_config(r->per_dir_config, &vthread_module);
    vtm_req_t *req = apr_pcalloc(r->pool, sizeof(*req));

    req->r = r;
    req->conn = conn;
    req->handler = r->handler;
    ap_set_module_config(r->request_config, &vthread_module, req);
    apr_pool_cleanup_register(r->pool, req, vtm_handler_discard,
                              apr_pool_cleanup_null);
    if (r->prev) {
        vtm_notes_inherit(r);   /* access-log notes follow */
    }
    if (!vtm_config_wants(dc, r->handler)) {
        return vtm_borrow_run(req);
    }
    if (r->prev) {
        /* An internal redirect to an offloaded location: timed and noted
         * as part of the request it came from. */
        return vtm_invoke_handler(req);
    }
    vt_fiber_set_label(vt_fiber_current(), vtm_handler_label(r));
    vtm_notes_offloaded(r, VTM_WHERE_CONN_FIBER);   /* trace */
    return vtm_handler_serve(req);
}

/* What the watchdog and the stack overflow report name. */
static const char *vtm_handler_label(request_rec *r)
{
    return apr_psprintf(r->pool, "%s (client %s)",
                        r->the_request ? r->the_request : r->uri,
                        r->useragent_ip ? r->useragent_ip : "-");
}

/* Async offload of a connection's first offloaded request: remember
 * @a req; its fiber starts once the MPM has let go of the request (the
 * suspend_connection hook). Later requests run on that fiber. */
static int vtm_handler_suspend(vtm_req_t *req)
{
    req->conn->pending = req;
    return SUSPENDED;
}

void vtm_handler_suspended(conn_rec *c, request_rec *r)
{
    vtm_conn_t *conn = vtm_conn_get(c);
    vtm_req_t *req;

    (void)r;
    /* Called for every connection the MPM parks (keep-alive, write
     * completion...); only a first offload is ours to start. Later
     * requests are read and run on the connection's fiber. */
    if (!conn || conn->owned || !conn->pending) {
        return;
    }
    req = conn->pending;
    conn->pending = NULL;
    conn->owned = 1;
    conn->released_at = apr_time_now();
    /* Operator's view: owned until c->pool is cleared (mod_status). */
    vtm_status_own(conn);
    ap_log_cerror(APLOG_MARK, APLOG_TRACE3, 0, c,
                  "the MPM let go of the connection: mod_vthread owns it "
                  "until it closes");
    vtm_handler_start(req);
    vtm_listener_nudge();   /* this worker is free again */
}

/* Start the fiber of an offloaded request and give up its handle. The
 * caller must not touch @a req, r or the connection afterwards. */
static void vtm_handler_start(vtm_req_t *req)
{
    /* Once started, the fiber may finish the request and destroy r->pool
     * (and req) at any moment: read what we need first. */
    vt_fiber_t *f = req->fiber;

    req->started = 1;
    vt_spawn_start(f);
    vt_spawn_detach(f);
}

/* ------------------------------------------------------------------ */

static apr_status_t vtm_handler_async_main(void *arg)
{
    vtm_req_t *req = arg;
    vtm_conn_t *conn = req->conn;
    request_rec *r = req->r;
    int status;

    vtm_conn_enter_fiber(conn);
    status = vtm_handler_serve(req);
    if (status == SUSPENDED) {
        /* The real handler suspended the request itself (as mod_dialup
         * does) and will finish it from elsewhere; httpd 2.4 cannot give
         * the connection back, so it is left to that handler, as stock
         * httpd would leave it. */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, APLOGNO(10923)
                      "handler \"%s\" returned SUSPENDED on a fiber: "
                      "mod_vthread gives up this connection; do not "
                      "combine VThreadHandler with handlers that suspend",
                      req->handler);
        conn->fiber_io = 0;
        return APR_SUCCESS;
    }
    vtm_handler_respond(r, status);
    vtm_lifecycle_finish_request(conn, r);
    return APR_SUCCESS;
}

static apr_status_t vtm_handler_sync_main(void *arg)
{
    vtm_req_t *req = arg;
    apr_thread_t *worker = req->r->connection->current_thread;

#if AP_MODULE_MAGIC_AT_LEAST(20120211, 122)
    req->r->connection->current_thread = ap_thread_current();
#endif
    vtm_notes_fiber_start(req);     /* timing for the access log */
    vtm_hangup_arm(req->conn);
    req->status = vtm_invoke_handler(req);
    vtm_hangup_unwatch(req->conn);
    vtm_notes_handler_end(req, req->status);
    req->r->connection->current_thread = worker;
    return APR_SUCCESS;
}

/* An offloaded request's handler on its fiber, timed and noted, cancelled
 * if the client hangs up. */
static int vtm_handler_serve(vtm_req_t *req)
{
    request_rec *r = req->r;
    int status;

    vtm_notes_fiber_start(req);     /* timing for the access log */
    /* Stopping child: say "Connection: close" with this response. */
    if (vtm_state_is_stopping()) {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    vtm_hangup_arm(req->conn);
    status = vtm_invoke_handler(req);
    vtm_hangup_unwatch(req->conn);
    vtm_notes_handler_end(req, status); /* notes, before the log */
    return status;
}


/*
 * Answer as ap_process_async_request() does after the handler:
 * ap_die_r(status, r, HTTP_OK). The public ap_die() passes r->status as
 * the "recursive error" instead, which would suppress the ErrorDocument
 * of a handler that set r->status before failing; so r->status is HTTP_OK
 * during the call. ap_die() sets r->status to the error it answers, except
 * when it answers nothing (a non-HTTP code after the response began): the
 * handler's r->status is then put back.
 */
static void vtm_handler_respond(request_rec *r, int status)
{
    int before = r->status;

    if (status == OK || status == DONE) {
        ap_die(status, r);
        return;
    }
    r->status = HTTP_OK;
    ap_die(status, r);
    if (r->status == HTTP_OK) {
        r->status = before;
    }
}

/* Not async (prefork, worker) or a clogging connection: the worker waits
 * for the fiber; the connection is never suspended. */
static int vtm_handler_join(vtm_req_t *req)
{
    vt_fiber_t *f = req->fiber;
    apr_status_t rv, result = APR_SUCCESS;

    req->conn->fiber_io = 1;
    req->conn->out_pending_known = 0;
    req->started = 1;
    vt_spawn_start(f);
    /* A join only ends early while the runtime stops: join again. */
    while ((rv = vt_wait_join(f, -1, &result)) != APR_SUCCESS) {
        apr_sleep(apr_time_from_msec(1));
    }
    req->conn->fiber_io = 0;
    return req->status;
}

static int vtm_handler_overflow(request_rec *r, apr_status_t rv)
{
    const vtm_srv_conf_t *sc = vtm_config_srv(r->server);

    if (rv != APR_EAGAIN) {
        /* Stopping, or out of memory: nothing better than inline. */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, APLOGNO(10924)
                      "no fiber for this request: running it inline");
        vtm_notes_inline(r, VTM_OFFLOAD_INLINE,
                             "no fiber (stopping, or out of memory)");
        return DECLINED;
    }
    if (sc->overflow == VTM_OVERFLOW_INLINE) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(10925)
                      "VThreadMaxFibers (%u) reached: running the handler "
                      "inline (VThreadOverflow inline)", sc->max_fibers);
        vtm_notes_inline(r, VTM_OFFLOAD_OVERFLOW_INLINE,
                             "VThreadMaxFibers reached");
        return DECLINED;
    }
    {
        apr_time_t now = apr_time_now();
        long long last = atomic_load(&vtm_handler_overflow_logged);

        if (now - last > apr_time_from_sec(60)
            && atomic_compare_exchange_strong(
                   &vtm_handler_overflow_logged, &last, now)) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, APLOGNO(10926)
                          "VThreadMaxFibers (%u) reached: answering 503 "
                          "(logged at most once a minute)", sc->max_fibers);
        }
    }
    vtm_notes_inline(r, VTM_OFFLOAD_503, "VThreadMaxFibers reached");
    apr_table_setn(r->err_headers_out, "Retry-After", VTM_RETRY_AFTER);
    return HTTP_SERVICE_UNAVAILABLE;
}

static apr_status_t vtm_handler_discard(void *data)
{
    vtm_req_t *req = data;

    /* Normally untracked at the handler's end already (mod_status). */
    vtm_status_track(&req->track, VTM_TRACK_NONE);
    if (!req->started && req->fiber) {
        vt_spawn_discard(req->fiber);
        req->fiber = NULL;
    }
    return APR_SUCCESS;
}

/* An HTTP/2 stream runs on a secondary connection (c->master) and has no
 * client socket of its own to park on. */
static int vtm_handler_is_h2(const request_rec *r)
{
    return r->connection->master != NULL
           || r->proto_num >= HTTP_VERSION(2, 0);
}
