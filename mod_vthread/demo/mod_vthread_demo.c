/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * mod_vthread_demo: demo handlers written against include/vthread.h only,
 * as a third-party module would be. Its vthread_* symbols resolve at load
 * time from mod_vthread.so, so "LoadModule vthread_demo_module" must come
 * after "LoadModule vthread_module".
 *
 * Every handler is plain blocking-style code. Where the location offloads
 * it (VThreadHandler On) it runs on a fiber and each wait parks the fiber;
 * elsewhere the same calls block the MPM worker like the APR calls they
 * mirror.
 *
 *   vthread-sleep    GET ?ms=N                 sleep, answer "slept N ms"
 *   vthread-fetch    GET ?path=/...            relay a GET to the backend
 *   vthread-cpu      GET ?n=N                  N rounds of hashing
 *   vthread-poll     GET ?topic=T&timeout=S    wait for the next message
 *                    POST ?topic=T             publish the body to waiters
 *   vthread-fanout   GET ?a=/...&b=/...        two fetches on two fibers
 *   vthread-echo-id  GET [?ms=N]               answer X-Request-Id
 *   vthread-upload   POST|PUT                  count and CRC-32 the body
 *   vthread-big      GET ?kb=N[&chunked=1]     N KiB of a fixed pattern
 *   vthread-recurse  GET [?depth=N]            TEST ONLY, see below
 *   vthread-spin     GET ?ms=N[&after=M]       TEST ONLY, see below
 *
 * Configuration (server config): VThreadDemoBackend host:port
 *
 * Test-only handler: vthread-recurse recurses with an 8 KiB stack frame
 * per level, depth times (default: until it overflows, which on a fiber
 * hits the guard page below the stack and kills the child process). It
 * exists so that the reliability tests can check the stack overflow
 * report and the MPM replacing the child. Test-only handler vthread-spin
 * holds the CPU for ms milliseconds (at most 10000) without ever calling
 * the vthread API, so that on a fiber it pins its carrier for that long
 * (vthread-cpu is capped at about 0.1 s of work); with after=M it first
 * sleeps M milliseconds (vthread_sleep), so a test can pin a carrier at a
 * chosen moment. Both answer 403 unless the server config says
 * "VThreadDemoUnsafe On" (default Off): never set that on a server
 * anybody else can reach.
 *
 * Log message numbers: APLOGNO(10950) .. APLOGNO(10999), and
 * APLOGNO(10870) .. APLOGNO(10879) for the test-only parts.
 */

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

#include "apr_buckets.h"
#include "apr_hash.h"
#include "apr_lib.h"
#include "apr_ring.h"
#include "apr_strings.h"

#include <stdlib.h>
#include <string.h>

#include "vthread.h"

module AP_MODULE_DECLARE_DATA vthread_demo_module;

/* ------------------------------------------------------------------ */
/* Limits */

#define DEMO_SLEEP_MAX_MS      60000
#define DEMO_SLEEP_DEFAULT_MS  100
#define DEMO_CPU_MAX           10000000
#define DEMO_CPU_DEFAULT       1000
#define DEMO_POLL_MAX_S        300
#define DEMO_POLL_DEFAULT_S    30
#define DEMO_POLL_BODY_MAX     (64 * 1024)
#define DEMO_POLL_TOPICS_MAX   10000
#define DEMO_TOPIC_NAME_MAX    64
#define DEMO_FETCH_MAX         (8 * 1024 * 1024)
#define DEMO_PATH_MAX          2048
#define DEMO_BIG_MAX_KB        (1024 * 1024)
#define DEMO_BIG_CHUNK         (64 * 1024)
#define DEMO_READ_CHUNK        (64 * 1024)

/* ------------------------------------------------------------------ */
/* Configuration */

typedef struct {
    const char *backend;          /* "host:port" as configured, or NULL */
    apr_sockaddr_t *backend_sa;   /* resolved at configuration time */
    int unsafe;                   /* VThreadDemoUnsafe: -1 unset, 0, 1 */
} demo_server_conf;

static void *demo_create_server_conf(apr_pool_t *p, server_rec *s)
{
    demo_server_conf *conf = apr_pcalloc(p, sizeof(demo_server_conf));

    (void)s;
    conf->unsafe = -1;
    return conf;
}

static void *demo_merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    demo_server_conf *base = basev, *add = addv;
    demo_server_conf *conf = apr_pcalloc(p, sizeof(*conf));

    *conf = add->backend ? *add : *base;
    conf->unsafe = add->unsafe >= 0 ? add->unsafe : base->unsafe;
    return conf;
}

