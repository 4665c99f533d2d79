/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * A handler that knows nothing of mod_vthread: plain APR calls only.
 *
 *   vthread-plain    GET ?ms=N                 apr_sleep(), "plain slept N ms"
 *                    GET ?path=/...[&blocking=1]
 *                                              GET from VThreadDemoBackend
 *                                              with apr_socket_*, relay
 *                                              the backend's body
 *
 * Written as any existing module is. Where its location offloads it and
 * VThreadTransparent is On (the default), apr_sleep() and the socket
 * calls park the fiber, not the carrier: transparent mode. With
 * blocking=1 the socket keeps APR's default timeout (-1: a blocking fd),
 * the case where the hooks themselves wait for readiness.
 */

#include "httpd.h"
#include "http_log.h"
#include "http_protocol.h"

#include "apr_strings.h"

#include <string.h>

#include "demo.h"

#define DEMO_PLAIN_MAX (1024 * 1024)

/* GET @a path from the backend over HTTP/1.0 with plain APR calls; the
 * response's body in *@a body. @return APR_SUCCESS or why not */
static apr_status_t demo_plain_get(request_rec *r,
                                   const demo_server_conf *sc,
                                   const char *path, int blocking,
                                   const char **body, apr_size_t *len)
{
    apr_socket_t *sock;
    apr_size_t cap = 16384, got = 0, n;
    const char *req;
    char *buf, *end;
    apr_status_t rv;

    rv = apr_socket_create(&sock, sc->backend_sa->family, SOCK_STREAM,
                           APR_PROTO_TCP, r->pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!blocking) {
        apr_socket_timeout_set(sock, r->server->timeout);
    }
    rv = apr_socket_connect(sock, sc->backend_sa);
    req = apr_pstrcat(r->pool, "GET ", path, " HTTP/1.0\r\nHost: ",
                      sc->backend, "\r\n\r\n", NULL);
    n = strlen(req);
    if (rv == APR_SUCCESS) {
        rv = apr_socket_send(sock, req, &n);
    }
    buf = apr_palloc(r->pool, cap + 1);
    while (rv == APR_SUCCESS) {
        if (got == cap) {
            char *bigger;
            if (cap >= DEMO_PLAIN_MAX) {
                rv = APR_ENOSPC;
                break;
            }
            bigger = apr_palloc(r->pool, 2 * cap + 1);
            memcpy(bigger, buf, got);
            buf = bigger;
            cap *= 2;
        }
        n = cap - got;
        rv = apr_socket_recv(sock, buf + got, &n);
        got += n;
    }
    apr_socket_close(sock);
    if (!APR_STATUS_IS_EOF(rv)) {
        return rv;
    }
    buf[got] = '\0';
    end = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.", 7) != 0 || end == NULL) {
        return APR_EGENERAL;
    }
    *body = end + 4;
    *len = got - (apr_size_t)(end + 4 - buf);
    return APR_SUCCESS;
}

int demo_plain(request_rec *r, apr_table_t *args)
{
    const demo_server_conf *sc =
        ap_get_module_config(r->server->module_config, &vthread_demo_module);
    const char *path = apr_table_get(args, "path");
    const char *body;
    apr_size_t len;
    apr_int64_t ms, blocking;
    apr_status_t rv;
    int st;

    if ((st = demo_check_method(r, DEMO_GET)) != OK) {
        return st;
    }
    if (demo_arg_int(args, "ms", 0, DEMO_SLEEP_MAX_MS, 0, &ms) != 0
        || demo_arg_int(args, "blocking", 0, 1, 0, &blocking) != 0) {
        return demo_bad_request(r, "ms must be 0..60000, blocking 0 or 1");
    }
    ap_set_content_type(r, "text/plain");
    if (path == NULL) {
        apr_sleep(apr_time_from_msec(ms));
        ap_rprintf(r, "plain slept %" APR_INT64_T_FMT " ms\n", ms);
        return OK;
    }
    if (path[0] != '/' || strpbrk(path, " \r\n")) {
        return demo_bad_request(r, "path must be /... without spaces");
    }
    if (sc->backend == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rv = demo_plain_get(r, sc, path, (int)blocking, &body, &len);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, APLOGNO(10964)
                      "vthread-plain: GET %s from %s failed", path,
                      sc->backend);
        return HTTP_BAD_GATEWAY;
    }
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only && len > 0) {
        ap_rwrite(body, (int)len, r);
    }
    return OK;
}
