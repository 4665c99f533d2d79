/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * The runtime of each httpd child: started in child_init, stopped when
 * the child's pool is destroyed (child exit), told at child_stopping. And
 * the start-up warnings about MPM settings that defeat the module.
 *
 * Order at child exit: our pchild pre-cleanup runs first, before any
 * subpool of pchild is destroyed (other modules keep state there that
 * parked fibers still use): it marks the child stopping and stops the
 * runtime, which cancels every fiber and waits for them; a fiber that
 * owns a connection then closes and releases it. The runtime's own pchild
 * cleanup finds it stopped.
 */
#include <stdlib.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <ap_mpm.h>
#include <util_cfgtree.h>

#include "vtm_config.h"
#include "vtm_glue.h"
#include "vtm_borrow.h"
#include "vtm_child.h"
#include "vtm_lifecycle.h"
#include "vtm_hangup.h"
#include "vtm_listener.h"
#include "vtm_reaper.h"
#include "vtm_recycle.h"
#include "vtm_scoreboard.h"
#include "vtm_state.h"
#include "vtm_transparent.h"
#include "vt_log.h"

APLOG_USE_MODULE(vthread);

static void vtm_child_log(void *baton, int level, int msg_id,
                              const char *msg);
static apr_status_t vtm_child_exit(void *data);
static void vtm_child_idle(void);
static void vtm_child_warn_mpm(server_rec *s,
                                   const vtm_srv_conf_t *sc);
static const char *vtm_child_directive(const ap_directive_t *d,
                                           const char *name);

int vtm_child_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp, server_rec *s)
{
    const vtm_srv_conf_t *sc = vtm_config_srv(s);
    int async = 0;

    (void)pconf;
    (void)plog;
    (void)ptemp;
    /* Warn once per (re)start, not for the dry run that precedes it. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (ap_mpm_query(AP_MPMQ_IS_ASYNC, &async) != APR_SUCCESS) {
        async = 0;
    }
    if (!async) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, APLOGNO(10903)
                     "the %s MPM is not asynchronous: handlers selected by "
                     "VThreadHandler run on a fiber while their worker "
                     "waits for them, so there is no worker saving; use "
                     "the event MPM", ap_show_mpm());
    }
    else {
        vtm_child_warn_mpm(s, sc);
    }
    if (ap_find_linked_module("mod_http2.c")) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, APLOGNO(10905)
                     "HTTP/2 requests run their handler inline on the "
                     "HTTP/2 worker, even where VThreadHandler is on: "
                     "offloading saves workers for HTTP/1.x only");
    }
    return OK;
}

void vtm_child_init(apr_pool_t *pchild, server_rec *s)
{
    const vtm_srv_conf_t *sc = vtm_config_srv(s);
    vt_config_t rc;
    vt_runtime_t *rt = NULL;
    apr_status_t rv;
    int async = 0;

    if (ap_mpm_query(AP_MPMQ_IS_ASYNC, &async) != APR_SUCCESS) {
        async = 0;
    }
    vtm_state_set_async(async);
    vtm_state_set_stopping(0);
    vtm_listener_child_init();

    /* Before the reaper: pchild's cleanups run in reverse, and the
     * reaper thread (which trims the kept memory) must be joined before
     * the recycling's lock goes. */
    rv = vtm_recycle_child_init(pchild, sc->max_fibers);
    if (rv != APR_SUCCESS) {
        /* Not fatal: each new connection then maps its own memory. */
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, APLOGNO(10881)
                     "cannot set up the recycling of closed connections' "
                     "memory: every new connection maps its own");
    }
    rv = vtm_reaper_child_init(pchild, vtm_child_idle);
    if (rv != APR_SUCCESS) {
        /* Not fatal: pools are then destroyed on the carriers. */
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, APLOGNO(10880)
                     "cannot start the pool reaper thread: closed "
                     "connections' memory is freed on the carriers");
    }
    rv = vtm_lifecycle_child_init(pchild);
    if (rv == APR_SUCCESS) {
        rv = vtm_borrow_child_init(pchild);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, APLOGNO(10901)
                     "cannot start the fiber runtime: handlers run inline");
        return;
    }

    vtm_config_runtime(sc, &rc);
    rc.log = vtm_child_log;
    rc.log_baton = s;
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 122)
    /* So that ap_thread_current() works on the carriers. */
    rc.thread_create = ap_thread_create;
#endif
    rv = vt_runtime_create(&rt, &rc, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, APLOGNO(10902)
                     "cannot start the fiber runtime: handlers run inline");
        return;
    }
    vtm_scoreboard_child_init();
    vtm_hangup_child_init(pchild);
    /* Before pchild's subpools go: see the top of this file. */
    apr_pool_pre_cleanup_register(pchild, s, vtm_child_exit);
    vtm_state_set_runtime(rt);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, APLOGNO(10900)
                 "fiber runtime started: %d carriers, %" APR_SIZE_T_FMT
                 " byte stacks, at most %u fibers", vt_runtime_carriers(rt),
                 sc->stack_size, sc->max_fibers);
}

