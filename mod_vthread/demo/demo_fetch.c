/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * Fetching from the backend set by VThreadDemoBackend:
 *
 *   vthread-fetch    GET ?path=/...            relay a GET to the backend
 *   vthread-fanout   GET ?a=/...&b=/...        two fetches on two fibers
 *
 * demo_fetch() is a plain HTTP/1.0 client on vthread_socket_connect(),
 * _send() and _recv(): each parks the fiber while the socket is not
 * ready. vthread-fanout spawns one fiber per fetch and joins both; when
 * its own fiber is cancelled first, it cancels them and hands them to a
 * fresh fiber to join and free.
 */

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"

#include "apr_lib.h"
#include "apr_strings.h"

#include <stdlib.h>
#include <string.h>

#include "vthread.h"

#include "demo.h"

#define DEMO_FETCH_MAX         (8 * 1024 * 1024)
#define DEMO_PATH_MAX          2048

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

int demo_fetch_handler(request_rec *r, apr_table_t *args)
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

int demo_fanout(request_rec *r, apr_table_t *args)
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
