/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * Transparent mode's httpd side (the hooks themselves are the runtime's,
 * vt_hook*.c; docs/transparent.md tells the design).
 *
 * - child_init, before mod_proxy's: install the hooks in this child,
 *   before the MPM starts a thread, unless VThreadTransparent Off is all
 *   the configuration says.
 * - mod_proxy sizes each worker's connection pool (hmax) to the MPM's
 *   threads per child when ProxyPass has no max=: one connection per
 *   worker thread that could wait for it. Fibers are not bounded by the
 *   worker threads, so while mod_proxy initialises its workers, and only
 *   then, AP_MPMQ_MAX_THREADS answers the number of fibers a child may
 *   have (VThreadMaxFibers). An explicit max= is left as it is.
 * - A call that could not yield is logged once per call site, with the
 *   fiber's request, as the runtime reports it.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <ap_mpm.h>
#include <http_protocol.h>
#include <mpm_common.h>

#include "vtm_config.h"
#include "vtm_glue.h"
#include "vtm_state.h"
#include "vtm_transparent.h"
#include "vt_blockpool.h"
#include "vt_hook.h"
#include "vt_hook_install.h"
#include "vt_libstate.h"

APLOG_USE_MODULE(vthread);

/* What AP_MPMQ_MAX_THREADS answers while mod_proxy initialises its
 * workers, or 0 outside that window. */
static int vtm_transparent_proxy_threads;

/* The main server, for log lines from the runtime's report. */
static server_rec *vtm_transparent_server;

/* A pool of this many backend connections per worker at most, when
 * VThreadMaxFibers is 0 (unlimited). */
#define VTM_TRANSPARENT_POOL_UNLIMITED 10000

static void vtm_transparent_report(const char *call, const char *object,
                                   const void *site, const char *why)
{
    vt_fiber_t *f = vt_fiber_current();

    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, vtm_transparent_server,
                 APLOGNO(10861) "transparent mode: %s called from %s (%pp) "
                 "blocked its carrier (%s), serving \"%s\"; reported once "
                 "per call site, counted in mod_status",
                 call, object, site, why, f ? vt_fiber_label(f) : "");
}

static void vtm_transparent_child_init(apr_pool_t *pchild, server_rec *s)
{
    const vtm_srv_conf_t *sc = vtm_config_srv(s);
    apr_size_t patched = 0;
    apr_status_t rv;

    (void)pchild;
    /* Offloaded client TLS needs OpenSSL's error queue kept per fiber
     * whether or not the hooks are installed. */
    vt_libstate_enable();
    vtm_state_set_transparent(0);
    if (!vtm_config_transparent_anywhere(s)) {
        return;
    }
    vtm_transparent_server = s;
    vt_hook_set_report(vtm_transparent_report);
    rv = vt_hook_install(NULL, NULL, &patched);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, APLOGNO(10860)
                     "transparent mode unavailable (%s): blocking calls "
                     "of unmodified modules hold their carrier",
                     rv == APR_ENOTIMPL ? "not supported on this platform"
                                        : "cannot patch the loaded objects");
        return;
    }
    vtm_state_set_transparent(1);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, APLOGNO(10862)
                 "transparent mode: %" APR_SIZE_T_FMT " call slots "
                 "redirected", patched);
    vtm_transparent_proxy_threads =
        sc->max_fibers ? (int)sc->max_fibers : VTM_TRANSPARENT_POOL_UNLIMITED;
}

static void vtm_transparent_proxy_done(apr_pool_t *pchild, server_rec *s)
{
    (void)pchild;
    (void)s;
    vtm_transparent_proxy_threads = 0;
}

/* Idle ticks of the reaper seen so far (its thread only). */
static int vtm_transparent_ticks;

void vtm_transparent_settle(void)
{
    apr_size_t patched = 0;

    if (vtm_transparent_ticks > 2 || !vtm_state_transparent()) {
        return;
    }
    /* Threads other modules started before our child_init (mod_http2's
     * workers) may have bound a lazy slot of libapr while it was being
     * patched, writing libc's address over the hook: a second walk puts
     * the hook back (it writes only slots that lost it). */
    if (++vtm_transparent_ticks == 2
        && vt_hook_install(NULL, NULL, &patched) == APR_SUCCESS) {
        ap_log_error(APLOG_MARK, patched ? APLOG_INFO : APLOG_DEBUG, 0,
                     vtm_transparent_server, APLOGNO(10863)
                     "transparent mode: %" APR_SIZE_T_FMT " call slots had "
                     "lost their hook since start-up (bound by the loader "
                     "meanwhile)%s", patched,
                     patched ? ": redirected again" : "");
    }
}