static const char *demo_set_backend(cmd_parms *cmd, void *dummy,
                                    const char *arg)
{
    demo_server_conf *conf =
        ap_get_module_config(cmd->server->module_config,
                             &vthread_demo_module);
    char *host = NULL, *scope = NULL;
    apr_port_t port = 0;
    apr_status_t rv;
    (void)dummy;

    rv = apr_parse_addr_port(&host, &scope, &port, arg, cmd->pool);
    if (rv != APR_SUCCESS || host == NULL || port == 0 || scope != NULL) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not host:port with a "
                            "port from 1 to 65535", cmd->cmd->name, arg);
    }
    rv = apr_sockaddr_info_get(&conf->backend_sa, host, APR_UNSPEC, port, 0,
                               cmd->pool);
    if (rv != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "%s: cannot resolve '%s'",
                            cmd->cmd->name, host);
    }
    conf->backend = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static const char *demo_set_unsafe(cmd_parms *cmd, void *dummy, int on)
{
    demo_server_conf *conf =
        ap_get_module_config(cmd->server->module_config,
                             &vthread_demo_module);
    (void)dummy;

    conf->unsafe = on ? 1 : 0;
    return NULL;
}

static const command_rec demo_cmds[] = {
    AP_INIT_TAKE1("VThreadDemoBackend", demo_set_backend, NULL, RSRC_CONF,
                  "host:port of the HTTP server that vthread-fetch and "
                  "vthread-fanout GET from"),
    AP_INIT_FLAG("VThreadDemoUnsafe", demo_set_unsafe, NULL, RSRC_CONF,
                 "On enables the test-only handlers vthread-recurse, which "
                 "overflows its stack and kills the child, and vthread-spin,"
                 " which pins its carrier (default Off)"),
    { NULL }
};

/* ------------------------------------------------------------------ */
/* Small helpers */

/* Parse the query string into a table. Values are %-decoded; a malformed
 * escape or a decoded NUL makes the whole query bad. */
static int demo_parse_args(request_rec *r, apr_table_t **args)
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
static int demo_arg_int(apr_table_t *args, const char *name, apr_int64_t lo,
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

static int demo_bad_request(request_rec *r, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(10950)
                  "%s: bad request: %s", r->handler, why);
    return HTTP_BAD_REQUEST;
}

/* A wait ended early: the fiber was cancelled (client gone, child
 * stopping). Nobody will read what we answer. */
static int demo_aborted(request_rec *r, apr_status_t rv, const char *what)
{
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, APLOGNO(10951)
                  "%s: %s ended early", r->handler, what);
    return HTTP_SERVICE_UNAVAILABLE;
}

/* Allow only the methods in @a mask (bits of AP_METHOD_BIT << M_x);
 * M_GET includes HEAD. */
static int demo_check_method(request_rec *r, apr_int64_t mask)
{
    r->allowed |= mask;
    r->allowed_methods->method_mask |= mask;    /* what Allow: lists */
    if ((AP_METHOD_BIT << r->method_number) & mask) {
        return OK;
    }
    return HTTP_METHOD_NOT_ALLOWED;
}

#define DEMO_GET  (AP_METHOD_BIT << M_GET)
#define DEMO_POST (AP_METHOD_BIT << M_POST)
#define DEMO_PUT  (AP_METHOD_BIT << M_PUT)

/* Called with each piece of a request body; returns OK or an HTTP status
 * that stops the read. */
typedef int (*demo_body_fn)(void *ctx, const char *data, apr_size_t len);

/* Read the whole request body (Content-Length or chunked) and give it to
 * @a fn piece by piece. Returns OK or an HTTP status. */
static int demo_read_body(request_rec *r, demo_body_fn fn, void *ctx)
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

/* ------------------------------------------------------------------ */
/* vthread-sleep */

static int demo_sleep(request_rec *r, apr_table_t *args)
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

static int demo_echo_id(request_rec *r, apr_table_t *args)
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

static int demo_cpu(request_rec *r, apr_table_t *args)
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

/* ------------------------------------------------------------------ */
/* Fetching from the backend (vthread-fetch, vthread-fanout) */

typedef struct {
    int status;             /* backend's status, or 502/504 of our own */
    const char *ctype;      /* backend's Content-Type, or NULL */
    const char *body;
    apr_size_t len;
    const char *why;        /* what went wrong, when status is our own */
    apr_status_t rv;        /* the APR status behind @a why */
} demo_fetch_t;

