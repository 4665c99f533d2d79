/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * mod_vthread's state of a connection (vtm_conn_t, vtm_glue.h): found in
 * c->conn_config, created in c->pool the first time a request of the
 * connection is offloaded, and handed to a fiber when one takes the
 * connection over. The handler, the lifecycle, the filters, the borrow
 * and the scoreboard all reach the connection through it.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <apr_atomic.h>

#include "vtm_glue.h"
#include "vtm_conn.h"

#include <unistd.h>

/* The next c->id this child gives a connection it takes over. */
static apr_uint32_t vtm_conn_next_id;

/* httpd.h promises that c->id is "unique at any point in time", and
 * modules rely on it: mod_cgid (without fd passing) keys its CGI
 * processes by (parent pid, c->id) in its daemon and, when a request
 * ends, kills the process that key names. The MPM derives the id from
 * the worker thread that accepted the connection, which serves one
 * connection at a time; but the connections mod_vthread takes over from
 * those few workers run side by side, all with the same handful of ids,
 * and one request's end then killed another's CGI (200 concurrent CGIs
 * on 4 workers carried 4 distinct ids; a few died of SIGTERM before
 * writing anything: "End of script output before headers"). So each
 * connection offloaded gets an id of its own, outside the MPM's range
 * (child and thread slots, small numbers): bit 62 set, this child's pid,
 * and a counter. Where a long cannot hold that, the MPM's id stays. */
static void vtm_conn_unique_id(conn_rec *c)
{
#if APR_SIZEOF_VOIDP >= 8
    if (sizeof(long) >= 8) {
        apr_uint32_t n = apr_atomic_inc32(&vtm_conn_next_id);
        c->id = (long)((1ULL << 62)
                       | ((unsigned long long)(getpid() & 0x3fffffff) << 32)
                       | n);
    }
#else
    (void)c;
    (void)vtm_conn_next_id;
#endif
}

vtm_conn_t *vtm_conn_get(conn_rec *c)
{
    return ap_get_module_config(c->conn_config, &vthread_module);
}

vtm_conn_t *vtm_conn_ensure(conn_rec *c)
{
    vtm_conn_t *conn = vtm_conn_get(c);

    if (!conn) {
        conn = apr_pcalloc(c->pool, sizeof(*conn));
        conn->c = c;
        conn->sock = ap_get_conn_socket(c);
        ap_set_module_config(c->conn_config, &vthread_module, conn);
        vtm_conn_unique_id(c);
    }
    return conn;
}

void vtm_conn_enter_fiber(vtm_conn_t *conn)
{
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 122)
    conn->c->current_thread = ap_thread_current();
#endif
    conn->fiber_io = 1;
    conn->out_pending_known = 0;
}
