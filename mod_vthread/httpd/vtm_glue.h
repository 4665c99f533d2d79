/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_glue.h
 * @brief What the httpd glue files of mod_vthread share: the state of an
 *        offloaded request and connection, and the rule of ownership.
 *
 * The glue is split by httpd concept, one header per file, each file
 * calling only the ones below it (docs/architecture.md):
 *   mod_vthread.c     wires hooks and directives; computes nothing
 *   vtm_child.c       the runtime of each child, start-up warnings
 *   vtm_handler.c     the offload decision, the fiber of a request
 *   vtm_lifecycle.c   an owned connection after the handler: finish,
 *                     write completion, keep-alive, next request, close
 *   vtm_notes.c       access-log notes and the request's trace lines
 *   vtm_status.c      mod_status lines, and what they count
 *   vtm_borrow.c      a handler run on an MPM worker for a fiber
 *   vtm_filters.c     client I/O that parks the fiber, not the carrier
 *   vtm_hangup.c      cancel the fiber of a client that went away
 *   vtm_scoreboard.c  accounting of offloaded requests
 *   vtm_recycle.c     closed connections' memory for new ones
 *   vtm_reaper.c      the thread that destroys pools off the carriers
 *   vtm_listener.c    waking event's listener when it stopped accepting
 *   vtm_invoke.c      the real handler, run as ap_invoke_handler() would
 *   vtm_conn.c        find, create, hand over a vtm_conn_t
 *   vtm_config.c      directives
 *   vtm_state.c       the child's runtime, async and stopping flags
 *   vtm_transparent.c transparent mode: hooks installed per child
 *
 * Ownership of a connection (the rule every file follows): a conn_rec and
 * its pools are used by one thread at a time. The MPM owns a connection
 * until the first offloaded request's suspend_connection hook; from then
 * on mod_vthread owns it until teardown, on one fiber:
 *   handler, finish, write completion, keep-alive wait, read and process
 *   the next request, ... -> teardown.
 * Two hand-overs leave that fiber, explicitly: the handler of a location
 * without VThreadHandler runs on an MPM worker while the fiber waits
 * (vtm_borrow.c), and a keep-alive wait cancelled at child stop passes
 * a request that already arrived to a new fiber (vtm_lifecycle.c). Whoever
 * hands the connection on must not touch it (nor its pools, nor the
 * vtm_conn_t stored in them) until it is handed back.
 *
 * Log message numbers: APLOGNO(10880) to APLOGNO(10949), by file (the
 * demo module uses 10950 to 10999 and 10870 to 10879):
 *   10880-10899 vtm_child.c (10880, 10881), vtm_notes.c, vtm_status.c
 *   10900-10919 vtm_child.c, vtm_hangup.c (10915, 10916)
 *   10920-10929 vtm_handler.c, vtm_invoke.c (10921, 10922)
 *   10930-10939 vtm_lifecycle.c, vtm_borrow.c (10937)
 *   10940-10949 vtm_filters.c
 *   10860-10869 vtm_transparent.c
 */
#ifndef VTM_GLUE_H
#define VTM_GLUE_H

#include <httpd.h>
#include <http_config.h>
#include <scoreboard.h>

#include "vt_runtime.h"
#include "vthread.h"

/** The module. */
extern module AP_MODULE_DECLARE_DATA vthread_module;

/* Everything below is internal to mod_vthread.so: only vthread_module and
 * the public API of vthread.h are exported. */
#pragma GCC visibility push(hidden)

typedef struct vtm_conn_t vtm_conn_t;
typedef struct vtm_req_t vtm_req_t;

/** What a request or connection is doing, for mod_status (counted and
 *  aged by vtm_status.c). */
typedef enum {
    VTM_TRACK_NONE = 0,
    VTM_TRACK_HANDLER,      /**< its handler runs on a fiber */
    VTM_TRACK_WRITING,      /**< owned connection: write completion */
    VTM_TRACK_KEEPALIVE,    /**< owned connection: keep-alive wait */
    VTM_TRACK_LINGER,       /**< owned connection: lingering close */
    VTM_TRACK_KINDS
} vtm_track_e;

