/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * Client I/O that parks the fiber instead of blocking its carrier.
 *
 * The core filters block the calling thread, bounded by the socket's
 * timeout (Timeout, or mod_reqtimeout's), whenever the socket is not
 * ready. On a carrier that would stall every fiber there. So a pair of
 * connection filters sits just above the core (AP_FTYPE_NETWORK - 1:
 * below mod_ssl, mod_reqtimeout and everything else), and while a fiber
 * owns the connection:
 *
 * VTHREAD_IN   turns a blocking read into non-blocking reads of the core
 *              and, while nothing came, parks on POLLIN (bounded by the
 *              socket's timeout), so it returns what a blocking read
 *              returns: data (a whole line for AP_MODE_GETLINE), EOS at
 *              end of stream, or the error.
 * VTHREAD_OUT  keeps the core output filter out of its blocking path. The
 *              core blocks when what it holds plus what it is given needs
 *              a flush (a FLUSH bucket, more than FlushMaxThreshold bytes
 *              in memory, more than FlushMaxPipelined responses, a bucket
 *              of unknown length) and the socket is full. So FLUSH buckets
 *              are taken out and honoured by draining; buckets of unknown
 *              length are read here (parking on their pipe or socket when
 *              it is one); the rest goes down in slices small enough that
 *              the core never needs a flush, draining first when what it
 *              holds plus the slice would. Draining is what event's write
 *              completion does: call the last filter with no brigade and,
 *              while c->data_in_output_filters stays set, park on POLLOUT.
 *
 * VTHREAD_IN_LINE  the same for line reads (request and header lines,
 *              chunk sizes), called before mod_reqtimeout (whose filter,
 *              AP_FTYPE_CONNECTION + 8, reads a line with its own
 *              apr_poll() on the socket and would block the carrier): at
 *              AP_FTYPE_CONNECTION + 7, below mod_ssl (+5, which reads
 *              bytes, not lines). mod_reqtimeout then sees only
 *              non-blocking reads, and still enforces its deadlines on
 *              them (408): so the fiber parks in slices of at most a
 *              second and asks again, up to the socket's timeout.
 *
 * Any other time (no fiber, or a fiber that does not own the connection)
 * the filters pass everything through: inline requests behave as in
 * stock httpd.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_connection.h>
#include <http_core.h>
#include <http_log.h>
#include <http_request.h>
#include <util_filter.h>

#include <apr_buckets.h>

#include "vtm_glue.h"
#include "vtm_conn.h"
#include "vtm_filters.h"
#include "vtm_state.h"

APLOG_USE_MODULE(vthread);

static apr_status_t vtm_filter_in(ap_filter_t *f, apr_bucket_brigade *bb,
                                      ap_input_mode_t mode,
                                      apr_read_type_e block,
                                      apr_off_t readbytes);
static apr_status_t vtm_filter_in_line(ap_filter_t *f,
                                           apr_bucket_brigade *bb,
                                           ap_input_mode_t mode,
                                           apr_read_type_e block,
                                           apr_off_t readbytes);
static apr_status_t vtm_filters_read(ap_filter_t *f,
                                         apr_bucket_brigade *bb,
                                         ap_input_mode_t mode,
                                         apr_off_t readbytes,
                                         vtm_conn_t *conn,
                                         apr_interval_time_t slice);
static apr_status_t vtm_filter_out(ap_filter_t *f,
                                       apr_bucket_brigade *bb);
static vtm_conn_t *vtm_filters_owner(conn_rec *c);
static int vtm_filters_got(apr_bucket_brigade *bb, ap_input_mode_t mode,
                               apr_off_t before);
static apr_status_t vtm_filters_slice(vtm_conn_t *conn,
                                          apr_bucket_brigade *bb,
                                          apr_size_t limit, int max_eors,
                                          apr_size_t *bytes, int *eors,
                                          int *flush);
static apr_status_t vtm_filters_read_morphing(vtm_conn_t *conn,
                                                  apr_bucket *e);
static apr_status_t vtm_filters_wait(vtm_conn_t *conn,
                                         apr_int16_t events);
static apr_interval_time_t vtm_filters_timeout(vtm_conn_t *conn);

/** Longest park of VTHREAD_IN_LINE before it asks the filters below
 *  again (mod_reqtimeout counts in seconds). */
#define VTM_LINE_SLICE apr_time_from_sec(1)

static ap_filter_rec_t *vtm_filters_in_handle;
static ap_filter_rec_t *vtm_filters_in_line_handle;
static ap_filter_rec_t *vtm_filters_out_handle;

void vtm_filters_register(void)
{
    vtm_filters_in_handle =
        ap_register_input_filter("VTHREAD_IN", vtm_filter_in, NULL,
                                 AP_FTYPE_NETWORK - 1);
    vtm_filters_in_line_handle =
        ap_register_input_filter("VTHREAD_IN_LINE", vtm_filter_in_line,
                                 NULL, AP_FTYPE_CONNECTION + 7);
    vtm_filters_out_handle =
        ap_register_output_filter("VTHREAD_OUT", vtm_filter_out, NULL,
                                  AP_FTYPE_NETWORK - 1);
}

int vtm_filters_attach(conn_rec *c, void *csd)
{
    (void)csd;
    /* HTTP/2 streams and proxy backends have no client socket of ours. */
    if (c->master || c->outgoing || !vtm_state_runtime()) {
        return OK;
    }
    ap_add_input_filter_handle(vtm_filters_in_handle, NULL, NULL, c);
    ap_add_input_filter_handle(vtm_filters_in_line_handle, NULL, NULL,
                               c);
    ap_add_output_filter_handle(vtm_filters_out_handle, NULL, NULL, c);
    return OK;
}

/* The connection's state if a fiber owns it and is the caller. */
static vtm_conn_t *vtm_filters_owner(conn_rec *c)
{
    vtm_conn_t *conn;

    if (!vthread_on_fiber()) {
        return NULL;
    }
    conn = vtm_conn_get(c);
    return (conn && conn->fiber_io) ? conn : NULL;
}

/* ---------------------------------------------------------------- in */

static apr_status_t vtm_filter_in(ap_filter_t *f, apr_bucket_brigade *bb,
                                      ap_input_mode_t mode,
                                      apr_read_type_e block,
                                      apr_off_t readbytes)
{
    vtm_conn_t *conn;

    if (block != APR_BLOCK_READ
        || (mode != AP_MODE_READBYTES && mode != AP_MODE_GETLINE
            && mode != AP_MODE_SPECULATIVE)
        || !(conn = vtm_filters_owner(f->c))) {
        return ap_get_brigade(f->next, bb, mode, block, readbytes);
    }
    return vtm_filters_read(f, bb, mode, readbytes, conn, 0);
}

static apr_status_t vtm_filter_in_line(ap_filter_t *f,
                                           apr_bucket_brigade *bb,
                                           ap_input_mode_t mode,
                                           apr_read_type_e block,
                                           apr_off_t readbytes)
{
    vtm_conn_t *conn;

    if (block != APR_BLOCK_READ || mode != AP_MODE_GETLINE
        || !(conn = vtm_filters_owner(f->c))) {
        return ap_get_brigade(f->next, bb, mode, block, readbytes);
    }
    return vtm_filters_read(f, bb, mode, readbytes, conn,
                                VTM_LINE_SLICE);
}

/*
 * A blocking read made of non-blocking reads of the filters below and
 * parks on POLLIN: up to the socket's timeout, in one park (@a slice 0)
 * or in parks of at most @a slice, asking the filters below again after
 * each (they may have deadlines of their own).
 */
static apr_status_t vtm_filters_read(ap_filter_t *f,
                                         apr_bucket_brigade *bb,
                                         ap_input_mode_t mode,
                                         apr_off_t readbytes,
                                         vtm_conn_t *conn,
                                         apr_interval_time_t slice)
{
    apr_interval_time_t timeout = 0;
    apr_time_t deadline = 0;
    apr_off_t before = 0;
    apr_status_t rv;

    if (slice > 0) {
        /* Parks in slices count against one deadline, set on entry. */
        timeout = vtm_filters_timeout(conn);
        deadline = apr_time_now() + timeout;
    }
    if (apr_brigade_length(bb, 0, &before) != APR_SUCCESS || before < 0) {
        before = 0;
    }
    for (;;) {
        rv = ap_get_brigade(f->next, bb, mode, APR_NONBLOCK_READ, readbytes);
        if (APR_STATUS_IS_EAGAIN(rv)) {
            rv = APR_SUCCESS;
        }
        if (rv == APR_EOF) {
            apr_off_t now = 0;

            apr_brigade_length(bb, 0, &now);
            if (now > before) {
                return APR_SUCCESS;  /* the end of a last, unended line */
            }
            if (mode == AP_MODE_READBYTES) {
                /* A blocking read of the core gives EOS at end of
                 * stream. */
                APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(
                                                f->c->bucket_alloc));
                return APR_SUCCESS;
            }
            return APR_EOF;
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (vtm_filters_got(bb, mode, before)) {
            return APR_SUCCESS;
        }
        if (slice <= 0) {
            rv = vtm_filters_wait(conn, APR_POLLIN);
        }
        else {
            apr_interval_time_t left = timeout < 0 ? slice
                                       : deadline - apr_time_now();

            if (left <= 0) {
                ap_log_cerror(APLOG_MARK, APLOG_DEBUG, APR_TIMEUP, f->c,
                              APLOGNO(10943) "no whole line from the client "
                              "within %" APR_TIME_T_FMT " ms",
                              apr_time_as_msec(timeout));
                return APR_TIMEUP;
            }
            rv = vthread_wait_io(conn->sock, APR_POLLIN,
                                 left < slice ? left : slice);
            if (rv == APR_TIMEUP) {
                rv = APR_SUCCESS;   /* ask the filters below again */
            }
            else if (rv != APR_SUCCESS) {
                f->c->aborted = 1;  /* cancelled: as vtm_filters_wait */
            }
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
}

/* Has a non-blocking read given what a blocking one would return? */
static int vtm_filters_got(apr_bucket_brigade *bb, ap_input_mode_t mode,
                               apr_off_t before)
{
    apr_off_t len = 0;
    apr_bucket *e;

    if (apr_brigade_length(bb, 0, &len) != APR_SUCCESS || len < 0) {
        return 1;
    }
    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_NEXT(e)) {
        if (APR_BUCKET_IS_METADATA(e) && !APR_BUCKET_IS_FLUSH(e)) {
            return 1;  /* EOS, error */
        }
    }
    if (len <= before) {
        return 0;
    }
    if (mode != AP_MODE_GETLINE || len - before >= HUGE_STRING_LEN) {
        return 1;
    }
    /* A line: complete once it ends with LF. */
    for (e = APR_BRIGADE_LAST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_PREV(e)) {
        const char *data;
        apr_size_t n;

        if (!e->length) {
            continue;
        }
        if (apr_bucket_read(e, &data, &n, APR_NONBLOCK_READ) != APR_SUCCESS) {
            return 1;
        }
        if (n) {
            return data[n - 1] == APR_ASCII_LF;
        }
    }
    return 0;
}

/* --------------------------------------------------------------- out */

static apr_status_t vtm_filter_out(ap_filter_t *f, apr_bucket_brigade *bb)
{
    conn_rec *c = f->c;
    vtm_conn_t *conn = vtm_filters_owner(c);
    core_server_config *conf;
    apr_size_t limit;
    int max_eors;
    apr_status_t rv = APR_SUCCESS;

    if (!conn) {
        return ap_pass_brigade(f->next, bb);
    }
    if (c->aborted) {
        apr_brigade_cleanup(bb);
        return APR_ECONNABORTED;
    }
    if (!conn->out_slice) {
        conn->out_slice = apr_brigade_create(c->pool, c->bucket_alloc);
    }
    conf = ap_get_core_module_config(c->base_server->module_config);
    limit = conf->flush_max_threshold > 0 ? conf->flush_max_threshold : 1;
    max_eors = conf->flush_max_pipelined;

    while (!APR_BRIGADE_EMPTY(bb)) {
        apr_size_t bytes = 0;
        int eors = 0, flush = 0;

        rv = vtm_filters_slice(conn, bb, limit, max_eors, &bytes, &eors,
                                   &flush);
        if (rv != APR_SUCCESS) {
            break;
        }
        if (!APR_BRIGADE_EMPTY(conn->out_slice)) {
            /* What the core holds plus the slice must stay below its
             * flush thresholds (FlushMaxPipelined 0 cannot be met: with
             * it, a response's last slice may still block the core). */
            if (c->data_in_output_filters
                && (!conn->out_pending_known
                    || conn->out_pending_bytes + bytes > limit
                    || (max_eors >= 0
                        && conn->out_pending_eors + eors > max_eors))) {
                rv = vtm_filters_drain(conn);
                if (rv != APR_SUCCESS) {
                    break;
                }
            }
            if (!c->data_in_output_filters) {
                conn->out_pending_bytes = 0;
                conn->out_pending_eors = 0;
            }
            rv = ap_pass_brigade(f->next, conn->out_slice);
            apr_brigade_cleanup(conn->out_slice);
            if (rv != APR_SUCCESS) {
                break;
            }
            if (c->data_in_output_filters) {
                conn->out_pending_bytes += bytes;
                conn->out_pending_eors += eors;
            }
            else {
                conn->out_pending_bytes = 0;
                conn->out_pending_eors = 0;
            }
            conn->out_pending_known = 1;
        }
        if (flush) {
            rv = vtm_filters_drain(conn);
            if (rv != APR_SUCCESS) {
                break;
            }
        }
    }
    if (rv != APR_SUCCESS) {
        apr_brigade_cleanup(conn->out_slice);
        apr_brigade_cleanup(bb);
    }
    return rv;
}

/*
 * Move the next slice from the head of @a bb to conn->out_slice: up to a
 * FLUSH (removed, *flush set), at most @a limit bytes in memory (a bigger
 * bucket is split), at most max(1, @a max_eors) EOR buckets, with every
 * bucket of unknown length read first.
 */
static apr_status_t vtm_filters_slice(vtm_conn_t *conn,
                                          apr_bucket_brigade *bb,
                                          apr_size_t limit, int max_eors,
                                          apr_size_t *bytes, int *eors,
                                          int *flush)
{
    apr_bucket_brigade *slice = conn->out_slice;
    apr_bucket *e;
    apr_status_t rv;

    while ((e = APR_BRIGADE_FIRST(bb)) != APR_BRIGADE_SENTINEL(bb)) {
        if (APR_BUCKET_IS_METADATA(e)) {
            if (APR_BUCKET_IS_FLUSH(e)) {
                apr_bucket_delete(e);
                *flush = 1;
                return APR_SUCCESS;
            }
            APR_BUCKET_REMOVE(e);
            APR_BRIGADE_INSERT_TAIL(slice, e);
            if (AP_BUCKET_IS_EOR(e)
                && ++*eors >= (max_eors > 1 ? max_eors : 1)) {
                return APR_SUCCESS;
            }
            continue;
        }
        if (e->length == (apr_size_t)-1) {
            const char *data;
            apr_size_t n;

            rv = apr_bucket_read(e, &data, &n, APR_NONBLOCK_READ);
            if (APR_STATUS_IS_EAGAIN(rv)) {
                if (!APR_BRIGADE_EMPTY(slice)) {
                    return APR_SUCCESS;  /* send what we have meanwhile */
                }
                rv = vtm_filters_read_morphing(conn, e);
            }
            if (rv != APR_SUCCESS) {
                return rv;
            }
            continue;  /* e has a length now */
        }
        if (!APR_BUCKET_IS_FILE(e)) {
            if (*bytes + e->length > limit) {
                if (*bytes) {
                    return APR_SUCCESS;
                }
                /* if it cannot be split, it goes whole */
                (void)apr_bucket_split(e, limit);
            }
            *bytes += e->length;
        }
        APR_BUCKET_REMOVE(e);
        APR_BRIGADE_INSERT_TAIL(slice, e);
    }
    return APR_SUCCESS;
}

/* A bucket of unknown length had nothing to give: park on its pipe or
 * socket, else read it blocking (this pins the carrier). */
static apr_status_t vtm_filters_read_morphing(vtm_conn_t *conn,
                                                  apr_bucket *e)
{
    apr_interval_time_t timeout = conn->c->base_server->timeout;
    const char *data;
    apr_size_t n;

    if (e->type == &apr_bucket_type_pipe) {
        apr_file_t *pipe = e->data;
        apr_os_file_t fd;
        apr_interval_time_t t = 0;

        if (apr_file_pipe_timeout_get(pipe, &t) == APR_SUCCESS && t > 0) {
            timeout = t;
        }
        if (apr_os_file_get(&fd, pipe) == APR_SUCCESS) {
            /* ready: the caller reads it again */
            return vthread_wait_fd(fd, APR_POLLIN, timeout);
        }
    }
    else if (e->type == &apr_bucket_type_socket) {
        apr_socket_t *sock = e->data;
        apr_interval_time_t t = 0;

        if (apr_socket_timeout_get(sock, &t) == APR_SUCCESS && t > 0) {
            timeout = t;
        }
        return vthread_wait_io(sock, APR_POLLIN, timeout);
    }
    ap_log_cerror(APLOG_MARK, APLOG_TRACE1, 0, conn->c, APLOGNO(10942)
                  "blocking read of a %s bucket on a fiber", e->type->name);
    return apr_bucket_read(e, &data, &n, APR_BLOCK_READ);
}

apr_status_t vtm_filters_drain(vtm_conn_t *conn)
{
    conn_rec *c = conn->c;
    ap_filter_t *last = c->output_filters;
    apr_status_t rv;

    while (last->next) {
        last = last->next;
    }
    for (;;) {
        rv = last->frec->filter_func.out_func(last, NULL);
        if (rv != APR_SUCCESS) {
            c->aborted = 1;
            return rv;
        }
        if (!c->data_in_output_filters) {
            conn->out_pending_bytes = 0;
            conn->out_pending_eors = 0;
            conn->out_pending_known = 1;
            return APR_SUCCESS;
        }
        rv = vtm_filters_wait(conn, APR_POLLOUT);
        if (rv != APR_SUCCESS) {
            c->aborted = 1;
            return rv;
        }
    }
}

/* Park until the client socket is ready, bounded as a blocking core call
 * would be: by the socket's timeout. */
static apr_status_t vtm_filters_wait(vtm_conn_t *conn,
                                         apr_int16_t events)
{
    apr_interval_time_t timeout = vtm_filters_timeout(conn);
    apr_status_t rv;

    rv = vthread_wait_io(conn->sock, events, timeout);
    if (rv == APR_TIMEUP) {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, rv, conn->c, APLOGNO(10940)
                      "client socket not %s within %" APR_TIME_T_FMT " ms",
                      events == APR_POLLIN ? "readable" : "writable",
                      apr_time_as_msec(timeout));
    }
    else if (rv != APR_SUCCESS) {
        ap_log_cerror(APLOG_MARK, APLOG_TRACE1, rv, conn->c, APLOGNO(10941)
                      "wait on the client socket ended");
        conn->c->aborted = 1;
    }
    return rv;
}

/* What a blocking call on the client socket would wait for: the socket's
 * timeout (Timeout, or mod_reqtimeout's while it reads). */
static apr_interval_time_t vtm_filters_timeout(vtm_conn_t *conn)
{
    apr_interval_time_t timeout = 0;

    if (apr_socket_timeout_get(conn->sock, &timeout) != APR_SUCCESS
        || timeout == 0) {
        timeout = conn->c->base_server->timeout;
    }
    return timeout;
}
