/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * The real handler of an offloaded request, run as ap_invoke_handler()
 * would run it: with the effective handler name of the handler phase, and
 * its result mapped. Used wherever that handler runs: on the request's
 * fiber (vtm_handler.c) and on a borrowed MPM worker (vtm_borrow.c).
 */
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include "vtm_config.h"
#include "vtm_glue.h"
#include "vtm_invoke.h"
#include "vtm_state.h"
#include "vt_hook.h"

APLOG_USE_MODULE(vthread);

int vtm_invoke_handler(vtm_req_t *req)
{
    request_rec *r = req->r;
    const char *outer = r->handler;
    const vtm_dir_conf_t *dc =
        ap_get_module_config(r->per_dir_config, &vthread_module);
    int transparent;
    int result;

    /* Transparent mode covers the handler: what it calls blocking parks
     * the fiber (vt_hook.h). Off a fiber (a borrowed worker) this does
     * nothing. */
    transparent = vt_hook_fiber_set(vtm_state_transparent()
                                    && vtm_config_transparent(dc));
    r->handler = req->handler;
    result = ap_run_handler(r);
    r->handler = outer;
    vt_hook_fiber_set(transparent);

    if (result == DECLINED) {
        if (r->filename) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, APLOGNO(10921)
                          "handler \"%s\" not found for: %s",
                          req->handler, r->filename);
        }
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (result != OK && result != DONE && result != SUSPENDED
        && result != AP_FILTER_ERROR && !ap_is_HTTP_VALID_RESPONSE(result)
        && !apr_table_get(r->notes, "HTTP_IGNORE_RANGE")) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, APLOGNO(10922)
                      "Handler for %s returned invalid result code %d",
                      req->handler, result);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return result;
}
