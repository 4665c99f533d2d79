/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * Clients that hang up while their handler runs on a fiber.
 *
 * A handler parked in a long poll or a slow backend call does not read
 * from its client, so nothing would notice the client leaving until the
 * wait ends: departed clients would pile up fibers and connections. So
 * while a handler runs on a fiber its client socket is watched for a
 * hang-up (EPOLLRDHUP: the client closed or shut down its side; EPOLLHUP,
 * EPOLLERR: reset), and on one the fiber is cancelled (vthread.h: its
 * waits return APR_ECONNABORTED), as nginx ends a request whose client
 * closed. The handler unwinds, the response finds the connection gone, and
 * the connection is closed and released as usual.
 *
 * The watch starts at the handler's first wait (vtm_hangup_arm): a
 * handler that never waits cannot be cancelled anyway, and most requests
 * of a busy server never wait, so they are spared the watch's epoll_ctl
 * pair and its lock (hello at c=100: 23,400 -> 26,100 req/s, means of 4
 * alternating 5 s wrk runs).
 *
 * One epoll set and one thread per child. A watched connection is listed
 * under a mutex by a token; an event carries the token, not a pointer, so
 * a late event for a connection no longer watched finds nothing. The
 * fiber handle is used only under that mutex while listed, and a fiber
 * unlists itself (vtm_hangup_unwatch) before its handler's connection
 * goes on, so the handle is valid whenever it is cancelled.
 *
 * Limit: a client that shuts down its sending side but still waits for
 * the response (rare with HTTP/1.1) is taken as gone, unless bytes it sent
 * are still unread in the socket (pipelined requests).
 */
#include <errno.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#endif

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_main.h>

#include <apr_hash.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>

#include "vtm_glue.h"
#include "vtm_conn.h"
#include "vtm_hangup.h"
#include "vt_spawn.h"
#include "vt_thread_name.h"

APLOG_USE_MODULE(vthread);

#ifdef __linux__

static void *APR_THREAD_FUNC vtm_hangup_main(apr_thread_t *thread,
                                                 void *data);
static void vtm_hangup_seen(apr_uint64_t token);

static int vtm_hangup_epfd = -1;
static int vtm_hangup_stopfd = -1;
static apr_thread_t *vtm_hangup_thread;
/* Under the mutex: token -> vtm_conn_t (key: &conn->hangup_token). */
static apr_thread_mutex_t *vtm_hangup_mutex;
static apr_hash_t *vtm_hangup_table;
static apr_uint64_t vtm_hangup_next;

apr_status_t vtm_hangup_child_init(apr_pool_t *pchild)
{
    struct epoll_event ev;
    apr_threadattr_t *attr;
    apr_pool_t *p;
    apr_status_t rv;

    vtm_hangup_next = 0;
    vtm_hangup_epfd = epoll_create1(EPOLL_CLOEXEC);
    vtm_hangup_stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vtm_hangup_epfd < 0 || vtm_hangup_stopfd < 0) {
        rv = APR_FROM_OS_ERROR(errno);
        goto fail;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = 0;  /* tokens start at 1 */
    if (epoll_ctl(vtm_hangup_epfd, EPOLL_CTL_ADD, vtm_hangup_stopfd,
                  &ev) < 0) {
        rv = APR_FROM_OS_ERROR(errno);
        goto fail;
    }
    /* The table's pool is used under the mutex only. */
    if ((rv = apr_pool_create(&p, pchild)) != APR_SUCCESS
        || (rv = apr_thread_mutex_create(&vtm_hangup_mutex,
                                         APR_THREAD_MUTEX_DEFAULT,
                                         pchild)) != APR_SUCCESS) {
        goto fail;
    }
    vtm_hangup_table = apr_hash_make(p);
    apr_threadattr_create(&attr, pchild);
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 122)
    rv = ap_thread_create(&vtm_hangup_thread, attr, vtm_hangup_main,
                          NULL, pchild);
#else
    rv = apr_thread_create(&vtm_hangup_thread, attr, vtm_hangup_main,
                           NULL, pchild);
#endif
    if (rv != APR_SUCCESS) {
        goto fail;
    }
    return APR_SUCCESS;

fail:
    ap_log_error(APLOG_MARK, APLOG_WARNING, rv, ap_server_conf, APLOGNO(10915)
                 "cannot watch clients for hang-ups: fibers of departed "
                 "clients run until their waits end");
    vtm_hangup_child_exit();
    return rv;
}

void vtm_hangup_child_exit(void)
{
    apr_status_t rv;

    if (vtm_hangup_thread) {
        apr_uint64_t one = 1;

        if (write(vtm_hangup_stopfd, &one, sizeof(one)) < 0) {
            /* the counter cannot overflow here */
        }
        apr_thread_join(&rv, vtm_hangup_thread);
        vtm_hangup_thread = NULL;
    }
    if (vtm_hangup_epfd >= 0) {
        close(vtm_hangup_epfd);
        vtm_hangup_epfd = -1;
    }
    if (vtm_hangup_stopfd >= 0) {
        close(vtm_hangup_stopfd);
        vtm_hangup_stopfd = -1;
    }
}