/* A path to put on a request line: absolute, printable, no spaces. */
static int demo_path_ok(const char *path)
{
    const unsigned char *s = (const unsigned char *)path;
    apr_size_t n = 0;

    if (*s != '/') {
        return 0;
    }
    for (; *s; s++, n++) {
        if (*s <= 0x20 || *s >= 0x7f || n >= DEMO_PATH_MAX) {
            return 0;
        }
    }
    return 1;
}

static void demo_fetch_fail(demo_fetch_t *out, apr_status_t rv,
                            const char *why)
{
    out->status = APR_STATUS_IS_TIMEUP(rv) ? HTTP_GATEWAY_TIME_OUT
                                           : HTTP_BAD_GATEWAY;
    out->rv = rv;
    out->why = why;
}

/* Split a complete HTTP/1.x response held in @a buf into @a out. */
static void demo_fetch_parse(apr_pool_t *p, char *buf, apr_size_t len,
                             demo_fetch_t *out)
{
    char *end = NULL, *line, *next;
    apr_size_t hlen;
    int status;

    for (hlen = 0; hlen + 1 < len; hlen++) {
        if (buf[hlen] == '\n'
            && (buf[hlen + 1] == '\n'
                || (buf[hlen + 1] == '\r' && hlen + 2 < len
                    && buf[hlen + 2] == '\n'))) {
            end = buf + hlen;
            break;
        }
    }
    if (end == NULL || len < 12 || strncmp(buf, "HTTP/1.", 7) != 0
        || buf[8] != ' ' || !apr_isdigit(buf[9]) || !apr_isdigit(buf[10])
        || !apr_isdigit(buf[11]) || (len > 12 && buf[12] != ' '
                                     && buf[12] != '\r' && buf[12] != '\n')) {
        demo_fetch_fail(out, APR_EGENERAL, "malformed backend response");
        return;
    }
    status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    if (status < 200 || status > 599) {
        demo_fetch_fail(out, APR_EGENERAL, "unexpected backend status");
        return;
    }
    out->status = status;
    out->body = end + (end[1] == '\n' ? 2 : 3);
    out->len = len - (apr_size_t)(out->body - buf);
    *end = '\0';
    for (line = strchr(buf, '\n'); line != NULL; line = next) {
        char *colon;

        line++;
        next = strchr(line, '\n');
        if (next != NULL) {
            *next = '\0';
        }
        colon = strchr(line, ':');
        if (colon != NULL && colon - line == 12
            && strncasecmp(line, "Content-Type", 12) == 0) {
            char *v = colon + 1, *e, *c;

            while (*v == ' ' || *v == '\t') {
                v++;
            }
            for (e = v + strlen(v); e > v && apr_isspace(e[-1]); e--) {
            }
            /* Relayed to our client: httpd would refuse a control
             * character in it with a 500 (AH02430); the backend is at
             * fault, so 502. */
            for (c = v; c < e; c++) {
                if (apr_iscntrl(*c) && *c != '\t') {
                    out->ctype = NULL;
                    demo_fetch_fail(out, APR_EGENERAL,
                                    "control character in the backend's "
                                    "Content-Type");
                    return;
                }
            }
            if (e > v) {
                out->ctype = apr_pstrmemdup(p, v, (apr_size_t)(e - v));
            }
        }
    }
}

/* Connect to the backend, trying each of its addresses in turn. */
static apr_status_t demo_connect(apr_pool_t *p, const demo_server_conf *sc,
                                 apr_interval_time_t timeout,
                                 apr_socket_t **out)
{
    apr_sockaddr_t *sa;
    apr_status_t rv = APR_EINVAL;

    for (sa = sc->backend_sa; sa != NULL; sa = sa->next) {
        apr_socket_t *sock;

        rv = apr_socket_create(&sock, sa->family, SOCK_STREAM,
                               APR_PROTO_TCP, p);
        if (rv != APR_SUCCESS) {
            continue;
        }
        apr_socket_timeout_set(sock, timeout);
        rv = vthread_socket_connect(sock, sa);
        if (rv == APR_SUCCESS) {
            *out = sock;
            return APR_SUCCESS;
        }
        apr_socket_close(sock);
        if (APR_STATUS_IS_ECONNABORTED(rv)) {
            break;              /* cancelled: do not try the others */
        }
    }
    return rv;
}

