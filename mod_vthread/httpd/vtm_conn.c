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

#include "vtm_glue.h"
#include "vtm_conn.h"

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