void vtm_hangup_watch(vtm_conn_t *conn)
{
    struct epoll_event ev;
    apr_os_sock_t fd;

    if (!vtm_hangup_thread || !conn->sock
        || apr_os_sock_get(&fd, conn->sock) != APR_SUCCESS) {
        return;
    }
    apr_thread_mutex_lock(vtm_hangup_mutex);
    conn->hangup_token = ++vtm_hangup_next;
    conn->hangup_fiber = vt_fiber_current();
    apr_hash_set(vtm_hangup_table, &conn->hangup_token,
                 sizeof(conn->hangup_token), conn);
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLRDHUP | EPOLLONESHOT;
    ev.data.u64 = conn->hangup_token;
    if (epoll_ctl(vtm_hangup_epfd, EPOLL_CTL_ADD, fd, &ev) < 0
        && (errno != EEXIST
            || epoll_ctl(vtm_hangup_epfd, EPOLL_CTL_MOD, fd, &ev) < 0)) {
        apr_hash_set(vtm_hangup_table, &conn->hangup_token,
                     sizeof(conn->hangup_token), NULL);
        conn->hangup_token = 0;
        conn->hangup_fiber = NULL;
    }
    apr_thread_mutex_unlock(vtm_hangup_mutex);
}

static void vtm_hangup_watch_deferred(void *conn)
{
    vtm_hangup_watch(conn);
}

void vtm_hangup_arm(vtm_conn_t *conn)
{
    vt_fiber_t *f = vt_fiber_current();

    if (f) {
        vt_fiber_on_first_wait(f, vtm_hangup_watch_deferred, conn);
    }
}

void vtm_hangup_unwatch(vtm_conn_t *conn)
{
    vt_fiber_t *f = vt_fiber_current();
    apr_os_sock_t fd;

    if (f) {
        vt_fiber_on_first_wait(f, NULL, NULL);  /* if it never waited */
    }
    if (!conn->hangup_token) {
        return;
    }
    apr_thread_mutex_lock(vtm_hangup_mutex);
    apr_hash_set(vtm_hangup_table, &conn->hangup_token,
                 sizeof(conn->hangup_token), NULL);
    if (apr_os_sock_get(&fd, conn->sock) == APR_SUCCESS) {
        epoll_ctl(vtm_hangup_epfd, EPOLL_CTL_DEL, fd, NULL);
    }
    conn->hangup_token = 0;
    conn->hangup_fiber = NULL;
    apr_thread_mutex_unlock(vtm_hangup_mutex);
}

static void *APR_THREAD_FUNC vtm_hangup_main(apr_thread_t *thread,
                                                 void *data)
{
    struct epoll_event evs[64];
    int i, n;

    (void)data;
    vt_thread_name("hangup", -1);
    for (;;) {
        n = epoll_wait(vtm_hangup_epfd, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        for (i = 0; i < n; i++) {
            if (evs[i].data.u64 == 0) {
                apr_thread_exit(thread, APR_SUCCESS);
                return NULL;
            }
            vtm_hangup_seen(evs[i].data.u64);
        }
    }
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

static void vtm_hangup_seen(apr_uint64_t token)
{
    vtm_conn_t *conn;
    apr_os_sock_t fd;
    int unread = 0;

    apr_thread_mutex_lock(vtm_hangup_mutex);
    conn = apr_hash_get(vtm_hangup_table, &token, sizeof(token));
    if (conn) {
        /* Bytes still unread: pipelined requests before a half-close;
         * the client wants answers. */
        if (apr_os_sock_get(&fd, conn->sock) == APR_SUCCESS
            && ioctl(fd, FIONREAD, &unread) < 0) {
            unread = 0;
        }
        if (unread <= 0) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ap_server_conf,
                         APLOGNO(10916) "client hung up: cancelling the "
                         "fiber serving %s",
                         vt_fiber_label(conn->hangup_fiber));
            vt_spawn_cancel(conn->hangup_fiber);
        }
    }
    apr_thread_mutex_unlock(vtm_hangup_mutex);
}

#else /* !__linux__ */

apr_status_t vtm_hangup_child_init(apr_pool_t *pchild)
{
    (void)pchild;
    return APR_ENOTIMPL;
}

void vtm_hangup_child_exit(void)
{
}

void vtm_hangup_watch(vtm_conn_t *conn)
{
    (void)conn;
}

void vtm_hangup_arm(vtm_conn_t *conn)
{
    (void)conn;
}

void vtm_hangup_unwatch(vtm_conn_t *conn)
{
    (void)conn;
}

#endif /* __linux__ */