/* GET @a path from the configured backend over HTTP/1.0, reading to EOF.
 * Allocates from @a p only, so it may run on any fiber or thread that
 * owns @a p. */
static void demo_fetch(apr_pool_t *p, const demo_server_conf *sc,
                       const char *path, apr_interval_time_t timeout,
                       demo_fetch_t *out)
{
    apr_socket_t *sock;
    const char *req;
    apr_size_t cap = 16384, len = 0, sent = 0, reqlen;
    char *buf;
    apr_status_t rv;

    memset(out, 0, sizeof(*out));
    if ((rv = demo_connect(p, sc, timeout, &sock)) != APR_SUCCESS) {
        demo_fetch_fail(out, rv, "cannot connect to the backend");
        return;
    }
    req = apr_pstrcat(p, "GET ", path, " HTTP/1.0\r\nHost: ", sc->backend,
                      "\r\nUser-Agent: mod_vthread_demo\r\n"
                      "Connection: close\r\n\r\n", NULL);
    reqlen = strlen(req);
    while (sent < reqlen) {
        apr_size_t n = reqlen - sent;

        rv = vthread_socket_send(sock, req + sent, &n);
        if (rv != APR_SUCCESS) {
            apr_socket_close(sock);
            demo_fetch_fail(out, rv, "cannot send to the backend");
            return;
        }
        sent += n;
    }
    buf = apr_palloc(p, cap + 1);
    for (;;) {
        apr_size_t n;

        if (len == cap) {
            char *bigger;

            if (cap >= DEMO_FETCH_MAX) {
                apr_socket_close(sock);
                demo_fetch_fail(out, APR_ENOSPC,
                                "backend response over 8 MiB");
                return;
            }
            bigger = apr_palloc(p, cap * 2 + 1);
            memcpy(bigger, buf, len);
            buf = bigger;
            cap *= 2;
        }
        n = cap - len;
        rv = vthread_socket_recv(sock, buf + len, &n);
        len += n;
        if (APR_STATUS_IS_EOF(rv)) {
            break;
        }
        if (rv != APR_SUCCESS) {
            apr_socket_close(sock);
            demo_fetch_fail(out, rv, "cannot read from the backend");
            return;
        }
    }
    apr_socket_close(sock);
    buf[len] = '\0';
    demo_fetch_parse(p, buf, len, out);
}

static const demo_server_conf *demo_backend(request_rec *r)
{
    const demo_server_conf *sc =
        ap_get_module_config(r->server->module_config, &vthread_demo_module);

    if (sc->backend == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, APLOGNO(10954)
                      "%s: no VThreadDemoBackend configured for this server",
                      r->handler);
        return NULL;
    }
    return sc;
}

static void demo_log_fetch_failure(request_rec *r, const char *path,
                                   const demo_fetch_t *f)
{
    /* A fetch cut short because the client left or the child stops is
     * not the backend's fault: info, not warn. */
    int level = vthread_cancelled() ? APLOG_INFO : APLOG_WARNING;

    ap_log_rerror(APLOG_MARK, level, f->rv, r, APLOGNO(10955)
                  "%s: GET %s from %s: %s", r->handler, path,
                  ((demo_server_conf *)ap_get_module_config(
                      r->server->module_config,
                      &vthread_demo_module))->backend, f->why);
}

