/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * A request's story for operators: its access-log notes, and the trace
 * lines from the offload decision to the end of its handler (what happens
 * to the connection after that is told by vtm_lifecycle.c). Read in the
 * order a request lives:
 *
 * vtm_notes_inline()       handler hook: the request asked for a
 *                              fiber and runs inline (HTTP/2, no runtime,
 *                              VThreadMaxFibers) or is refused (503).
 * vtm_notes_offloaded()    handler hook: it will run on a fiber.
 * vtm_notes_fiber_start()  first thing on its fiber: timing starts.
 * vtm_notes_handler_end()  on the fiber, the real handler returned:
 *                              the notes are set, before the request is
 *                              logged (vtm_lifecycle_finish_request).
 * vtm_notes_inherit()      handler hook of an internal redirect (an
 *                              ErrorDocument): the notes follow, so that
 *                              %{...}n reads them on the final request.
 *
 * Notes, for mod_log_config's %{name}n (absent, so "-", when the request
 * did not ask for a fiber):
 *   vthread-offload   fiber | inline | overflow-inline | 503
 *   vthread-carrier   index of the carrier that ran the handler
 *   vthread-park-us   microseconds the fiber spent parked, from its start
 *                     to the handler's end
 *   vthread-run-us    microseconds from fiber start to the handler's end,
 *                     minus the parked time (running or runnable)
 *   vthread-queue-us  microseconds from the request's arrival (its request
 *                     line read) to its fiber's start
 */
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include <apr_strings.h>

#include "vtm_glue.h"
#include "vtm_notes.h"
#include "vtm_status.h"

APLOG_USE_MODULE(vthread);

#define VTM_NOTE_OFFLOAD "vthread-offload"
#define VTM_NOTE_CARRIER "vthread-carrier"
#define VTM_NOTE_PARK "vthread-park-us"
#define VTM_NOTE_RUN "vthread-run-us"
#define VTM_NOTE_QUEUE "vthread-queue-us"

/** vthread-offload values, by vtm_offload_e. */
static const char *const vtm_notes_offload[VTM_OFFLOAD_KINDS] = {
    "fiber", "inline", "overflow-inline", "503"
};

void vtm_notes_inline(request_rec *r, vtm_offload_e how,
                          const char *why)
{
    apr_table_setn(r->notes, VTM_NOTE_OFFLOAD,
                   vtm_notes_offload[how]);
    vtm_status_count(how);
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                  "not offloaded (%s): %s", vtm_notes_offload[how],
                  why);
}

void vtm_notes_offloaded(request_rec *r, vtm_where_e where)
{
    static const char *const how[] = {
        "will run on a fiber; the worker goes back to the MPM",
        "will run on a fiber; the worker waits for it (MPM not "
        "asynchronous)",
        "runs here, on the connection's fiber"
    };

    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                  "offloaded: handler \"%s\" %s",
                  r->handler ? r->handler : "-", how[where]);
}

void vtm_notes_inherit(request_rec *r)
{
    static const char *const names[] = {
        VTM_NOTE_OFFLOAD, VTM_NOTE_CARRIER, VTM_NOTE_PARK,
        VTM_NOTE_RUN, VTM_NOTE_QUEUE
    };
    const char *v;
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        v = apr_table_get(r->prev->notes, names[i]);
        if (v) {
            apr_table_setn(r->notes, names[i], v);
        }
    }
}

void vtm_notes_fiber_start(vtm_req_t *req)
{
    request_rec *r = req->r;

    vtm_status_track(&req->track, VTM_TRACK_HANDLER);
    vtm_status_count(VTM_OFFLOAD_FIBER);
    /* The fiber may have served earlier requests of the connection. */
    req->parked_before = vt_fiber_parked_time(vt_fiber_current());
    req->queued = req->track.since - r->request_time;
    if (req->queued < 0) {
        req->queued = 0;
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                  "fiber started on carrier %d, %" APR_TIME_T_FMT " us "
                  "after the request arrived",
                  vt_fiber_carrier_index(vt_fiber_current()), req->queued);
}

void vtm_notes_handler_end(vtm_req_t *req, int status)
{
    request_rec *r = req->r, *rr;
    vt_fiber_t *f = vt_fiber_current();
    apr_time_t now = apr_time_now();
    apr_interval_time_t park = vt_fiber_parked_time(f) - req->parked_before;
    apr_interval_time_t run = now - req->track.since - park;
    int carrier = vt_fiber_carrier_index(f);
    const char *carrier_s, *park_s, *run_s, *queue_s;

    vtm_status_track(&req->track, VTM_TRACK_NONE);
    if (run < 0) {
        run = 0;
    }
    carrier_s = apr_itoa(r->pool, carrier);
    park_s = apr_psprintf(r->pool, "%" APR_TIME_T_FMT, park);
    run_s = apr_psprintf(r->pool, "%" APR_TIME_T_FMT, run);
    queue_s = apr_psprintf(r->pool, "%" APR_TIME_T_FMT, req->queued);
    /* The request and any internal redirect its handler made (the one
     * mod_log_config logs by default is the last). */
    for (rr = r; rr; rr = rr->next) {
        apr_table_setn(rr->notes, VTM_NOTE_OFFLOAD,
                       vtm_notes_offload[VTM_OFFLOAD_FIBER]);
        apr_table_setn(rr->notes, VTM_NOTE_CARRIER, carrier_s);
        apr_table_setn(rr->notes, VTM_NOTE_PARK, park_s);
        apr_table_setn(rr->notes, VTM_NOTE_RUN, run_s);
        apr_table_setn(rr->notes, VTM_NOTE_QUEUE, queue_s);
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                  "handler \"%s\" returned %d on carrier %d: ran %s us, "
                  "parked %s us", req->handler ? req->handler : "-",
                  status, carrier, run_s, park_s);
}
