/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * mod_vthread: run request handlers on fibers, so that a handler that
 * waits does not hold an MPM worker. This file only wires httpd's hooks
 * and directives to the units in vtm_*.c (see vtm_glue.h).
 */
#include <httpd.h>
#include <http_config.h>
#include <http_connection.h>
#include <http_protocol.h>
#include <ap_mpm.h>
#include <mpm_common.h>

#include "vtm_config.h"
#include "vtm_glue.h"
#include "vtm_child.h"
#include "vtm_conn.h"
#include "vtm_filters.h"
#include "vtm_handler.h"
#include "vtm_lifecycle.h"
#include "vtm_recycle.h"
#include "vtm_scoreboard.h"
#include "vtm_status.h"
#include "vtm_transparent.h"

static void vtm_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_post_config(vtm_child_post_config, NULL, NULL,
                        APR_HOOK_MIDDLE);
    ap_hook_child_init(vtm_child_init, NULL, NULL, APR_HOOK_MIDDLE);
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 110)
    ap_hook_child_stopping(vtm_child_stopping, NULL, NULL,
                           APR_HOOK_MIDDLE);
#endif
    /* First, before any other module allocates from the connection's
     * pool. */
    ap_hook_pre_connection(vtm_recycle_give, NULL, NULL,
                           APR_HOOK_REALLY_FIRST);
    ap_hook_pre_connection(vtm_filters_attach, NULL, NULL,
                           APR_HOOK_MIDDLE);
    ap_hook_handler(vtm_handler_offload, NULL, NULL,
                    APR_HOOK_REALLY_FIRST);
    ap_hook_suspend_connection(vtm_handler_suspended, NULL, NULL,
                               APR_HOOK_MIDDLE);
    ap_hook_post_read_request(vtm_lifecycle_post_read_request, NULL, NULL,
                              APR_HOOK_MIDDLE);
    ap_hook_log_transaction(vtm_scoreboard_count, NULL, NULL,
                            APR_HOOK_MIDDLE);
    vtm_transparent_register_hooks();
    vtm_filters_register();
    vtm_status_register();
}

AP_DECLARE_MODULE(vthread) = {
    STANDARD20_MODULE_STUFF,
    vtm_config_create_dir,
    vtm_config_merge_dir,
    vtm_config_create_srv,
    NULL,
    vtm_cmds,
    vtm_register_hooks,
#if defined(AP_MODULE_HAS_FLAGS)
    AP_MODULE_FLAG_NONE
#endif
};