static int demo_fetch_handler(request_rec *r, apr_table_t *args)
{
    const demo_server_conf *sc;
    const char *path = apr_table_get(args, "path");
    demo_fetch_t f;
    int st;

    if ((st = demo_check_method(r, DEMO_GET)) != OK) {
        return st;
    }
    if (path == NULL) {
        path = "/";
    }
    if (!demo_path_ok(path)) {
        return demo_bad_request(r, "path must be /... without spaces");
    }
    if ((sc = demo_backend(r)) == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    demo_fetch(r->pool, sc, path, r->server->timeout, &f);
    if (f.why != NULL) {
        demo_log_fetch_failure(r, path, &f);
        return f.status;
    }
    r->status = f.status;
    ap_set_content_type(r, f.ctype ? f.ctype : "application/octet-stream");
    ap_set_content_length(r, (apr_off_t)f.len);
    if (!r->header_only && f.len > 0) {
        ap_rwrite(f.body, (int)f.len, r);
    }
    return OK;
}

/* ------------------------------------------------------------------ */
/* vthread-fanout */

/* One fetch on its own fiber. It owns its pool (with its own allocator:
 * the two fibers may run on two carriers at once), and whoever joins it
 * destroys that pool. */
typedef struct {
    apr_pool_t *pool;
    const demo_server_conf *sc;
    const char *path;
    apr_interval_time_t timeout;
    vthread_t *thread;      /* NULL until spawned, and once joined */
    demo_fetch_t res;
} demo_job_t;

static apr_status_t demo_job_run(void *arg)
{
    demo_job_t *job = arg;

    demo_fetch(job->pool, job->sc, job->path, job->timeout, &job->res);
    return APR_SUCCESS;
}

static apr_status_t demo_job_destroy(void *arg)
{
    apr_pool_destroy(((demo_job_t *)arg)->pool);
    return APR_SUCCESS;
}

static demo_job_t *demo_job_create(const demo_server_conf *sc,
                                   const char *path,
                                   apr_interval_time_t timeout)
{
    apr_pool_t *p;
    demo_job_t *job;

    if (apr_pool_create_unmanaged_ex(&p, NULL, NULL) != APR_SUCCESS) {
        return NULL;
    }
    job = apr_pcalloc(p, sizeof(*job));
    job->pool = p;
    job->sc = sc;
    job->path = apr_pstrdup(p, path);
    job->timeout = timeout;
    return job;
}

/* Fanout's handler fiber was cancelled before its jobs ended: this fiber
 * joins them instead, then frees them. */
typedef struct {
    demo_job_t *jobs[2];
} demo_reap_t;

static apr_status_t demo_reap(void *arg)
{
    demo_reap_t *reap = arg;
    int i;

    for (i = 0; i < 2; i++) {
        demo_job_t *job = reap->jobs[i];

        if (job == NULL) {
            continue;
        }
        /* Fails only if the runtime stops: then leak, the child exits. */
        if (job->thread == NULL
            || vthread_join(job->thread, -1, NULL) == APR_SUCCESS) {
            demo_job_destroy(job);
        }
    }
    free(reap);
    return APR_SUCCESS;
}

static int demo_fanout(request_rec *r, apr_table_t *args)
{
    const char *paths[2];
    demo_job_t *jobs[2] = { NULL, NULL };
    const demo_server_conf *sc;
    apr_status_t rv = APR_SUCCESS;
    int i, st, spawn_failed = 0;

    if ((st = demo_check_method(r, DEMO_GET)) != OK) {
        return st;
    }
    paths[0] = apr_table_get(args, "a");
    paths[1] = apr_table_get(args, "b");
    for (i = 0; i < 2; i++) {
        if (paths[i] == NULL) {
            paths[i] = "/";
        }
        if (!demo_path_ok(paths[i])) {
            return demo_bad_request(r, "a and b must be /... without spaces");
        }
    }
    if ((sc = demo_backend(r)) == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < 2; i++) {
        jobs[i] = demo_job_create(sc, paths[i], r->server->timeout);
        if (jobs[i] == NULL) {
            spawn_failed = 1;
            rv = APR_ENOMEM;
            break;
        }
        rv = vthread_spawn(&jobs[i]->thread, demo_job_run, jobs[i]);
        if (rv == APR_EINVAL) {
            /* No runtime in this process: do the work here. */
            jobs[i]->thread = NULL;
            demo_job_run(jobs[i]);
            rv = APR_SUCCESS;
        }
        else if (rv != APR_SUCCESS) {
            jobs[i]->thread = NULL;
            spawn_failed = 1;
            break;
        }
    }

    for (i = 0; i < 2; i++) {
        if (jobs[i] == NULL || jobs[i]->thread == NULL) {
            continue;
        }
        rv = vthread_join(jobs[i]->thread, -1, NULL);
        if (rv != APR_SUCCESS) {
            /* We were cancelled: stop the jobs and let a fresh fiber
             * join and free them, as our pool may go before they end. */
            demo_reap_t *reap = malloc(sizeof(*reap));
            int j;

            for (j = 0; j < 2; j++) {
                if (jobs[j] != NULL && jobs[j]->thread != NULL && j >= i) {
                    vthread_cancel(jobs[j]->thread);
                }
            }
            if (reap != NULL) {
                for (j = 0; j < 2; j++) {
                    reap->jobs[j] = (j >= i) ? jobs[j] : NULL;
                }
                if (vthread_spawn(NULL, demo_reap, reap) != APR_SUCCESS) {
                    free(reap);
                    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                                  APLOGNO(10956) "%s: cannot reap "
                                  "cancelled fetches; leaking them",
                                  r->handler);
                }
            }
            for (j = 0; j < i; j++) {
                if (jobs[j] != NULL) {
                    demo_job_destroy(jobs[j]);
                }
            }
            return demo_aborted(r, rv, "join");
        }
        jobs[i]->thread = NULL;
    }

    /* Every job has ended: their pools go with the request's. */
    for (i = 0; i < 2; i++) {
        if (jobs[i] != NULL) {
            apr_pool_cleanup_register(r->pool, jobs[i], demo_job_destroy,
                                      apr_pool_cleanup_null);
        }
    }
    if (spawn_failed) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, APLOGNO(10957)
                      "%s: cannot start a fiber", r->handler);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    for (i = 0; i < 2; i++) {
        if (jobs[i]->res.why != NULL) {
            demo_log_fetch_failure(r, paths[i], &jobs[i]->res);
            return jobs[i]->res.status;
        }
        if (jobs[i]->res.status != HTTP_OK) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(10958)
                          "%s: GET %s from the backend answered %d",
                          r->handler, paths[i], jobs[i]->res.status);
            return HTTP_BAD_GATEWAY;
        }
    }
    ap_set_content_type(r, "application/octet-stream");
    ap_set_content_length(r, (apr_off_t)(jobs[0]->res.len
                                         + jobs[1]->res.len));
    if (!r->header_only) {
        for (i = 0; i < 2; i++) {
            if (jobs[i]->res.len > 0) {
                ap_rwrite(jobs[i]->res.body, (int)jobs[i]->res.len, r);
            }
        }
    }
    return OK;
}

