/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_glue.h
 * @brief What the httpd glue files of mod_vthread share.
 *
 * The glue is split by httpd concept: vtm_config.c (directives),
 * vtm_child.c (the runtime of each child), vtm_handler.c (the
 * offload decision and the fiber that runs the real handler),
 * vtm_conn.c (the connection after the handler: finish, write
 * completion, keep-alive, next request, close, teardown),
 * vtm_filters.c (client I/O that parks the fiber instead of blocking
 * the carrier), vtm_scoreboard.c (accounting of offloaded requests),
 * vtm_hangup.c (cancel the fiber of a client that went away),
 * vtm_status.c (mod_status lines), vtm_notes.c (access-log notes
 * and the request's trace lines). mod_vthread.c only wires them.
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
 * a request that already arrived to a new fiber (vtm_conn.c). Whoever
 * hands the connection on must not touch it (nor its pools, nor the
 * vtm_conn_t stored in them) until it is handed back.
 *
 * Log message numbers: APLOGNO(10900) to APLOGNO(10949), by file (the
 * demo module, mod_vthread_demo.c, uses 10950 to 10999):
 *   10900-10919 vtm_child.c     10920-10929 vtm_handler.c
 *   10930-10939 vtm_conn.c, vtm_borrow.c (10937)
 *   10940-10949 vtm_filters.c
 *   10880-10899 vtm_notes.c, vtm_status.c (none used yet)
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
    /** Keep-alive registry (vtm_conn.c), under its mutex. */
    vt_fiber_t *idle_fiber;
    vtm_conn_t *idle_prev;
    vtm_conn_t *idle_next;
    /** Write completion, keep-alive wait, lingering (vtm_status.c). */
    vtm_track_t track;
};

/* ---------------------------------------------------------- child */

/** post_config: start-up warnings. */
int vtm_child_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp, server_rec *s);
/** child_init: start the runtime of this child. */
void vtm_child_init(apr_pool_t *pchild, server_rec *s);
/** child_stopping: close idle connections, refuse keep-alive. */
void vtm_child_stopping(apr_pool_t *pchild, int graceful);
/** The runtime of this child, or NULL (not started, or stopped). */
vt_runtime_t *vtm_child_runtime(void);
/** Does the MPM suspend connections (event)? */
int vtm_child_is_async(void);
/** Is this child stopping (graceful or not)? */
int vtm_child_is_stopping(void);

/* -------------------------------------------------------- handler */

/** handler hook (APR_HOOK_REALLY_FIRST): offload or decline. */
int vtm_handler_offload(request_rec *r);
/**
 * Start the fiber of an offloaded request and give up its handle. The
 * caller must not touch @a req, r or the connection afterwards.
 */
void vtm_handler_start(vtm_req_t *req);
/** Run @a req's real handler here; its result mapped as
 *  ap_invoke_handler() maps it (never DECLINED). */
int vtm_handler_run(vtm_req_t *req);

/* --------------------------------------------------------- borrow */

/** Create the list of requests waiting for an MPM worker. */
apr_status_t vtm_borrow_child_init(apr_pool_t *pchild);
/** Child exit, MPM workers joined: fail the requests still waiting. */
void vtm_borrow_child_exit(void);
/**
 * On the fiber of an owned connection: run @a req's handler on an MPM
 * worker, parked meanwhile.
 * @return the handler's result, as vtm_handler_run(); 503 if no
 *         worker will run it (child exit)
 */
int vtm_borrow_run(vtm_req_t *req);

/* ----------------------------------------------------------- conn */

/** Create the registry of idle connections for this child. */
apr_status_t vtm_conn_child_init(apr_pool_t *pchild);
/** Close idle owned connections now; no keep-alive from here on. */
void vtm_conn_child_stopping(int graceful);
/** The connection's state, or NULL if no request was offloaded on it. */
vtm_conn_t *vtm_conn_get(conn_rec *c);
/** The connection's state, created if needed (by its owning thread). */
vtm_conn_t *vtm_conn_ensure(conn_rec *c);
/**
 * Async offload of a connection's first offloaded request: remember
 * @a req; its fiber starts once the MPM has let go of the request (the
 * suspend_connection hook). Later requests run on that fiber.
 * @return SUSPENDED
 */
int vtm_conn_offload(vtm_req_t *req);
/** suspend_connection hook: the MPM has let go; start the fiber. */
void vtm_conn_suspended(conn_rec *c, request_rec *r);
/** post_read_request hook: for a request read on an owned connection's
 *  fiber, note its KeepAliveTimeout (and no keep-alive if stopping). */
int vtm_conn_post_read_request(request_rec *r);
/** A fiber takes the connection over (client I/O yields from now). */
void vtm_conn_enter_fiber(vtm_conn_t *conn);
/**
 * On the request's fiber, once the response is complete (error page
 * sent, request finalised): log the request, then carry the connection on
 * (write completion, keep-alive, next request or close). The caller must
 * not touch the request or the connection afterwards.
 */
void vtm_conn_finish_request(vtm_conn_t *conn, request_rec *r);

/* -------------------------------------------------------- filters */

/** Register the connection filters (from register_hooks). */
void vtm_filters_register(void);
/** pre_connection: insert the filters just above the core. */
int vtm_filters_attach(conn_rec *c, void *csd);
/**
 * Send what the core output filter holds, parking the fiber while the
 * socket is full; bounded by the socket's timeout (Timeout).
 * @return APR_SUCCESS once nothing is held; otherwise the connection is
 *         marked aborted and the error returned
 */
