/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * Request and response bodies:
 *
 *   vthread-upload   POST|PUT                  count and CRC-32 the body
 *   vthread-big      GET ?kb=N[&chunked=1]     N KiB of a fixed pattern
 *
 * The body is read with ap_get_brigade() and written with
 * ap_pass_brigade(), as in any handler: on a fiber, mod_vthread's filters
 * park it while the client is slow instead of blocking its carrier.
 */

#include "httpd.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

#include "apr_buckets.h"
#include "apr_strings.h"

#include "demo.h"

#define DEMO_BIG_MAX_KB        (1024 * 1024)
#define DEMO_BIG_CHUNK         (64 * 1024)

/* ------------------------------------------------------------------ */
/* vthread-upload */

static apr_uint32_t demo_crc_table[256];

static void demo_crc_init(void)
{
    apr_uint32_t i, k, c;

    for (i = 0; i < 256; i++) {
        for (c = i, k = 0; k < 8; k++) {
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        }
        demo_crc_table[i] = c;
    }
}

typedef struct {
    apr_off_t bytes;
    apr_uint32_t crc;       /* running, pre-inverted */
} demo_count_t;

static int demo_count(void *ctx, const char *data, apr_size_t len)
{
    demo_count_t *c = ctx;
    const unsigned char *s = (const unsigned char *)data;
    apr_uint32_t crc = c->crc;
    apr_size_t i;

    for (i = 0; i < len; i++) {
        crc = demo_crc_table[(crc ^ s[i]) & 0xff] ^ (crc >> 8);
    }
    c->crc = crc;
    c->bytes += (apr_off_t)len;
    return OK;
}

int demo_upload(request_rec *r, apr_table_t *args)
{
    demo_count_t count = { 0, 0xffffffffu };
    int st;
    (void)args;

    if ((st = demo_check_method(r, DEMO_POST | DEMO_PUT)) != OK) {
        return st;
    }
    if ((st = demo_read_body(r, demo_count, &count)) != OK) {
        return st;
    }
    ap_set_content_type(r, "text/plain");
    ap_rprintf(r, "bytes=%" APR_OFF_T_FMT " crc32=%08x\n", count.bytes,
               (unsigned)(count.crc ^ 0xffffffffu));
    return OK;
}

/* ------------------------------------------------------------------ */
/* vthread-big
 *
 * Byte i of the body is '\n' if i % 64 == 63, else 'a' + (i % 64) % 26.
 * The body depends on kb only, so it has a strong ETag and a fixed
 * Last-Modified, and conditional requests get a 304 from here. */

static char demo_pattern[DEMO_BIG_CHUNK];
static apr_time_t demo_big_mtime;

static void demo_pattern_init(void)
{
    apr_size_t i;

    for (i = 0; i < sizeof(demo_pattern); i++) {
        demo_pattern[i] = (i % 64 == 63) ? '\n' : (char)('a' + (i % 64) % 26);
    }
}

int demo_big(request_rec *r, apr_table_t *args)
{
    apr_int64_t kb, chunked;
    apr_off_t left;
    apr_bucket_brigade *bb;
    conn_rec *c = r->connection;
    int st;

    if ((st = demo_check_method(r, DEMO_GET)) != OK) {
        return st;
    }
    if (demo_arg_int(args, "kb", 0, DEMO_BIG_MAX_KB, 1, &kb) != 0) {
        return demo_bad_request(r, "kb must be 0..1048576");
    }
    if (demo_arg_int(args, "chunked", 0, 1, 0, &chunked) != 0) {
        return demo_bad_request(r, "chunked must be 0 or 1");
    }
    ap_set_content_type(r, "text/plain");
    apr_table_setn(r->headers_out, "ETag",
                   apr_psprintf(r->pool, "\"big-%" APR_INT64_T_FMT "\"", kb));
    ap_update_mtime(r, demo_big_mtime);
    ap_set_last_modified(r);
    if ((st = ap_meets_conditions(r)) != OK) {
        return st;
    }
    left = (apr_off_t)kb * 1024;
    if (!chunked) {
        ap_set_content_length(r, left);
    }
    if (r->header_only) {
        return OK;
    }
    bb = apr_brigade_create(r->pool, c->bucket_alloc);
    while (left > 0) {
        apr_size_t n = left > DEMO_BIG_CHUNK ? DEMO_BIG_CHUNK
                                             : (apr_size_t)left;
        apr_status_t rv;

        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_immortal_create(
                                        demo_pattern, n, c->bucket_alloc));
        if (chunked) {
            APR_BRIGADE_INSERT_TAIL(bb,
                                    apr_bucket_flush_create(c->bucket_alloc));
        }
        rv = ap_pass_brigade(r->output_filters, bb);
        apr_brigade_cleanup(bb);
        if (rv != APR_SUCCESS || c->aborted) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, APLOGNO(10962)
                          "%s: client went away with %" APR_OFF_T_FMT
                          " bytes unsent", r->handler, left);
            return AP_FILTER_ERROR;
        }
        left -= (apr_off_t)n;
    }
    apr_brigade_destroy(bb);
    return OK;
}

/* post_config: the CRC table, vthread-big's body and its Last-Modified. */
void demo_body_init(void)
{
    demo_crc_init();
    demo_pattern_init();
    demo_big_mtime = apr_time_sec(apr_time_now()) * APR_USEC_PER_SEC;
}