/* ------------------------------------------------------------------ */
/* vthread-poll
 *
 * A process-wide table of topics under one vthread mutex. Each waiter
 * brings its own vthread event and joins its topic's list; a publisher
 * hands the message to every waiter on the list and signals each event.
 * A signal given before its waiter got to wait is kept by the event, so
 * no wake-up is lost between unlocking the mutex and waiting, and every
 * waiter gets exactly the first message published after it began. */

typedef struct {
    apr_size_t refs;        /* one per waiter still to copy it */
    apr_uint64_t seq;
    apr_size_t len;
    char data[];
} demo_msg_t;

typedef struct demo_waiter_t demo_waiter_t;
struct demo_waiter_t {
    APR_RING_ENTRY(demo_waiter_t) link;
    vthread_event_t *ev;
    demo_msg_t *msg;        /* set by the publisher, with a reference */
    int linked;
};

typedef struct {
    apr_uint64_t seq;       /* of the last message published */
    apr_size_t nwaiters;
    APR_RING_HEAD(demo_waiters_t, demo_waiter_t) waiters;
} demo_topic_t;

static struct {
    vthread_mutex_t *mutex;
    apr_pool_t *pool;       /* topics; touched only under the mutex */
    apr_hash_t *topics;
} demo_poll_table;

static int demo_topic_ok(const char *name)
{
    apr_size_t n = 0;

    for (; *name; name++, n++) {
        if (n >= DEMO_TOPIC_NAME_MAX
            || !(apr_isalnum(*name) || *name == '_' || *name == '-')) {
            return 0;
        }
    }
    return n > 0;
}

/* Under the mutex: the topic, created if absent (NULL when full). */
static demo_topic_t *demo_topic_get(const char *name)
{
    demo_topic_t *t = apr_hash_get(demo_poll_table.topics, name,
                                   APR_HASH_KEY_STRING);

    if (t == NULL
        && apr_hash_count(demo_poll_table.topics) < DEMO_POLL_TOPICS_MAX) {
        t = apr_pcalloc(demo_poll_table.pool, sizeof(*t));
        APR_RING_INIT(&t->waiters, demo_waiter_t, link);
        apr_hash_set(demo_poll_table.topics,
                     apr_pstrdup(demo_poll_table.pool, name),
                     APR_HASH_KEY_STRING, t);
    }
    return t;
}

/* Take the mutex even if this fiber is cancelled (then lock() fails at
 * once): a waiter must unlink itself before its memory goes, since a
 * publisher may still write to it. Critical sections never park, so the
 * holder is another thread, or a fiber that only needs this carrier to
 * yield. */
static void demo_poll_lock_always(void)
{
    while (vthread_mutex_lock(demo_poll_table.mutex) != APR_SUCCESS) {
        if (vthread_mutex_trylock(demo_poll_table.mutex) == APR_SUCCESS) {
            return;
        }
        vthread_yield();
    }
}

