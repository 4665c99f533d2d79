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
 * Files, one handler family each: demo_sleep.c (sleep, echo-id, cpu: the
 * simplest, read it first), demo_fetch.c (fetch, fanout), demo_poll.c
 * (poll), demo_body.c (upload, big), demo_unsafe.c (recurse, spin: test
 * only, never copy them); demo_request.c has the request helpers they
 * share, demo.h what the files share. This file only wires them: the
 * directives, the handler table, the hooks.
 *
 * Test-only handlers (demo_unsafe.c): vthread-recurse overflows its stack,
 * which on a fiber kills the child process; vthread-spin pins its carrier
 * for up to 10 s. Both answer 403 unless the server config says
 * "VThreadDemoUnsafe On" (default Off): never set that on a server
 * anybody else can reach.
 *
 * Log message numbers: APLOGNO(10950) .. APLOGNO(10999), and
 * APLOGNO(10870) .. APLOGNO(10879) for the test-only parts (by file: see
 * demo.h).
 */

#include "httpd.h"
#include "http_config.h"

#include "apr_network_io.h"
#include "apr_strings.h"

#include <string.h>

#include "demo.h"

/* ------------------------------------------------------------------ */
/* Configuration */

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
/* Hooks */

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
    { "vthread-plain",   demo_plain },
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
    demo_body_init();
    return OK;
}

static void demo_child_init(apr_pool_t *pchild, server_rec *s)
{
    demo_poll_child_init(pchild, s);
}

static void demo_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_post_config(demo_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(demo_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(demo_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

/* Not AP_DECLARE_MODULE(), whose APLOG_USE_MODULE() demo.h has said. */
module AP_MODULE_DECLARE_DATA vthread_demo_module = {
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
