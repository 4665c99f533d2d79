/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * The simplest handlers: read this file first.
 *
 *   vthread-sleep    GET ?ms=N                 sleep, answer "slept N ms"
 *   vthread-echo-id  GET [?ms=N]               answer X-Request-Id
 *   vthread-cpu      GET ?n=N                  N rounds of hashing
 *
 * Each is a plain blocking-style handler: vthread_sleep() parks the fiber
 * where the location offloads it (VThreadHandler On) and blocks the MPM
 * worker elsewhere, like apr_sleep(). It fails only when the fiber was
 * cancelled (the client went away, the child is stopping): then unwind
 * and return. vthread-cpu never waits, so on a fiber it holds its carrier
 * for as long as it computes.
 */

#include "httpd.h"
#include "http_protocol.h"

#include "apr_tables.h"

#include "vthread.h"

#include "demo.h"

#define DEMO_SLEEP_DEFAULT_MS  100
#define DEMO_CPU_MAX           10000000
#define DEMO_CPU_DEFAULT       1000

/* ------------------------------------------------------------------ */
/* vthread-sleep */

int demo_sleep(request_rec *r, apr_table_t *args)
{
    apr_int64_t ms;
    apr_status_t rv;
    int st;

    if ((st = demo_check_method(r, DEMO_GET)) != OK) {
        return st;
    }
    if (demo_arg_int(args, "ms", 0, DEMO_SLEEP_MAX_MS, DEMO_SLEEP_DEFAULT_MS,
                     &ms) != 0) {
        return demo_bad_request(r, "ms must be 0..60000");
    }
    rv = vthread_sleep(apr_time_from_msec(ms));
    if (rv != APR_SUCCESS) {
        return demo_aborted(r, rv, "sleep");
    }
    ap_set_content_type(r, "text/plain");
    ap_rprintf(r, "slept %" APR_INT64_T_FMT " ms\n", ms);
    return OK;
}

/* ------------------------------------------------------------------ */
/* vthread-echo-id */

int demo_echo_id(request_rec *r, apr_table_t *args)
{
    const char *id = apr_table_get(r->headers_in, "X-Request-Id");
    apr_int64_t ms;
    apr_status_t rv;
    int st;

    if ((st = demo_check_method(r, DEMO_GET)) != OK) {
        return st;
    }
    if (demo_arg_int(args, "ms", 0, DEMO_SLEEP_MAX_MS, 0, &ms) != 0) {
        return demo_bad_request(r, "ms must be 0..60000");
    }
    if (id == NULL) {
        return demo_bad_request(r, "no X-Request-Id header");
    }
    rv = vthread_sleep(apr_time_from_msec(ms));
    if (rv != APR_SUCCESS) {
        return demo_aborted(r, rv, "sleep");
    }
    ap_set_content_type(r, "text/plain");
    apr_table_setn(r->headers_out, "X-Request-Id", id);
    ap_rvputs(r, id, "\n", NULL);
    return OK;
}

/* ------------------------------------------------------------------ */
/* vthread-cpu */

int demo_cpu(request_rec *r, apr_table_t *args)
{
    apr_int64_t n, i;
    apr_uint64_t h = APR_UINT64_C(0xcbf29ce484222325);
    int st;

    if ((st = demo_check_method(r, DEMO_GET)) != OK) {
        return st;
    }
    if (demo_arg_int(args, "n", 1, DEMO_CPU_MAX, DEMO_CPU_DEFAULT, &n) != 0) {
        return demo_bad_request(r, "n must be 1..10000000");
    }
    /* FNV-1a over the counter's bytes, plus a xorshift: fixed work that
     * never waits, so on a fiber it holds its carrier throughout. */
    for (i = 0; i < n; i++) {
        apr_uint64_t x = (apr_uint64_t)i;
        int k;

        for (k = 0; k < 8; k++) {
            h ^= (x >> (k * 8)) & 0xff;
            h *= APR_UINT64_C(0x100000001b3);
        }
        h ^= h >> 29;
    }
    ap_set_content_type(r, "text/plain");
    ap_rprintf(r, "n=%" APR_INT64_T_FMT " result=%016" APR_UINT64_T_HEX_FMT
               "\n", n, h);
    return OK;
}