apr_status_t vtm_filters_drain(vtm_conn_t *conn);

/* --------------------------------------------------------- hangup */

/** Start watching clients for hang-ups in this child. */
apr_status_t vtm_hangup_child_init(apr_pool_t *pchild);
/** Stop watching (child exit). */
void vtm_hangup_child_exit(void);
/** On the fiber that runs @a conn's handler: cancel it if the client
 *  hangs up. */
void vtm_hangup_watch(vtm_conn_t *conn);
/** The same, deferred to the fiber's first wait (vt_fiber_on_first_wait):
 *  a handler that never waits cannot be cancelled anyway, and is spared
 *  the watch's two epoll_ctl and its lock. */
void vtm_hangup_arm(vtm_conn_t *conn);
/** Stop watching @a conn (before the connection goes on). */
void vtm_hangup_unwatch(vtm_conn_t *conn);

/* --------------------------------------------------------- reaper */

/** Start the thread that destroys closed connections' pools. */
apr_status_t vtm_reaper_child_init(apr_pool_t *pchild);
/**
 * Destroy a cleared pool on the reaper thread (or here, if it is not
 * running). The caller must not touch @a pool afterwards.
 */
void vtm_reaper_destroy(apr_pool_t *pool);

/* ------------------------------------------------------- listener */

/** Forget the last child's scoreboard slot and nudges (child_init). */
void vtm_listener_child_init(void);
/** A worker or a connection was freed: if event's listener stopped
 *  accepting, wake it until it accepts again (vtm_listener.c). */
void vtm_listener_nudge(void);

/* -------------------------------------------------------- recycle */

/** Set up the store of closed connections' allocators (child_init): as
 *  many as @a max_fibers (VThreadMaxFibers; 0: unlimited). */
apr_status_t vtm_recycle_child_init(apr_pool_t *pchild,
                                        apr_uint32_t max_fibers);
/**
 * Destroy a cleared connection pool, keeping its allocator and blocks for
 * the next connections if there is room, else on the reaper thread. The
 * caller must not touch @a pool afterwards.
 */
void vtm_recycle_pool(apr_pool_t *pool);
/**
 * pre_connection hook, first: give the new connection's allocator blocks
 * kept from a closed connection, so that it maps none of its own.
 */
int vtm_recycle_give(conn_rec *c, void *csd);
/** Destroy the kept allocators that were not given for a while (called
 *  twice a second by the idle reaper thread). */
void vtm_recycle_trim(void);
/** For server-status: closed connections' allocators kept now, and new
 *  connections given memory from one since the child started. */
void vtm_recycle_stats(int *kept, apr_uint64_t *given);

/* ----------------------------------------------------- scoreboard */

/** Remember the scoreboard geometry for this child. */
void vtm_scoreboard_child_init(void);
/** On an MPM worker: find its scoreboard slot (once per thread). */
void vtm_scoreboard_locate(void);
/** On an MPM worker: a handle on its own slot for @a conn, or NULL. */
ap_sb_handle_t *vtm_scoreboard_worker(vtm_conn_t *conn);
/** log_transaction hook: count an offloaded request logged without a
 *  scoreboard handle. */
int vtm_scoreboard_count(request_rec *r);
/** On an MPM worker (no-op elsewhere): add the offloaded requests counted
 *  so far to its own slot. */
void vtm_scoreboard_flush(void);

/* --------------------------------------------------------- status */

/** Add mod_vthread's lines to mod_status (from register_hooks). */
void vtm_status_register(void);
/**
 * Move @a t to @a kind (a vtm_track_e; VTM_TRACK_NONE stops
 * tracking it), from the thread that owns it. Its time in @a kind starts
 * now.
 */
void vtm_status_track(vtm_track_t *t, int kind);
/** On the thread that owns @a conn: count it as owned by mod_vthread
 *  until its pool is cleared (which also stops tracking it). */
void vtm_status_own(vtm_conn_t *conn);
/** Count one offload decision (a vtm_offload_e). */
void vtm_status_count(int how);

/* ---------------------------------------------------------- notes */

/** The handler hook declined a request that asked for a fiber: note
 *  vthread-offload (inline, overflow-inline or 503) and count it. */
void vtm_notes_inline(request_rec *r, vtm_offload_e how,
                          const char *why);
/** Where an offloaded handler runs. */
typedef enum {
    VTM_WHERE_SUSPENDED = 0,    /**< new fiber, request suspended */
    VTM_WHERE_JOINED,           /**< new fiber, the worker waits */
    VTM_WHERE_CONN_FIBER        /**< the owned connection's fiber */
} vtm_where_e;

/** The handler hook offloaded @a r (trace log). */
void vtm_notes_offloaded(request_rec *r, vtm_where_e where);
/** An internal redirect: copy the vthread-* notes of r->prev. */
void vtm_notes_inherit(request_rec *r);
/** First thing on the request's fiber: start timing it. */
void vtm_notes_fiber_start(vtm_req_t *req);
/** On the fiber, once the real handler returned @a status: set the
 *  vthread-* notes on the request (and its internal redirects). */
void vtm_notes_handler_end(vtm_req_t *req, int status);

#pragma GCC visibility pop

#endif /* VTM_GLUE_H */
