/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * Long poll: requests that share state.
 *
 *   vthread-poll     GET ?topic=T&timeout=S    wait for the next message
 *                    POST ?topic=T             publish the body to waiters
 */

#include "httpd.h"
#include "http_log.h"
#include "http_protocol.h"

#include "apr_hash.h"
#include "apr_lib.h"
#include "apr_ring.h"
#include "apr_strings.h"

#include <stdlib.h>
#include <string.h>

#include "vthread.h"

#include "demo.h"

#define DEMO_POLL_MAX_S        300
#define DEMO_POLL_DEFAULT_S    30
#define DEMO_POLL_BODY_MAX     (64 * 1024)
#define DEMO_POLL_TOPICS_MAX   10000
#define DEMO_TOPIC_NAME_MAX    64

/* ------------------------------------------------------------------ */
/* vthread-poll
 *
 * A process-wide table of topics under one vthread mutex. Each waiter
 * brings its own vthread event and joins its topic's list; a publisher
 * hands the message to every waiter on the list and signals each event.
 * A signal given before its waiter got to wait is kept by the event, so
 * no wake-up is lost between unlocking the mutex and waiting, and every
 * waiter gets exactly the first message published after it began. */

typedef struct {
    apr_size_t refs;        /* one per waiter still to copy it */
    apr_uint64_t seq;
    apr_size_t len;
    char data[];
} demo_msg_t;

typedef struct demo_waiter_t demo_waiter_t;
struct demo_waiter_t {
    APR_RING_ENTRY(demo_waiter_t) link;
    vthread_event_t *ev;
    demo_msg_t *msg;        /* set by the publisher, with a reference */
    int linked;
};

typedef struct {
    apr_uint64_t seq;       /* of the last message published */
    apr_size_t nwaiters;
    APR_RING_HEAD(demo_waiters_t, demo_waiter_t) waiters;
} demo_topic_t;

static struct {
    vthread_mutex_t *mutex;
    apr_pool_t *pool;       /* topics; touched only under the mutex */
    apr_hash_t *topics;
} demo_poll_table;

static int demo_topic_ok(const char *name)
{
    apr_size_t n = 0;

    for (; *name; name++, n++) {
        if (n >= DEMO_TOPIC_NAME_MAX
            || !(apr_isalnum(*name) || *name == '_' || *name == '-')) {
            return 0;
        }
    }
    return n > 0;
}

/* Under the mutex: the topic, created if absent (NULL when full). */
static demo_topic_t *demo_topic_get(const char *name)
{
    demo_topic_t *t = apr_hash_get(demo_poll_table.topics, name,
                                   APR_HASH_KEY_STRING);

    if (t == NULL
        && apr_hash_count(demo_poll_table.topics) < DEMO_POLL_TOPICS_MAX) {
        t = apr_pcalloc(demo_poll_table.pool, sizeof(*t));
        APR_RING_INIT(&t->waiters, demo_waiter_t, link);
        apr_hash_set(demo_poll_table.topics,
                     apr_pstrdup(demo_poll_table.pool, name),
                     APR_HASH_KEY_STRING, t);
    }
    return t;
}

/* Take the mutex even if this fiber is cancelled (then lock() fails at
 * once): a waiter must unlink itself before its memory goes, since a
 * publisher may still write to it. Critical sections never park, so the
 * holder is another thread, or a fiber that only needs this carrier to
 * yield. */
static void demo_poll_lock_always(void)
{
    while (vthread_mutex_lock(demo_poll_table.mutex) != APR_SUCCESS) {
        if (vthread_mutex_trylock(demo_poll_table.mutex) == APR_SUCCESS) {
            return;
        }
        vthread_yield();
    }
}

/* Under the mutex: drop one reference. */
static void demo_msg_release(demo_msg_t *msg)
{
    if (--msg->refs == 0) {
        free(msg);
    }
}

static int demo_poll_wait(request_rec *r, const char *name,
                          apr_int64_t timeout_s)
{
    demo_waiter_t w;
    demo_topic_t *t;
    demo_msg_t *msg;
    char *body = NULL;
    apr_size_t len = 0;
    apr_uint64_t seq = 0;
    apr_status_t rv, wrv;

    memset(&w, 0, sizeof(w));
    if ((rv = vthread_event_create(&w.ev, r->pool)) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if ((rv = vthread_mutex_lock(demo_poll_table.mutex)) != APR_SUCCESS) {
        return demo_aborted(r, rv, "lock");
    }
    if ((t = demo_topic_get(name)) == NULL) {
        vthread_mutex_unlock(demo_poll_table.mutex);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, APLOGNO(10959)
                      "%s: too many topics (%d)", r->handler,
                      DEMO_POLL_TOPICS_MAX);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    APR_RING_INSERT_TAIL(&t->waiters, &w, demo_waiter_t, link);
    w.linked = 1;
    t->nwaiters++;
    vthread_mutex_unlock(demo_poll_table.mutex);

    wrv = vthread_event_wait(w.ev, apr_time_from_sec(timeout_s));

    /* Leave the list whatever happened; a message that arrived meanwhile
     * is ours. */
    demo_poll_lock_always();
    if (w.linked) {
        APR_RING_REMOVE(&w, link);
        w.linked = 0;
        t->nwaiters--;
    }
    msg = w.msg;
    if (msg != NULL) {
        len = msg->len;
        seq = msg->seq;
        body = len ? apr_pmemdup(r->pool, msg->data, len) : "";
        demo_msg_release(msg);
    }
    vthread_mutex_unlock(demo_poll_table.mutex);

    if (msg == NULL) {
        if (wrv != APR_SUCCESS && !APR_STATUS_IS_TIMEUP(wrv)) {
            return demo_aborted(r, wrv, "poll");
        }
        return HTTP_NO_CONTENT;
    }
    ap_set_content_type(r, "application/octet-stream");
    apr_table_setn(r->headers_out, "X-Topic-Seq",
                   apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, seq));
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only && len > 0) {
        ap_rwrite(body, (int)len, r);
    }
    return OK;
}

