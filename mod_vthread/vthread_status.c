/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * mod_vthread's lines in mod_status (server-status): the carriers of the
 * child that answers. In ?auto form, one "Key: value" line each:
 *   VThreadCarriers, VThreadFibers (alive), VThreadRunnable,
 *   VThreadParkedTimer, VThreadParkedIO, VThreadParkedSync,
 *   VThreadStarted, VThreadPinned.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>
#include <mod_status.h>

#include "vthread_glue.h"

static int vthread_status_hook(request_rec *r, int flags);

void vthread_status_register(void)
{
    APR_OPTIONAL_HOOK(ap, status_hook, vthread_status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
}

static int vthread_status_hook(request_rec *r, int flags)
{
    vt_runtime_t *rt = vthread_child_runtime();
    vt_carrier_stats_t sum, one;
    int i, n;

    if (!rt) {
        return OK;
    }
    memset(&sum, 0, sizeof(sum));
    n = vt_runtime_carriers(rt);
    for (i = 0; i < n; i++) {
        if (vt_runtime_carrier_stats(rt, i, &one) != APR_SUCCESS) {
            continue;
        }
        sum.runnable += one.runnable;
        sum.parked_timer += one.parked_timer;
        sum.parked_io += one.parked_io;
        sum.parked_sync += one.parked_sync;
        sum.started += one.started;
        sum.pinned += one.pinned;
    }
    if (flags & AP_STATUS_SHORT) {
        ap_rprintf(r, "VThreadCarriers: %d\n"
                      "VThreadFibers: %u\n"
                      "VThreadRunnable: %u\n"
                      "VThreadParkedTimer: %u\n"
                      "VThreadParkedIO: %u\n"
                      "VThreadParkedSync: %u\n"
                      "VThreadStarted: %" APR_UINT64_T_FMT "\n"
                      "VThreadPinned: %u\n",
                   n, vt_runtime_live(rt), sum.runnable, sum.parked_timer,
                   sum.parked_io, sum.parked_sync, sum.started, sum.pinned);
        return OK;
    }
    ap_rputs("<hr />\n<h2>mod_vthread (this child)</h2>\n", r);
    ap_rprintf(r, "<dl><dt>%d carriers, %u fibers alive: %u runnable, "
                  "%u sleeping, %u waiting for I/O, %u waiting to "
                  "synchronise</dt>\n<dt>%" APR_UINT64_T_FMT " fibers "
                  "started, %u pinned-carrier reports</dt></dl>\n",
               n, vt_runtime_live(rt), sum.runnable, sum.parked_timer,
               sum.parked_io, sum.parked_sync, sum.started, sum.pinned);
    return OK;
}