/* Under the mutex: drop one reference. */
static void demo_msg_release(demo_msg_t *msg)
{
    if (--msg->refs == 0) {
        free(msg);
    }
}

static int demo_poll_wait(request_rec *r, const char *name,
                          apr_int64_t timeout_s)
{
    demo_waiter_t w;
    demo_topic_t *t;
    demo_msg_t *msg;
    char *body = NULL;
    apr_size_t len = 0;
    apr_uint64_t seq = 0;
    apr_status_t rv, wrv;

    memset(&w, 0, sizeof(w));
    if ((rv = vthread_event_create(&w.ev, r->pool)) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if ((rv = vthread_mutex_lock(demo_poll_table.mutex)) != APR_SUCCESS) {
        return demo_aborted(r, rv, "lock");
    }
    if ((t = demo_topic_get(name)) == NULL) {
        vthread_mutex_unlock(demo_poll_table.mutex);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, APLOGNO(10959)
                      "%s: too many topics (%d)", r->handler,
                      DEMO_POLL_TOPICS_MAX);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    APR_RING_INSERT_TAIL(&t->waiters, &w, demo_waiter_t, link);
    w.linked = 1;
    t->nwaiters++;
    vthread_mutex_unlock(demo_poll_table.mutex);

    wrv = vthread_event_wait(w.ev, apr_time_from_sec(timeout_s));

    /* Leave the list whatever happened; a message that arrived meanwhile
     * is ours. */
    demo_poll_lock_always();
    if (w.linked) {
        APR_RING_REMOVE(&w, link);
        w.linked = 0;
        t->nwaiters--;
    }
    msg = w.msg;
    if (msg != NULL) {
        len = msg->len;
        seq = msg->seq;
        body = len ? apr_pmemdup(r->pool, msg->data, len) : "";
        demo_msg_release(msg);
    }
    vthread_mutex_unlock(demo_poll_table.mutex);

    if (msg == NULL) {
        if (wrv != APR_SUCCESS && !APR_STATUS_IS_TIMEUP(wrv)) {
            return demo_aborted(r, wrv, "poll");
        }
        return HTTP_NO_CONTENT;
    }
    ap_set_content_type(r, "application/octet-stream");
    apr_table_setn(r->headers_out, "X-Topic-Seq",
                   apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, seq));
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only && len > 0) {
        ap_rwrite(body, (int)len, r);
    }
    return OK;
}

typedef struct {
    char *buf;
    apr_size_t len;
} demo_collect_t;