typedef struct {
    char *buf;
    apr_size_t len;
} demo_collect_t;

static int demo_collect(void *ctx, const char *data, apr_size_t len)
{
    demo_collect_t *c = ctx;

    if (len > DEMO_POLL_BODY_MAX - c->len) {
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    memcpy(c->buf + c->len, data, len);
    c->len += len;
    return OK;
}

static int demo_poll_publish(request_rec *r, const char *name)
{
    demo_collect_t body;
    demo_topic_t *t;
    demo_msg_t *msg;
    apr_size_t woken = 0;
    apr_uint64_t seq;
    apr_status_t rv;
    int st;

    body.buf = apr_palloc(r->pool, DEMO_POLL_BODY_MAX);
    body.len = 0;
    if ((st = demo_read_body(r, demo_collect, &body)) != OK) {
        return st;
    }
    msg = malloc(sizeof(*msg) + body.len);
    if (msg == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    memcpy(msg->data, body.buf, body.len);
    msg->len = body.len;
    msg->refs = 1;

    if ((rv = vthread_mutex_lock(demo_poll_table.mutex)) != APR_SUCCESS) {
        free(msg);
        return demo_aborted(r, rv, "lock");
    }
    if ((t = demo_topic_get(name)) == NULL) {
        vthread_mutex_unlock(demo_poll_table.mutex);
        free(msg);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, APLOGNO(10960)
                      "%s: too many topics (%d)", r->handler,
                      DEMO_POLL_TOPICS_MAX);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    seq = msg->seq = ++t->seq;
    while (!APR_RING_EMPTY(&t->waiters, demo_waiter_t, link)) {
        demo_waiter_t *w = APR_RING_FIRST(&t->waiters);

        APR_RING_REMOVE(w, link);
        w->linked = 0;
        w->msg = msg;
        msg->refs++;
        t->nwaiters--;
        vthread_event_signal(w->ev);
        woken++;
    }
    demo_msg_release(msg);
    vthread_mutex_unlock(demo_poll_table.mutex);

    ap_set_content_type(r, "text/plain");
    apr_table_setn(r->headers_out, "X-Topic-Seq",
                   apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, seq));
    ap_rprintf(r, "woken %" APR_SIZE_T_FMT "\n", woken);
    return OK;
}

int demo_poll(request_rec *r, apr_table_t *args)
{
    const char *topic = apr_table_get(args, "topic");
    apr_int64_t timeout;
    int st;

    if ((st = demo_check_method(r, DEMO_GET | DEMO_POST)) != OK) {
        return st;
    }
    if (topic == NULL || !demo_topic_ok(topic)) {
        return demo_bad_request(r, "topic must be [A-Za-z0-9_-]{1,64}");
    }
    if (demo_poll_table.mutex == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, APLOGNO(10961)
                      "%s: the topic table was not created", r->handler);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (r->method_number == M_POST) {
        return demo_poll_publish(r, topic);
    }
    if (demo_arg_int(args, "timeout", 1, DEMO_POLL_MAX_S, DEMO_POLL_DEFAULT_S,
                     &timeout) != 0) {
        return demo_bad_request(r, "timeout must be 1..300");
    }
    return demo_poll_wait(r, topic, timeout);
}

/* child_init: without the table, vthread-poll answers 500 (AH10961). */
void demo_poll_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_allocator_t *allocator;
    apr_status_t rv;

    /* Topics are allocated from any thread, under our mutex only: give
     * them a pool of their own allocator, freed with the child. */
    rv = apr_allocator_create(&allocator);
    if (rv == APR_SUCCESS) {
        rv = apr_pool_create_ex(&demo_poll_table.pool, pchild, NULL,
                                allocator);
        if (rv == APR_SUCCESS) {
            apr_allocator_owner_set(allocator, demo_poll_table.pool);
        }
        else {
            apr_allocator_destroy(allocator);
        }
    }
    if (rv == APR_SUCCESS) {
        rv = vthread_mutex_create(&demo_poll_table.mutex, pchild);
    }
    if (rv != APR_SUCCESS) {
        demo_poll_table.mutex = NULL;
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, APLOGNO(10963)
                     "cannot create the vthread-poll topic table");
        return;
    }
    demo_poll_table.topics = apr_hash_make(demo_poll_table.pool);
}