static int vtm_transparent_mpm_query(int query, int *result,
                                     apr_status_t *rv)
{
    if (query != AP_MPMQ_MAX_THREADS || !vtm_transparent_proxy_threads) {
        return DECLINED;
    }
    *result = vtm_transparent_proxy_threads;
    *rv = APR_SUCCESS;
    return OK;
}

void vtm_transparent_register_hooks(void)
{
    /* Just before mod_proxy's child_init, after mod_http2's (which sizes
     * its own workers from the same query), and closed just after. */
    static const char *const before_proxy[] = { "mod_proxy.c", NULL };
    static const char *const after_others[] = { "mod_http2.c", NULL };

    ap_hook_child_init(vtm_transparent_child_init, after_others,
                       before_proxy, APR_HOOK_MIDDLE);
    ap_hook_child_init(vtm_transparent_proxy_done, before_proxy, NULL,
                       APR_HOOK_MIDDLE);
    ap_hook_mpm_query(vtm_transparent_mpm_query, NULL, NULL,
                      APR_HOOK_REALLY_FIRST);
}

/* ?auto key stems, by vt_hook_call_e. */
static const char *const vtm_transparent_keys[VT_HOOK_CALLS] = {
    "Poll", "Select", "EpollWait", "Connect", "Accept", "Read", "Write",
    "Sendfile", "Sleep", "Mutex", "Cond", "Getaddrinfo"
};

void vtm_transparent_status(request_rec *r, int short_form)
{
    vt_hook_call_stats_t st[VT_HOOK_CALLS];
    vt_blockpool_stats_t bp;
    apr_uint64_t calls = 0, parked = 0, pinned = 0;
    int k;

    vt_hook_stats(st);
    vt_blockpool_stats(&bp);
    for (k = 0; k < VT_HOOK_CALLS; k++) {
        calls += st[k].calls;
        parked += st[k].parked;
        pinned += st[k].pinned;
    }
    if (short_form) {
        ap_rprintf(r, "VThreadTransparent: %d\n"
                   "VThreadHookCalls: %" APR_UINT64_T_FMT "\n"
                   "VThreadHookParked: %" APR_UINT64_T_FMT "\n"
                   "VThreadHookPassed: %" APR_UINT64_T_FMT "\n"
                   "VThreadHookPinned: %" APR_UINT64_T_FMT "\n",
                   vtm_state_transparent(), calls, parked,
                   calls - parked, pinned);
        for (k = 0; k < VT_HOOK_CALLS; k++) {
            const char *key = vtm_transparent_keys[k];
            ap_rprintf(r, "VThreadHook%sCalls: %" APR_UINT64_T_FMT "\n"
                       "VThreadHook%sParked: %" APR_UINT64_T_FMT "\n"
                       "VThreadHook%sPinned: %" APR_UINT64_T_FMT "\n",
                       key, st[k].calls, key, st[k].parked, key,
                       st[k].pinned);
        }
        ap_rprintf(r, "VThreadBlockingThreads: %u\n"
                   "VThreadBlockingBusy: %u\n"
                   "VThreadBlockingQueued: %u\n"
                   "VThreadBlockingDone: %" APR_UINT64_T_FMT "\n"
                   "VThreadBlockingRefused: %" APR_UINT64_T_FMT "\n",
                   bp.threads, bp.busy, bp.queued, bp.done, bp.refused);
        return;
    }
    ap_rprintf(r, "<h3>Transparent mode: %s</h3>\n"
               "<dl><dt>%" APR_UINT64_T_FMT " blocking calls made on "
               "fibers: %" APR_UINT64_T_FMT " parked their fiber, %"
               APR_UINT64_T_FMT " blocked their carrier (pinned)</dt>\n"
               "<dt>blocking-call pool: %u threads, %u busy, %u queued, %"
               APR_UINT64_T_FMT " calls made, %" APR_UINT64_T_FMT
               " refused (queue full)</dt></dl>\n",
               vtm_state_transparent() ? "on" : "off (not installed)",
               calls, parked, pinned, bp.threads, bp.busy, bp.queued,
               bp.done, bp.refused);
    ap_rputs("<table border=\"0\"><tr><th>Call</th><th>Calls</th>"
             "<th>Parked</th><th>Pinned</th></tr>\n", r);
    for (k = 0; k < VT_HOOK_CALLS; k++) {
        ap_rprintf(r, "<tr><td>%s</td><td>%" APR_UINT64_T_FMT "</td><td>%"
                   APR_UINT64_T_FMT "</td><td>%" APR_UINT64_T_FMT
                   "</td></tr>\n", vt_hook_call_name(k), st[k].calls,
                   st[k].parked, st[k].pinned);
    }
    ap_rputs("</table>\n", r);
}
