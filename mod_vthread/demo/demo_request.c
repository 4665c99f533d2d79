/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * The request helpers that every demo handler uses: the query string
 * (demo_parse_args, demo_arg_int), the answers to a bad request and to a
 * wait that ended early, the allowed methods, and the request body read
 * piece by piece. Nothing here is specific to fibers: the body is read
 * with ap_get_brigade(), which mod_vthread's input filter makes park the
 * fiber instead of blocking its carrier.
 */

#include "httpd.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

#include "apr_buckets.h"
#include "apr_lib.h"
#include "apr_strings.h"

#include <string.h>

#include "demo.h"

#define DEMO_READ_CHUNK        (64 * 1024)

/* Parse the query string into a table. Values are %-decoded; a malformed
 * escape or a decoded NUL makes the whole query bad. */
int demo_parse_args(request_rec *r, apr_table_t **args)
{
    char *copy, *pair, *state = NULL;

    *args = apr_table_make(r->pool, 4);
    if (r->args == NULL) {
        return OK;
    }
    copy = apr_pstrdup(r->pool, r->args);
    for (pair = apr_strtok(copy, "&", &state); pair != NULL;
         pair = apr_strtok(NULL, "&", &state)) {
        char *eq = strchr(pair, '=');
        char *val = "";

        if (eq != NULL) {
            *eq = '\0';
            val = eq + 1;
        }
        if (ap_unescape_urlencoded(pair) != OK
            || ap_unescape_urlencoded(val) != OK) {
            return HTTP_BAD_REQUEST;
        }
        apr_table_set(*args, pair, val);
    }
    return OK;
}

/* Read integer argument @a name in [lo, hi]: plain decimal digits, no sign.
 * Absent gives @a dflt. Returns 0, or -1 if present but bad. */
int demo_arg_int(apr_table_t *args, const char *name, apr_int64_t lo,
                 apr_int64_t hi, apr_int64_t dflt, apr_int64_t *out)
{
    const char *v = apr_table_get(args, name);
    apr_int64_t n = 0;
    int digits = 0;

    if (v == NULL) {
        *out = dflt;
        return 0;
    }
    for (; *v; v++, digits++) {
        if (!apr_isdigit(*v) || digits >= 12) {
            return -1;
        }
        n = n * 10 + (*v - '0');
    }
    if (digits == 0 || n < lo || n > hi) {
        return -1;
    }
    *out = n;
    return 0;
}

int demo_bad_request(request_rec *r, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(10950)
                  "%s: bad request: %s", r->handler, why);
    return HTTP_BAD_REQUEST;
}

/* A wait ended early: the fiber was cancelled (client gone, child
 * stopping). Nobody will read what we answer. */
int demo_aborted(request_rec *r, apr_status_t rv, const char *what)
{
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, APLOGNO(10951)
                  "%s: %s ended early", r->handler, what);
    return HTTP_SERVICE_UNAVAILABLE;
}

/* Allow only the methods in @a mask (bits of AP_METHOD_BIT << M_x);
 * M_GET includes HEAD. */
int demo_check_method(request_rec *r, apr_int64_t mask)
{
    r->allowed |= mask;
    r->allowed_methods->method_mask |= mask;    /* what Allow: lists */
    if ((AP_METHOD_BIT << r->method_number) & mask) {
        return OK;
    }
    return HTTP_METHOD_NOT_ALLOWED;
}

/* Read the whole request body (Content-Length or chunked) and give it to
 * @a fn piece by piece. Returns OK or an HTTP status. */
int demo_read_body(request_rec *r, demo_body_fn fn, void *ctx)
{
    apr_bucket_brigade *bb =
        apr_brigade_create(r->pool, r->connection->bucket_alloc);
    int seen_eos = 0;

    do {
        apr_bucket *b;
        apr_status_t rv = ap_get_brigade(r->input_filters, bb,
                                         AP_MODE_READBYTES, APR_BLOCK_READ,
                                         DEMO_READ_CHUNK);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, APLOGNO(10952)
                          "%s: reading the request body failed", r->handler);
            apr_brigade_destroy(bb);
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
             b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t len;
            int st;

            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            rv = apr_bucket_read(b, &data, &len, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, APLOGNO(10953)
                              "%s: reading a body bucket failed", r->handler);
                apr_brigade_destroy(bb);
                return HTTP_BAD_REQUEST;
            }
            if (len > 0 && (st = fn(ctx, data, len)) != OK) {
                apr_brigade_destroy(bb);
                return st;
            }
        }
        apr_brigade_cleanup(bb);
    } while (!seen_eos);
    apr_brigade_destroy(bb);
    return OK;
}