/** A tracked request or connection (vtm_status.c): changed only by
 *  the thread that owns it, listed while not VTM_TRACK_NONE. */
typedef struct vtm_track_t vtm_track_t;
struct vtm_track_t {
    vtm_track_t *prev;
    vtm_track_t *next;
    apr_time_t since;           /**< when it entered @a kind */
    int kind;                   /**< a vtm_track_e */
    int slot;
};

/** How the handler of a request that asked for a fiber was run. */
typedef enum {
    VTM_OFFLOAD_FIBER = 0,      /**< on a fiber */
    VTM_OFFLOAD_INLINE,         /**< inline: HTTP/2, no runtime... */
    VTM_OFFLOAD_OVERFLOW_INLINE,/**< inline at VThreadMaxFibers */
    VTM_OFFLOAD_503,            /**< refused at VThreadMaxFibers */
    VTM_OFFLOAD_KINDS
} vtm_offload_e;

/**
 * An offloaded request (in r->request_config, allocated from r->pool).
 * Its presence also tells the handler hook to decline: the real handler
 * is being run for this request.
 */
struct vtm_req_t {
    request_rec *r;
    vtm_conn_t *conn;
    /** The effective handler name when the handler phase ran. */
    const char *handler;
    /** Created in the handler hook; started by vtm_handler_start(). */
    vt_fiber_t *fiber;
    int started;
    /** The real handler's result, mapped as ap_invoke_handler() does. */
    int status;
    /** From fiber start to handler end (vtm_notes.c). */
    vtm_track_t track;
    /** The fiber's parked time when the handler started (a connection's
     *  fiber serves one request after another). */
    apr_interval_time_t parked_before;
    /** From the request's arrival (r->request_time) to its fiber's start:
     *  the hand-off, and any wait for the carrier. */
    apr_interval_time_t queued;
};

/**
 * mod_vthread's state of a connection (in c->conn_config, allocated from
 * c->pool), created when a request of the connection is first offloaded.
 * Used by whichever thread owns the connection (see above).
 */
struct vtm_conn_t {
    conn_rec *c;
    apr_socket_t *sock;
    /** mod_vthread owns the connection (its first offload was released
     *  by the MPM's suspend_connection hook). */
    int owned;
    /** When the MPM let go (the suspend_connection hook ran). */
    apr_time_t released_at;
    /** The MPM's last store after that hook (c->sbh = NULL): 0 not
     *  checked yet, 1 seen, -1 not seen in time. */
    int mpm_gone;
    /** An offloaded request whose fiber is created but not started. */
    vtm_req_t *pending;
    /** A fiber owns the connection: the client I/O filters park it. */
    int fiber_io;
    /** KeepAliveTimeout that applies after the current request. */
    apr_interval_time_t ka_timeout;
    /** For the look at the socket after a keep-alive wait. */
    apr_bucket_brigade *peek_bb;
    /** Handle on the slot of the MPM worker running our callback
     *  (vtm_scoreboard.c), or NULL. */
    ap_sb_handle_t *sbh_worker;
    /** Output filter bookkeeping (vtm_filters.c): what the core
     *  output filter may still hold that we passed it. */
    apr_size_t out_pending_bytes;
    int out_pending_eors;
    int out_pending_known;
    apr_bucket_brigade *out_slice;
    /** Hang-up watch (vtm_hangup.c), under its mutex: 0 when not
     *  watched. */
    apr_uint64_t hangup_token;
    vt_fiber_t *hangup_fiber;
    /** Keep-alive registry (vtm_lifecycle.c), under its mutex. */
    vt_fiber_t *idle_fiber;
    vtm_conn_t *idle_prev;
    vtm_conn_t *idle_next;
    /** Write completion, keep-alive wait, lingering (vtm_status.c). */
    vtm_track_t track;
};

#pragma GCC visibility pop

#endif /* VTM_GLUE_H */