void vtm_child_stopping(apr_pool_t *pchild, int graceful)
{
    (void)pchild;
    vtm_state_set_stopping(1);
    vtm_lifecycle_child_stopping(graceful);
}

static apr_status_t vtm_child_exit(void *data)
{
    server_rec *s = data;
    vt_runtime_t *rt;

    vtm_state_set_stopping(1);
    vtm_lifecycle_child_stopping(0);
    vtm_borrow_child_exit();
    vtm_hangup_child_exit();
    rt = vtm_state_runtime();
    if (rt) {
        vt_runtime_stop(rt);
        vtm_state_set_runtime(NULL);
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, APLOGNO(10904)
                     "fiber runtime stopped");
    }
    return APR_SUCCESS;
}

/* The reaper's idle task, twice a second: give back the closed
 * connections' memory vtm_recycle.c kept too long, wake event's listener
 * if it stopped accepting after the last worker or connection mod_vthread
 * freed (vtm_listener.c), and once, soon after start, check transparent
 * mode's slots (vtm_transparent.c). */
static void vtm_child_idle(void)
{
    vtm_recycle_trim();
    vtm_listener_nudge();
    vtm_transparent_settle();
}

/* The runtime's reports, each with its own message number. Called from
 * carriers and the watchdog: ap_log_error is thread-safe. */
static void vtm_child_log(void *baton, int level, int msg_id,
                              const char *msg)
{
    server_rec *s = baton;

    switch (msg_id) {
    case VT_MSG_PINNED:
        ap_log_error(APLOG_MARK, level, 0, s, APLOGNO(10907) "%s", msg);
        break;
    case VT_MSG_CONFIG:
        ap_log_error(APLOG_MARK, level, 0, s, APLOGNO(10908) "%s", msg);
        break;
    case VT_MSG_THREAD:
        ap_log_error(APLOG_MARK, level, 0, s, APLOGNO(10909) "%s", msg);
        break;
    case VT_MSG_STACK:
        ap_log_error(APLOG_MARK, level, 0, s, APLOGNO(10910) "%s", msg);
        break;
    case VT_MSG_STOP_WAIT:
        ap_log_error(APLOG_MARK, level, 0, s, APLOGNO(10911) "%s", msg);
        break;
    case VT_MSG_MISUSE:
        ap_log_error(APLOG_MARK, level, 0, s, APLOGNO(10912) "%s", msg);
        break;
    default:
        ap_log_error(APLOG_MARK, level, 0, s, APLOGNO(10913)
                     "runtime message %d: %s", msg_id, msg);
        break;
    }
}

/*
 * The event MPM stops accepting when a child holds more connections than
 * ThreadsPerChild + idle workers x AsyncRequestWorkerFactor, and every
 * parked request holds one. With offloading, workers are mostly idle, so
 * the best case is ThreadsPerChild x (1 + factor) per child.
 */
static void vtm_child_warn_mpm(server_rec *s,
                                   const vtm_srv_conf_t *sc)
{
    const char *arg;
    int tpc = 0, factor = 2;
    apr_int64_t limit;

    if (strcmp(ap_show_mpm(), "event") || sc->max_fibers == 0) {
        return;
    }
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &tpc) != APR_SUCCESS || tpc < 1) {
        return;
    }
    arg = vtm_child_directive(ap_conftree, "AsyncRequestWorkerFactor");
    if (arg) {
        /* event keeps the factor in 1/16ths and uses its integer part */
        double f = strtod(arg, NULL);

        factor = (int)((unsigned int)(f * 16) / 16);
        if (factor < 1) {
            factor = 1;
        }
    }
    limit = (apr_int64_t)tpc * (1 + factor);
    if (limit * 2 < (apr_int64_t)sc->max_fibers) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, APLOGNO(10914)
                     "the event MPM accepts at most %" APR_INT64_T_FMT
                     " connections per child (ThreadsPerChild %d + %d idle "
                     "workers x AsyncRequestWorkerFactor %d), far below "
                     "VThreadMaxFibers %u: once that many requests are "
                     "parked the child stops accepting (\"Too many open "
                     "connections\"); raise AsyncRequestWorkerFactor to "
                     "about %u (and ListenBacklog), or lower "
                     "VThreadMaxFibers", limit, tpc, tpc, factor,
                     sc->max_fibers,
                     (unsigned int)((sc->max_fibers + tpc - 1) / tpc));
    }
}

/* The last value given to a directive at the top of the configuration
 * (containers whose condition held are already spliced in). */
static const char *vtm_child_directive(const ap_directive_t *d,
                                           const char *name)
{
    const char *found = NULL;

    for (; d; d = d->next) {
        if (!strcasecmp(d->directive, name)) {
            found = d->args;
        }
    }
    return found;
}