static int demo_collect(void *ctx, const char *data, apr_size_t len)
{
    demo_collect_t *c = ctx;

    if (len > DEMO_POLL_BODY_MAX - c->len) {
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    memcpy(c->buf + c->len, data, len);
    c->len += len;
    return OK;
}

static int demo_poll_publish(request_rec *r, const char *name)
{
    demo_collect_t body;
    demo_topic_t *t;
    demo_msg_t *msg;
    apr_size_t woken = 0;
    apr_uint64_t seq;
    apr_status_t rv;
    int st;

    body.buf = apr_palloc(r->pool, DEMO_POLL_BODY_MAX);
    body.len = 0;
    if ((st = demo_read_body(r, demo_collect, &body)) != OK) {
        return st;
    }
    msg = malloc(sizeof(*msg) + body.len);
    if (msg == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    memcpy(msg->data, body.buf, body.len);
    msg->len = body.len;
    msg->refs = 1;

    if ((rv = vthread_mutex_lock(demo_poll_table.mutex)) != APR_SUCCESS) {
        free(msg);
        return demo_aborted(r, rv, "lock");
    }
    if ((t = demo_topic_get(name)) == NULL) {
        vthread_mutex_unlock(demo_poll_table.mutex);
        free(msg);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, APLOGNO(10960)
                      "%s: too many topics (%d)", r->handler,
                      DEMO_POLL_TOPICS_MAX);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    seq = msg->seq = ++t->seq;
    while (!APR_RING_EMPTY(&t->waiters, demo_waiter_t, link)) {
        demo_waiter_t *w = APR_RING_FIRST(&t->waiters);

        APR_RING_REMOVE(w, link);
        w->linked = 0;
        w->msg = msg;
        msg->refs++;
        t->nwaiters--;
        vthread_event_signal(w->ev);
        woken++;
    }
    demo_msg_release(msg);
    vthread_mutex_unlock(demo_poll_table.mutex);

    ap_set_content_type(r, "text/plain");
    apr_table_setn(r->headers_out, "X-Topic-Seq",
                   apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, seq));
    ap_rprintf(r, "woken %" APR_SIZE_T_FMT "\n", woken);
    return OK;
}

static int demo_poll(request_rec *r, apr_table_t *args)
{
    const char *topic = apr_table_get(args, "topic");
    apr_int64_t timeout;
    int st;

    if ((st = demo_check_method(r, DEMO_GET | DEMO_POST)) != OK) {
        return st;
    }
    if (topic == NULL || !demo_topic_ok(topic)) {
        return demo_bad_request(r, "topic must be [A-Za-z0-9_-]{1,64}");
    }
    if (demo_poll_table.mutex == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, APLOGNO(10961)
                      "%s: the topic table was not created", r->handler);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (r->method_number == M_POST) {
        return demo_poll_publish(r, topic);
    }
    if (demo_arg_int(args, "timeout", 1, DEMO_POLL_MAX_S, DEMO_POLL_DEFAULT_S,
                     &timeout) != 0) {
        return demo_bad_request(r, "timeout must be 1..300");
    }
    return demo_poll_wait(r, topic, timeout);
}

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

static int demo_upload(request_rec *r, apr_table_t *args)
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

static int demo_big(request_rec *r, apr_table_t *args)
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

static int demo_recurse(request_rec *r, apr_table_t *args)
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

static int demo_spin(request_rec *r, apr_table_t *args)
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

/* ------------------------------------------------------------------ */
/* Hooks */

typedef int (*demo_handler_fn)(request_rec *r, apr_table_t *args);

static const struct {
    const char *name;
    demo_handler_fn fn;
} demo_handlers[] = {
    { "vthread-sleep",   demo_sleep },
    { "vthread-fetch",   demo_fetch_handler },
    { "vthread-cpu",     demo_cpu },
    { "vthread-poll",    demo_poll },
    { "vthread-fanout",  demo_fanout },
    { "vthread-echo-id", demo_echo_id },
    { "vthread-upload",  demo_upload },
    { "vthread-big",     demo_big },
    { "vthread-recurse", demo_recurse },
    { "vthread-spin",    demo_spin },
};

static int demo_handler(request_rec *r)
{
    apr_size_t i;

    if (r->handler == NULL || strncmp(r->handler, "vthread-", 8) != 0) {
        return DECLINED;
    }
    for (i = 0; i < sizeof(demo_handlers) / sizeof(demo_handlers[0]); i++) {
        if (strcmp(r->handler, demo_handlers[i].name) == 0) {
            apr_table_t *args;

            if (demo_parse_args(r, &args) != OK) {
                return demo_bad_request(r, "malformed query string");
            }
            return demo_handlers[i].fn(r, args);
        }
    }
    return DECLINED;
}

static int demo_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                            apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    (void)ptemp;
    (void)s;
    demo_crc_init();
    demo_pattern_init();
    demo_big_mtime = apr_time_sec(apr_time_now()) * APR_USEC_PER_SEC;
    return OK;
}

static void demo_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_allocator_t *allocator;
    apr_status_t rv;

    /* Topics are allocated from any thread, under our mutex only: give
     * them a pool of their own allocator, freed with the child. */
    rv = apr_allocator_create(&allocator);
    if (rv == APR_SUCCESS) {
        rv = apr_pool_create_ex(&demo_poll_table.pool, pchild, NULL,
                                allocator);
        if (rv == APR_SUCCESS) {
            apr_allocator_owner_set(allocator, demo_poll_table.pool);
        }
        else {
            apr_allocator_destroy(allocator);
        }
    }
    if (rv == APR_SUCCESS) {
        rv = vthread_mutex_create(&demo_poll_table.mutex, pchild);
    }
    if (rv != APR_SUCCESS) {
        demo_poll_table.mutex = NULL;
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, APLOGNO(10963)
                     "cannot create the vthread-poll topic table");
        return;
    }
    demo_poll_table.topics = apr_hash_make(demo_poll_table.pool);
}

static void demo_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_post_config(demo_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(demo_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(demo_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(vthread_demo) = {
    STANDARD20_MODULE_STUFF,
    NULL,                       /* create per-directory config */
    NULL,                       /* merge per-directory config */
    demo_create_server_conf,    /* create per-server config */
    demo_merge_server_conf,     /* merge per-server config */
    demo_cmds,                  /* directives */
    demo_register_hooks,        /* register hooks */
#ifdef AP_MODULE_FLAG_NONE
    AP_MODULE_FLAG_NONE         /* flags */
#endif
};
