/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * TEST ONLY: never copy these handlers into a real module.
 *
 *   vthread-recurse  GET [?depth=N]            overflow the stack
 *   vthread-spin     GET ?ms=N[&after=M]       hold the carrier
 *
 * vthread-recurse recurses with an 8 KiB stack frame per level, depth
 * times (default: until it overflows, which on a fiber hits the guard
 * page below the stack and kills the child process). It exists so that
 * the reliability tests can check the stack overflow report and the MPM
 * replacing the child. vthread-spin holds the CPU for ms milliseconds (at
 * most 10000) without ever calling the vthread API, so that on a fiber it
 * pins its carrier for that long (vthread-cpu is capped at about 0.1 s of
 * work); with after=M it first sleeps M milliseconds (vthread_sleep), so a
 * test can pin a carrier at a chosen moment. Both answer 403 unless the
 * server config says "VThreadDemoUnsafe On" (default Off): never set that
 * on a server anybody else can reach.
 */

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"

#include "apr_tables.h"

#include "vthread.h"

#include "demo.h"

/* ------------------------------------------------------------------ */
/* vthread-recurse (test only: VThreadDemoUnsafe On)
 *
 * Each level has an 8 KiB frame and writes to every 1 KiB of it from the
 * top down, so the recursion meets the guard page below a fiber's stack
 * instead of jumping over it (a frame bigger than the guard page that
 * touched only its lowest byte could land in whatever is mapped below). */

#define DEMO_RECURSE_FRAME     (8 * 1024)
#define DEMO_RECURSE_MAX       1000000

static apr_int64_t demo_recurse_level(apr_int64_t depth, apr_int64_t max)
{
    volatile char frame[DEMO_RECURSE_FRAME];
    apr_int64_t i, below;

    for (i = DEMO_RECURSE_FRAME - 1; i >= 0; i -= 1024) {
        frame[i] = (char)(depth + i);
    }
    frame[0] = (char)depth;
    if (depth >= max) {
        return frame[0] + frame[DEMO_RECURSE_FRAME - 1];
    }
    below = demo_recurse_level(depth + 1, max);
    /* Used after the call: no tail call, the frame stays live. */
    return below + frame[0] + frame[DEMO_RECURSE_FRAME / 2];
}

/* The test-only handlers answer 403 unless VThreadDemoUnsafe is On. */
static int demo_check_unsafe(request_rec *r)
{
    const demo_server_conf *sc =
        ap_get_module_config(r->server->module_config, &vthread_demo_module);

    if (sc->unsafe != 1) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(10870)
                      "%s: refused: test-only handler, enabled by "
                      "VThreadDemoUnsafe On", r->handler);
        return HTTP_FORBIDDEN;
    }
    return OK;
}

int demo_recurse(request_rec *r, apr_table_t *args)
{
    apr_int64_t depth, sum;
    int st;

    if ((st = demo_check_method(r, DEMO_GET)) != OK
        || (st = demo_check_unsafe(r)) != OK) {
        return st;
    }
    if (demo_arg_int(args, "depth", 1, DEMO_RECURSE_MAX, DEMO_RECURSE_MAX,
                     &depth) != 0) {
        return demo_bad_request(r, "depth must be 1..1000000");
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(10871)
                  "%s: recursing %" APR_INT64_T_FMT " levels of %d bytes "
                  "on %s", r->handler, depth, DEMO_RECURSE_FRAME,
                  vthread_on_fiber() ? "a fiber" : "an MPM worker");
    sum = demo_recurse_level(1, depth);
    ap_set_content_type(r, "text/plain");
    ap_rprintf(r, "depth=%" APR_INT64_T_FMT " sum=%" APR_INT64_T_FMT "\n",
               depth, sum);
    return OK;
}

/* ------------------------------------------------------------------ */
/* vthread-spin (test only: VThreadDemoUnsafe On) */

#define DEMO_SPIN_MAX_MS       10000

int demo_spin(request_rec *r, apr_table_t *args)
{
    apr_int64_t ms, after, rounds = 0;
    apr_time_t until;
    apr_status_t rv;
    volatile apr_uint64_t sink = 0;
    int st;

    if ((st = demo_check_method(r, DEMO_GET)) != OK
        || (st = demo_check_unsafe(r)) != OK) {
        return st;
    }
    if (demo_arg_int(args, "ms", 0, DEMO_SPIN_MAX_MS, 100, &ms) != 0) {
        return demo_bad_request(r, "ms must be 0..10000");
    }
    if (demo_arg_int(args, "after", 0, DEMO_SLEEP_MAX_MS, 0, &after) != 0) {
        return demo_bad_request(r, "after must be 0..60000");
    }
    if (after > 0
        && (rv = vthread_sleep(apr_time_from_msec(after))) != APR_SUCCESS) {
        return demo_aborted(r, rv, "sleep");
    }
    /* Never waits, never yields: a carrier held for ms milliseconds. */
    until = apr_time_now() + apr_time_from_msec(ms);
    while (apr_time_now() < until) {
        int k;

        for (k = 0; k < 1000; k++) {
            sink = sink * 6364136223846793005ULL + 1442695040888963407ULL;
        }
        rounds++;
    }
    ap_set_content_type(r, "text/plain");
    ap_rprintf(r, "spun %" APR_INT64_T_FMT " ms (%" APR_INT64_T_FMT
               " rounds)\n", ms, rounds);
    return OK;
}
