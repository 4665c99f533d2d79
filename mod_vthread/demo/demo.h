/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  demo.h
 * @brief What the files of the demo module, mod_vthread_demo.so, share.
 *
 * The demo module is split by handler family, one example per file:
 * demo_sleep.c (vthread-sleep, vthread-echo-id, vthread-cpu: the
 * simplest, read it first), demo_fetch.c (vthread-fetch, vthread-fanout),
 * demo_poll.c (vthread-poll), demo_body.c (vthread-upload, vthread-big),
 * demo_plain.c (vthread-plain: plain APR calls, no mod_vthread API)
 * and demo_unsafe.c (the test-only vthread-recurse and vthread-spin).
 * demo_request.c holds the request helpers they all use, and
 * mod_vthread_demo.c only wires them: directives, the handler table,
 * hooks. Like a third-party module, every file uses httpd's API and
 * include/vthread.h only.
 *
 * Log message numbers, by file (next free: 10965):
 *   10950-10953 demo_request.c       10954-10958 demo_fetch.c
 *   10959-10961, 10963 demo_poll.c   10962 demo_body.c
 *   10964 demo_plain.c
 *   10870-10871 demo_unsafe.c (10870-10879 are kept for the test-only parts)
 */
#ifndef DEMO_H
#define DEMO_H

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"

#include "apr_network_io.h"
#include "apr_tables.h"

/* Declares the module record (mod_vthread_demo.c) and tags every file's
 * log lines with the module, so that "LogLevel vthread_demo:debug"
 * applies to them all. */
APLOG_USE_MODULE(vthread_demo);

/* Everything below is internal to mod_vthread_demo.so: httpd loads
 * modules with global symbol visibility, so only the module record is
 * exported, and these names cannot clash with another module's. */
#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(hidden)
#endif

/** Server config: VThreadDemoBackend and VThreadDemoUnsafe. */
typedef struct {
    const char *backend;          /**< "host:port" as configured, or NULL */
    apr_sockaddr_t *backend_sa;   /**< resolved at configuration time */
    int unsafe;                   /**< VThreadDemoUnsafe: -1 unset, 0, 1 */
} demo_server_conf;

/** Longest sleep a request may ask for (ms=, after=), in milliseconds. */
#define DEMO_SLEEP_MAX_MS      60000

/* ------------------------------------------------------------------ */
/* Request helpers (demo_request.c) */

/**
 * Parse the query string into a table, %-decoded.
 * @return OK, or HTTP_BAD_REQUEST for a malformed escape or a decoded NUL
 */
int demo_parse_args(request_rec *r, apr_table_t **args);

/**
 * Read integer argument @a name in [@a lo, @a hi]: plain decimal digits,
 * no sign. Absent gives @a dflt.
 * @return 0, or -1 if present but bad
 */
int demo_arg_int(apr_table_t *args, const char *name, apr_int64_t lo,
                 apr_int64_t hi, apr_int64_t dflt, apr_int64_t *out);

/** Log @a why (debug) and return HTTP_BAD_REQUEST. */
int demo_bad_request(request_rec *r, const char *why);

/**
 * A wait ended early (@a rv): the fiber was cancelled. Log it (debug) and
 * return HTTP_SERVICE_UNAVAILABLE, which nobody will read.
 */
int demo_aborted(request_rec *r, apr_status_t rv, const char *what);

/** Methods for demo_check_method(); DEMO_GET includes HEAD. */
#define DEMO_GET  (AP_METHOD_BIT << M_GET)
#define DEMO_POST (AP_METHOD_BIT << M_POST)
#define DEMO_PUT  (AP_METHOD_BIT << M_PUT)

/**
 * Allow only the methods in @a mask (DEMO_GET | ...), which also make
 * the Allow header.
 * @return OK or HTTP_METHOD_NOT_ALLOWED
 */
int demo_check_method(request_rec *r, apr_int64_t mask);

/** Called with each piece of a request body; returns OK or an HTTP status
 *  that stops the read. */
typedef int (*demo_body_fn)(void *ctx, const char *data, apr_size_t len);

/**
 * Read the whole request body (Content-Length or chunked) and give it to
 * @a fn piece by piece.
 * @return OK or an HTTP status
 */
int demo_read_body(request_rec *r, demo_body_fn fn, void *ctx);

/* ------------------------------------------------------------------ */
/* Handlers, one file per family */

/**
 * A handler of the table in mod_vthread_demo.c: @a args is the parsed
 * query string. Returns OK or an HTTP status, as a handler hook does.
 */
typedef int (*demo_handler_fn)(request_rec *r, apr_table_t *args);

/* demo_sleep.c */
int demo_sleep(request_rec *r, apr_table_t *args);     /**< vthread-sleep */
int demo_echo_id(request_rec *r, apr_table_t *args);   /**< vthread-echo-id */
int demo_cpu(request_rec *r, apr_table_t *args);       /**< vthread-cpu */

/* demo_fetch.c */
/** vthread-fetch */
int demo_fetch_handler(request_rec *r, apr_table_t *args);
int demo_fanout(request_rec *r, apr_table_t *args);    /**< vthread-fanout */

/* demo_poll.c */
int demo_poll(request_rec *r, apr_table_t *args);      /**< vthread-poll */
/** child_init: create the topic table of vthread-poll. */
void demo_poll_child_init(apr_pool_t *pchild, server_rec *s);

/* demo_body.c */
int demo_upload(request_rec *r, apr_table_t *args);    /**< vthread-upload */
int demo_big(request_rec *r, apr_table_t *args);       /**< vthread-big */
/** post_config: the CRC-32 table and vthread-big's body. */
void demo_body_init(void);

/* demo_plain.c */
int demo_plain(request_rec *r, apr_table_t *args);     /**< vthread-plain */

/* demo_unsafe.c: TEST ONLY, 403 unless VThreadDemoUnsafe On */
int demo_recurse(request_rec *r, apr_table_t *args);   /**< vthread-recurse */
int demo_spin(request_rec *r, apr_table_t *args);      /**< vthread-spin */

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#endif /* DEMO_H */
