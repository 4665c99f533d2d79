/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * A handler that must not run on a carrier, for a request read on a
 * fiber: it runs on an MPM worker while the fiber waits.
 *
 * Once mod_vthread owns a connection, its next requests are read on the
 * connection's fiber (vtm_lifecycle.c), so that a keep-alive request to an
 * offloaded location costs no thread switch at all. A request to a
 * location without VThreadHandler must still run its handler on an MPM
 * worker (it may block: a proxy, a CGI, a database). The fiber hands the
 * request to a worker with ap_mpm_register_timed_callback(0) and parks
 * until the worker has run the handler; the fiber then answers and logs
 * the request as usual. Only the handler phase moves; the phases before
 * it ran on the fiber.
 *
 * Ownership: while the worker runs the handler, the fiber does not touch
 * the request or the connection; the worker touches neither after waking
 * the fiber.
 *
 * The wait cannot be cancelled (the worker may be using the request), so
 * a request whose callback never runs must be failed by someone else: the
 * event MPM drops pending callbacks when its listener exits (ungraceful
 * stop), and the child then stops the runtime, which would wait for this
 * fiber forever. vtm_borrow_child_exit() runs first, after the MPM has
 * joined its workers, and fails every request still waiting.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <scoreboard.h>
#include <ap_mpm.h>

#include <apr_thread_mutex.h>

#include "vtm_glue.h"
#include "vtm_borrow.h"
#include "vtm_conn.h"
#include "vtm_invoke.h"
#include "vtm_scoreboard.h"
#include "vt_wait.h"

APLOG_USE_MODULE(vthread);

/** A request waiting for, or running on, an MPM worker; on its fiber's
 *  stack. */
typedef struct vtm_borrow_t {
    vtm_req_t *req;
    vt_waiter_t waiter;     /**< queued until the callback starts; claimed
                             *   by the worker, or at child exit */
    int status;             /**< the handler's result */
} vtm_borrow_t;

static void vtm_borrow_on_worker(void *baton);

/* Requests whose callback has not started, under the mutex. */
static apr_thread_mutex_t *vtm_borrow_mutex;
static vt_waitq_t vtm_borrow_waiting;
static int vtm_borrow_closed;

apr_status_t vtm_borrow_child_init(apr_pool_t *pchild)
{
    vtm_borrow_waiting = (vt_waitq_t){ 0 };
    vtm_borrow_closed = 0;
    return apr_thread_mutex_create(&vtm_borrow_mutex,
                                   APR_THREAD_MUTEX_DEFAULT, pchild);
}

void vtm_borrow_child_exit(void)
{
    vt_waiter_t *resume = NULL;

    if (!vtm_borrow_mutex) {
        return;
    }
    apr_thread_mutex_lock(vtm_borrow_mutex);
    vtm_borrow_closed = 1;
    vt_waitq_claim_all(&vtm_borrow_waiting, APR_ECONNABORTED, &resume);
    apr_thread_mutex_unlock(vtm_borrow_mutex);
    vt_wait_resume_list(resume);
}

int vtm_borrow_run(vtm_req_t *req)
{
    vtm_conn_t *conn = req->conn;
    request_rec *r = req->r;
    vtm_borrow_t b = { 0 };
    apr_status_t rv;

    b.req = req;
    vt_wait_init(&b.waiter);
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                  "no VThreadHandler here: handler \"%s\" runs on an MPM "
                  "worker", r->handler ? r->handler : "-");

    apr_thread_mutex_lock(vtm_borrow_mutex);
    if (vtm_borrow_closed) {
        apr_thread_mutex_unlock(vtm_borrow_mutex);
        rv = APR_ECONNABORTED;
    }
    else {
        vt_waitq_push(&vtm_borrow_waiting, &b.waiter);
        apr_thread_mutex_unlock(vtm_borrow_mutex);
        /* From here the worker may own the request and connection. */
        conn->fiber_io = 0;
        rv = ap_mpm_register_timed_callback(0, vtm_borrow_on_worker,
                                            &b);
        if (rv != APR_SUCCESS) {
            apr_thread_mutex_lock(vtm_borrow_mutex);
            vt_waitq_unlink(&vtm_borrow_waiting, &b.waiter);
            apr_thread_mutex_unlock(vtm_borrow_mutex);
        }
        else {
            rv = vt_wait_park(&b.waiter, VT_PARK_SYNC, -1,
                                VT_WAIT_UNCANCELLABLE);
        }
    }
    vtm_conn_enter_fiber(conn);
    r->connection->sbh = NULL;
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, APLOGNO(10937)
                      "no MPM worker to run handler \"%s\" (the child is "
                      "stopping?): answering 503",
                      r->handler ? r->handler : "-");
        r->connection->keepalive = AP_CONN_CLOSE;
        return HTTP_SERVICE_UNAVAILABLE;
    }
    return b.status;
}

/* On an MPM worker: what ap_invoke_handler() would have done here. */
static void vtm_borrow_on_worker(void *baton)
{
    vtm_borrow_t *b = baton;
    vtm_req_t *req = b->req;
    conn_rec *c = req->r->connection;
    int status;

    apr_thread_mutex_lock(vtm_borrow_mutex);
    if (vtm_borrow_closed) {
        /* Failed at child exit (every queued request was): the fiber has
         * moved on, and b with it; do not touch it. */
        apr_thread_mutex_unlock(vtm_borrow_mutex);
        return;
    }
    vt_waitq_unlink(&vtm_borrow_waiting, &b->waiter);
    apr_thread_mutex_unlock(vtm_borrow_mutex);

#if AP_MODULE_MAGIC_AT_LEAST(20120211, 122)
    c->current_thread = ap_thread_current();
#endif
    vtm_scoreboard_flush();
    c->sbh = vtm_scoreboard_worker(req->conn);
    ap_update_child_status(c->sbh, SERVER_BUSY_WRITE, req->r);
    status = vtm_invoke_handler(req);
    c->sbh = NULL;
    b->status = status;
    /* The last touch: the fiber may free b as soon as it is resumed. */
    if (vt_waitq_claim(&b->waiter, APR_SUCCESS)) {
        vt_wait_resume(&b->waiter);
    }
}
