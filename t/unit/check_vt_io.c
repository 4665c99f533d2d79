/* Unit tests for vt_io.c: fiber-aware sockets over 127.0.0.1 (echo, partial
 * sends against a small receive buffer, sendv, timeouts from the socket's
 * own timeout, refused connects, accept on a fiber, end of stream),
 * vthread_wait_io/wait_fd, cancellation of an I/O wait, and every call off
 * a fiber.
 *
 * Pools: APR pools are not thread-safe, so the test thread creates every
 * pool and socket a fiber uses before starting it; a fiber allocates only
 * from a pool given to it alone.
 *
 * Slow mode (VT_SLOW=1, ASan, valgrind: see vt_test_util.h) moves less data
 * and uses fewer connections. */
#include "vt_test_util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Helpers that run on fibers. */

/* Send all of buf, whatever the partial sends. */
static apr_status_t send_all(apr_socket_t *s, const char *buf, apr_size_t len,
                             int *calls, int *partial)
{
    while (len) {
        apr_size_t n = len;
        apr_status_t rv = vthread_socket_send(s, buf, &n);
        if (calls) {
            (*calls)++;
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (n < len && partial) {
            (*partial)++;
        }
        if (n > len) {
            return APR_EGENERAL;
        }
        buf += n;
        len -= n;
    }
    return APR_SUCCESS;
}

/* Receive exactly len bytes. */
static apr_status_t recv_all(apr_socket_t *s, char *buf, apr_size_t len)
{
    while (len) {
        apr_size_t n = len;
        apr_status_t rv = vthread_socket_recv(s, buf, &n);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (n == 0 || n > len) {
            return APR_EGENERAL;
        }
        buf += n;
        len -= n;
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Echo: a server fiber accepts one connection and echoes until EOF; a
 * client fiber connects, sends chunks and reads each echo back. */

typedef struct {
    apr_socket_t *listener;
    apr_pool_t *conn_pool;
    apr_status_t accept_rv, end_rv;
    apr_size_t echoed;
    int accepted_on_fiber;
} echo_server_t;

static apr_status_t fn_echo_server(void *arg)
{
    echo_server_t *s = arg;
    apr_socket_t *c = NULL;
    char buf[16384];
    s->accepted_on_fiber = vthread_on_fiber();
    s->accept_rv = vthread_socket_accept(&c, s->listener, s->conn_pool);
    if (s->accept_rv != APR_SUCCESS) {
        return s->accept_rv;
    }
    for (;;) {
        apr_size_t n = sizeof(buf);
        apr_status_t rv = vthread_socket_recv(c, buf, &n);
        if (rv != APR_SUCCESS) {
            s->end_rv = rv;
            break;
        }
        if (!VT_CHECK(n > 0)) {
            break;
        }
        rv = send_all(c, buf, n, NULL, NULL);
        if (!VT_CHECK(rv == APR_SUCCESS)) {
            break;
        }
        s->echoed += n;
    }
    apr_socket_close(c);
    return APR_SUCCESS;
}

typedef struct {
    apr_socket_t *sock;
    apr_sockaddr_t *sa;
    apr_size_t total, chunk;
    apr_status_t connect_rv;
    apr_size_t verified;
} echo_client_t;

static apr_status_t fn_echo_client(void *arg)
{
    echo_client_t *c = arg;
    char *out = malloc(c->chunk), *in = malloc(c->chunk);
    apr_status_t rv = APR_SUCCESS;
    if (!VT_CHECK(out && in)) {
        free(out);
        free(in);
        return APR_ENOMEM;
    }
    c->connect_rv = vthread_socket_connect(c->sock, c->sa);
    if (c->connect_rv != APR_SUCCESS) {
        rv = c->connect_rv;
        goto done;
    }
    for (apr_size_t off = 0; off < c->total; off += c->chunk) {
        apr_size_t n = c->total - off < c->chunk ? c->total - off : c->chunk;
        vt_test_pattern_fill(out, n, off);
        rv = send_all(c->sock, out, n, NULL, NULL);
        if (!VT_CHECK(rv == APR_SUCCESS)) {
            goto done;
        }
        memset(in, 0, n);
        rv = recv_all(c->sock, in, n);
        if (!VT_CHECK(rv == APR_SUCCESS)) {
            goto done;
        }
        if (!VT_CHECK(vt_test_pattern_ok(in, n, off))) {
            rv = APR_EGENERAL;
            goto done;
        }
        c->verified += n;
    }
    apr_socket_shutdown(c->sock, APR_SHUTDOWN_WRITE);
    {
        /* the server closes after our EOF: we see EOF too */
        apr_size_t n = c->chunk;
        rv = vthread_socket_recv(c->sock, in, &n);
        VT_CHECK(rv == APR_EOF);
        VT_CHECK(n == 0);
        rv = APR_SUCCESS;
    }
done:
    free(out);
    free(in);
    return rv;
}

START_TEST(test_echo_fibers)
{
    vt_test_rt_t t;
    echo_server_t s;
    echo_client_t c;
    vt_fiber_t *fs, *fc;
    memset(&s, 0, sizeof(s));
    memset(&c, 0, sizeof(c));
    vt_test_rt_start(&t, 2);
    s.listener = vt_test_listener(t.pool, 0, &c.sa);
    ck_assert_int_eq(apr_pool_create(&s.conn_pool, t.pool), APR_SUCCESS);
    c.sock = vt_test_socket(t.pool);
    c.total = VT_N(1024 * 1024, 128 * 1024) + 123;
    c.chunk = 16 * 1024;
    fs = vt_test_go(&t, fn_echo_server, &s, "echo-server");
    fc = vt_test_go(&t, fn_echo_client, &c, "echo-client");
    ck_assert_int_eq(vt_test_join(fc), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(fs), APR_SUCCESS);
    ck_assert_int_eq(s.accepted_on_fiber, 1);
    ck_assert_int_eq(s.accept_rv, APR_SUCCESS);
    ck_assert_int_eq(c.connect_rv, APR_SUCCESS);
    ck_assert_uint_eq(c.verified, c.total);
    ck_assert_uint_eq(s.echoed, c.total);
    ck_assert_int_eq(s.end_rv, APR_EOF);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 4 MB in one send call against a small receive buffer, sender and a slow
 * receiver on ONE carrier: sends are partial, the sender parks (were it to
 * block, the receiver could never run and the test would hang). */

typedef struct {
    apr_socket_t *sock;
    apr_sockaddr_t *sa;
    const char *data;
    apr_size_t total;
    int calls, partial;
    apr_status_t rv;
    apr_interval_time_t parked;
} big_sender_t;

static apr_status_t fn_big_sender(void *arg)
{
    big_sender_t *b = arg;
    b->rv = vthread_socket_connect(b->sock, b->sa);
    if (b->rv != APR_SUCCESS) {
        return b->rv;
    }
    b->rv = send_all(b->sock, b->data, b->total, &b->calls, &b->partial);
    apr_socket_shutdown(b->sock, APR_SHUTDOWN_WRITE);
    b->parked = vt_fiber_parked_time(vt_fiber_current());
    return b->rv;
}

typedef struct {
    apr_socket_t *listener;
    apr_pool_t *conn_pool;
    apr_size_t received;
    int bad_at;             /* first offset with a wrong byte, or -1 */
    apr_status_t end_rv;
} big_receiver_t;

static apr_status_t fn_big_receiver(void *arg)
{
    big_receiver_t *r = arg;
    apr_socket_t *c = NULL;
    char buf[8192];
    apr_size_t since_nap = 0;
    apr_status_t rv = vthread_socket_accept(&c, r->listener, r->conn_pool);
    if (!VT_CHECK(rv == APR_SUCCESS)) {
        return rv;
    }
    for (;;) {
        apr_size_t n = sizeof(buf);
        rv = vthread_socket_recv(c, buf, &n);
        if (rv != APR_SUCCESS) {
            r->end_rv = rv;
            break;
        }
        if (r->bad_at < 0 && !vt_test_pattern_ok(buf, n, r->received)) {
            r->bad_at = (int)r->received;
        }
        r->received += n;
        since_nap += n;
        if (since_nap >= 256 * 1024) {
            since_nap = 0;
            vthread_sleep(VT_MS(2));   /* let the sender fill up and park */
        }
    }
    apr_socket_close(c);
    return APR_SUCCESS;
}

START_TEST(test_big_send_small_rcvbuf)
{
    vt_test_rt_t t;
    big_sender_t b;
    big_receiver_t r;
    vt_fiber_t *fs, *fr;
    char *data;
    memset(&b, 0, sizeof(b));
    memset(&r, 0, sizeof(r));
    r.bad_at = -1;
    b.total = VT_N(4, 1) * 1024 * 1024;
    data = malloc(b.total);
    ck_assert_ptr_nonnull(data);
    vt_test_pattern_fill(data, b.total, 0);
    b.data = data;
    vt_test_rt_start(&t, 1);
    r.listener = vt_test_listener(t.pool, 4096, &b.sa);
    ck_assert_int_eq(apr_pool_create(&r.conn_pool, t.pool), APR_SUCCESS);
    b.sock = vt_test_socket(t.pool);
    ck_assert_int_eq(apr_socket_opt_set(b.sock, APR_SO_SNDBUF, 4096),
                     APR_SUCCESS);
    fr = vt_test_go(&t, fn_big_receiver, &r, "big-receiver");
    fs = vt_test_go(&t, fn_big_sender, &b, "big-sender");
    ck_assert_int_eq(vt_test_join(fs), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(fr), APR_SUCCESS);
    ck_assert_int_eq(b.rv, APR_SUCCESS);
    ck_assert_uint_eq(r.received, b.total);
    ck_assert_int_eq(r.bad_at, -1);
    ck_assert_int_eq(r.end_rv, APR_EOF);
    /* the sender had to wait for the receiver: it parked */
    ck_assert_int_gt(b.parked, 0);
    ck_assert_int_ge(b.calls, 1);
    vt_test_rt_stop(&t);
    free(data);
}
END_TEST

/* ------------------------------------------------------------------ */
/* sendv */

typedef struct {
    apr_socket_t *sock;
    apr_status_t rv;
    apr_size_t sent;
} sendv_t;

static apr_status_t fn_sendv(void *arg)
{
    sendv_t *s = arg;
    static const char a[] = "GET / HTTP/1.1\r\n", b[] = "Host: x\r\n",
                      c[] = "\r\n";
    struct iovec v[3] = {
        { (void *)a, sizeof(a) - 1 },
        { (void *)b, sizeof(b) - 1 },
        { (void *)c, sizeof(c) - 1 },
    };
    apr_size_t want = v[0].iov_len + v[1].iov_len + v[2].iov_len;
    s->rv = APR_SUCCESS;
    while (s->rv == APR_SUCCESS && s->sent < want) {
        apr_size_t n = 0;
        struct iovec w[3];
        int k = 0;
        apr_size_t skip = s->sent;
        for (int i = 0; i < 3; i++) {
            if (skip >= v[i].iov_len) {
                skip -= v[i].iov_len;
                continue;
            }
            w[k].iov_base = (char *)v[i].iov_base + skip;
            w[k].iov_len = v[i].iov_len - skip;
            skip = 0;
            k++;
        }
        s->rv = vthread_socket_sendv(s->sock, w, k, &n);
        s->sent += n;
    }
    return s->rv;
}

START_TEST(test_sendv)
{
    vt_test_rt_t t;
    apr_socket_t *cl, *sv;
    sendv_t s;
    char buf[128];
    const char *want = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    memset(&s, 0, sizeof(s));
    memset(buf, 0, sizeof(buf));
    vt_test_rt_start(&t, 2);
    vt_test_socket_pair(t.pool, &cl, &sv);
    s.sock = cl;
    ck_assert_int_eq(vt_test_run(&t, fn_sendv, &s), APR_SUCCESS);
    ck_assert_uint_eq(s.sent, strlen(want));
    {
        apr_size_t got = 0;
        while (got < strlen(want)) {
            apr_size_t n = sizeof(buf) - 1 - got;
            ck_assert_int_eq(apr_socket_recv(sv, buf + got, &n), APR_SUCCESS);
            got += n;
        }
    }
    ck_assert_str_eq(buf, want);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Timeouts come from the socket (apr_socket_timeout_set). */

typedef struct {
    apr_socket_t *sock;
    apr_pool_t *pool;
    apr_status_t rv;
    apr_interval_time_t took;
    apr_size_t len;
    apr_size_t sent;
} op_t;

static apr_status_t fn_recv_once(void *arg)
{
    op_t *o = arg;
    char buf[64];
    apr_time_t t0 = apr_time_now();
    o->len = sizeof(buf);
    o->rv = vthread_socket_recv(o->sock, buf, &o->len);
    o->took = vt_test_elapsed(t0);
    return APR_SUCCESS;
}

START_TEST(test_recv_timeout)
{
    vt_test_rt_t t;
    apr_socket_t *cl, *sv;
    op_t o;
    memset(&o, 0, sizeof(o));
    vt_test_rt_start(&t, 2);
    vt_test_socket_pair(t.pool, &cl, &sv);
    ck_assert_int_eq(apr_socket_timeout_set(sv, VT_MS(50)), APR_SUCCESS);
    o.sock = sv;
    ck_assert_int_eq(vt_test_run(&t, fn_recv_once, &o), APR_SUCCESS);
    ck_assert_msg(APR_STATUS_IS_TIMEUP(o.rv), "recv returned %d", o.rv);
    ck_assert_int_ge(o.took, VT_MS(49));
    ck_assert_int_lt(o.took, VT_MS(50) + vt_test_soon());
    /* the socket still works afterwards */
    {
        apr_size_t n = 5;
        ck_assert_int_eq(apr_socket_send(cl, "hello", &n), APR_SUCCESS);
    }
    ck_assert_int_eq(vt_test_run(&t, fn_recv_once, &o), APR_SUCCESS);
    ck_assert_int_eq(o.rv, APR_SUCCESS);
    ck_assert_uint_eq(o.len, 5);
    vt_test_rt_stop(&t);
}
END_TEST

static apr_status_t fn_send_until_stuck(void *arg)
{
    op_t *o = arg;
    static char chunk[65536];
    apr_time_t t0 = apr_time_now();
    o->rv = APR_SUCCESS;
    /* the peer never reads: the buffers fill and a send times out */
    while (o->rv == APR_SUCCESS && o->sent < 256u * 1024 * 1024) {
        apr_size_t n = sizeof(chunk);
        t0 = apr_time_now();
        o->rv = vthread_socket_send(o->sock, chunk, &n);
        o->sent += n;
    }
    o->took = vt_test_elapsed(t0);
    return APR_SUCCESS;
}

START_TEST(test_send_timeout)
{
    vt_test_rt_t t;
    apr_sockaddr_t *sa;
    apr_socket_t *l, *cl, *sv;
    op_t o;
    memset(&o, 0, sizeof(o));
    vt_test_rt_start(&t, 2);
    l = vt_test_listener(t.pool, 4096, &sa);
    cl = vt_test_socket(t.pool);
    ck_assert_int_eq(apr_socket_opt_set(cl, APR_SO_SNDBUF, 4096), APR_SUCCESS);
    ck_assert_int_eq(apr_socket_connect(cl, sa), APR_SUCCESS);
    ck_assert_int_eq(apr_socket_accept(&sv, l, t.pool), APR_SUCCESS);
    ck_assert_int_eq(apr_socket_timeout_set(cl, VT_MS(50)), APR_SUCCESS);
    o.sock = cl;
    ck_assert_int_eq(vt_test_run(&t, fn_send_until_stuck, &o), APR_SUCCESS);
    ck_assert_msg(APR_STATUS_IS_TIMEUP(o.rv), "send returned %d after %lu "
                  "bytes", o.rv, (unsigned long)o.sent);
    ck_assert_uint_gt(o.sent, 0);
    ck_assert_int_ge(o.took, VT_MS(49));
    ck_assert_int_lt(o.took, VT_MS(50) + vt_test_soon());
    vt_test_rt_stop(&t);
}
END_TEST

typedef struct {
    apr_socket_t *listener;
    apr_pool_t *pool;
    apr_status_t rv;
    apr_interval_time_t took;
} accept_t;

static apr_status_t fn_accept_once(void *arg)
{
    accept_t *a = arg;
    apr_socket_t *c = NULL;
    apr_time_t t0 = apr_time_now();
    a->rv = vthread_socket_accept(&c, a->listener, a->pool);
    a->took = vt_test_elapsed(t0);
    if (a->rv == APR_SUCCESS) {
        apr_socket_close(c);
    }
    return APR_SUCCESS;
}

START_TEST(test_accept_timeout)
{
    vt_test_rt_t t;
    apr_sockaddr_t *sa;
    accept_t a;
    memset(&a, 0, sizeof(a));
    vt_test_rt_start(&t, 2);
    a.listener = vt_test_listener(t.pool, 0, &sa);
    ck_assert_int_eq(apr_pool_create(&a.pool, t.pool), APR_SUCCESS);
    ck_assert_int_eq(apr_socket_timeout_set(a.listener, VT_MS(50)),
                     APR_SUCCESS);
    ck_assert_int_eq(vt_test_run(&t, fn_accept_once, &a), APR_SUCCESS);
    ck_assert_msg(APR_STATUS_IS_TIMEUP(a.rv), "accept returned %d", a.rv);
    ck_assert_int_ge(a.took, VT_MS(49));
    ck_assert_int_lt(a.took, VT_MS(50) + vt_test_soon());
    vt_test_rt_stop(&t);
}
END_TEST

/* Accept parks until a client (a plain thread) connects later. */
typedef struct {
    apr_sockaddr_t *sa;
    apr_socket_t *sock;
    apr_status_t rv;
} late_client_t;

static void *late_client(void *arg)
{
    late_client_t *c = arg;
    apr_sleep(VT_MS(50));
    c->rv = apr_socket_connect(c->sock, c->sa);
    return NULL;
}

START_TEST(test_accept_parks)
{
    vt_test_rt_t t;
    accept_t a;
    late_client_t c;
    apr_thread_t *th;
    memset(&a, 0, sizeof(a));
    memset(&c, 0, sizeof(c));
    vt_test_rt_start(&t, 1);
    a.listener = vt_test_listener(t.pool, 0, &c.sa);
    ck_assert_int_eq(apr_pool_create(&a.pool, t.pool), APR_SUCCESS);
    c.sock = vt_test_socket(t.pool);
    th = vt_test_thread(t.pool, late_client, &c);
    ck_assert_int_eq(vt_test_run(&t, fn_accept_once, &a), APR_SUCCESS);
    vt_test_thread_join(th);
    ck_assert_int_eq(c.rv, APR_SUCCESS);
    ck_assert_int_eq(a.rv, APR_SUCCESS);
    ck_assert_int_ge(a.took, VT_MS(40));
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */

typedef struct {
    apr_socket_t *sock;
    apr_sockaddr_t *sa;
    apr_status_t rv;
} connect_t;

static apr_status_t fn_connect(void *arg)
{
    connect_t *c = arg;
    c->rv = vthread_socket_connect(c->sock, c->sa);
    return APR_SUCCESS;
}

START_TEST(test_connect_refused)
{
    vt_test_rt_t t;
    connect_t c;
    vt_test_rt_start(&t, 2);
    c.sa = vt_test_closed_addr(t.pool);
    c.sock = vt_test_socket(t.pool);
    c.rv = -1;
    ck_assert_int_eq(vt_test_run(&t, fn_connect, &c), APR_SUCCESS);
    ck_assert_msg(APR_STATUS_IS_ECONNREFUSED(c.rv), "connect returned %d",
                  c.rv);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* End of stream and wait_io. */

typedef struct {
    apr_socket_t *sock;
    apr_status_t wait_rv, recv_rv, recv2_rv;
    apr_size_t len, len2;
    char buf[64];
    apr_interval_time_t took;
} waiter_t;

static apr_status_t fn_wait_then_recv(void *arg)
{
    waiter_t *w = arg;
    apr_time_t t0 = apr_time_now();
    w->wait_rv = vthread_wait_io(w->sock, APR_POLLIN, apr_time_from_sec(10));
    w->took = vt_test_elapsed(t0);
    w->len = sizeof(w->buf);
    w->recv_rv = vthread_socket_recv(w->sock, w->buf, &w->len);
    w->len2 = sizeof(w->buf);
    w->recv2_rv = vthread_socket_recv(w->sock, w->buf + w->len, &w->len2);
    return APR_SUCCESS;
}

typedef struct {
    apr_socket_t *sock;
    apr_interval_time_t delay;
    const char *msg;        /* NULL: close instead */
} poke_t;

static void *poke(void *arg)
{
    poke_t *p = arg;
    apr_sleep(p->delay);
    if (p->msg) {
        apr_size_t n = strlen(p->msg);
        VT_CHECK(apr_socket_send(p->sock, p->msg, &n) == APR_SUCCESS);
        apr_socket_shutdown(p->sock, APR_SHUTDOWN_WRITE);
    }
    else {
        apr_socket_shutdown(p->sock, APR_SHUTDOWN_READWRITE);
    }
    return NULL;
}

START_TEST(test_wait_io_then_data_then_eof)
{
    vt_test_rt_t t;
    apr_socket_t *cl, *sv;
    waiter_t w;
    poke_t p;
    apr_thread_t *th;
    memset(&w, 0, sizeof(w));
    vt_test_rt_start(&t, 2);
    vt_test_socket_pair(t.pool, &cl, &sv);
    w.sock = sv;
    p.sock = cl;
    p.delay = VT_MS(50);
    p.msg = "ping";
    th = vt_test_thread(t.pool, poke, &p);
    ck_assert_int_eq(vt_test_run(&t, fn_wait_then_recv, &w), APR_SUCCESS);
    vt_test_thread_join(th);
    ck_assert_int_eq(w.wait_rv, APR_SUCCESS);
    ck_assert_int_ge(w.took, VT_MS(40));
    ck_assert_int_eq(w.recv_rv, APR_SUCCESS);
    ck_assert_uint_eq(w.len, 4);
    ck_assert_int_eq(memcmp(w.buf, "ping", 4), 0);
    ck_assert_int_eq(w.recv2_rv, APR_EOF);
    ck_assert_uint_eq(w.len2, 0);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_wait_io_hangup)
{
    vt_test_rt_t t;
    apr_socket_t *cl, *sv;
    waiter_t w;
    poke_t p;
    apr_thread_t *th;
    memset(&w, 0, sizeof(w));
    vt_test_rt_start(&t, 2);
    vt_test_socket_pair(t.pool, &cl, &sv);
    w.sock = sv;
    p.sock = cl;
    p.delay = VT_MS(30);
    p.msg = NULL;
    th = vt_test_thread(t.pool, poke, &p);
    ck_assert_int_eq(vt_test_run(&t, fn_wait_then_recv, &w), APR_SUCCESS);
    vt_test_thread_join(th);
    /* hang-up counts as ready; the next call reports EOF */
    ck_assert_int_eq(w.wait_rv, APR_SUCCESS);
    ck_assert_int_eq(w.recv_rv, APR_EOF);
    ck_assert_uint_eq(w.len, 0);
    vt_test_rt_stop(&t);
}
END_TEST

typedef struct {
    apr_socket_t *sock;
    apr_status_t in_rv, out_rv, both_rv;
    apr_interval_time_t in_took;
} wait_io_t;

static apr_status_t fn_wait_io_timeouts(void *arg)
{
    wait_io_t *w = arg;
    apr_time_t t0 = apr_time_now();
    w->in_rv = vthread_wait_io(w->sock, APR_POLLIN, VT_MS(30));
    w->in_took = vt_test_elapsed(t0);
    w->out_rv = vthread_wait_io(w->sock, APR_POLLOUT, apr_time_from_sec(10));
    w->both_rv = vthread_wait_io(w->sock, APR_POLLIN | APR_POLLOUT, 0);
    return APR_SUCCESS;
}

START_TEST(test_wait_io_timeout_and_writable)
{
    vt_test_rt_t t;
    apr_socket_t *cl, *sv;
    wait_io_t w;
    memset(&w, 0, sizeof(w));
    vt_test_rt_start(&t, 2);
    vt_test_socket_pair(t.pool, &cl, &sv);
    w.sock = sv;
    ck_assert_int_eq(vt_test_run(&t, fn_wait_io_timeouts, &w), APR_SUCCESS);
    ck_assert_int_eq(w.in_rv, APR_TIMEUP);
    ck_assert_int_ge(w.in_took, VT_MS(29));
    ck_assert_int_lt(w.in_took, VT_MS(30) + vt_test_soon());
    ck_assert_int_eq(w.out_rv, APR_SUCCESS);
    /* "zero polls once": a writable socket is ready, not timed out */
    ck_assert_msg(w.both_rv == APR_SUCCESS, "vthread_wait_io(writable socket, "
                  "IN|OUT, timeout 0) on a fiber returned %d, not APR_SUCCESS",
                  w.both_rv);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* wait_fd on a pipe. */

typedef struct {
    int rfd, wfd;
    apr_status_t timeout_rv, ready_rv, out_rv;
    apr_interval_time_t timeout_took, ready_took;
} pipe_wait_t;

static apr_status_t fn_wait_pipe(void *arg)
{
    pipe_wait_t *p = arg;
    apr_time_t t0 = apr_time_now();
    p->out_rv = vthread_wait_fd(p->wfd, APR_POLLOUT, apr_time_from_sec(10));
    p->timeout_rv = vthread_wait_fd(p->rfd, APR_POLLIN, VT_MS(30));
    p->timeout_took = vt_test_elapsed(t0);
    t0 = apr_time_now();
    p->ready_rv = vthread_wait_fd(p->rfd, APR_POLLIN, apr_time_from_sec(10));
    p->ready_took = vt_test_elapsed(t0);
    return APR_SUCCESS;
}

typedef struct {
    int fd;
    apr_interval_time_t delay;
} pipe_poke_t;

static void *pipe_poke(void *arg)
{
    pipe_poke_t *p = arg;
    apr_sleep(p->delay);
    VT_CHECK(write(p->fd, "!", 1) == 1);
    return NULL;
}

static void check_pipe_wait(pipe_wait_t *p)
{
    ck_assert_int_eq(p->out_rv, APR_SUCCESS);
    ck_assert_int_eq(p->timeout_rv, APR_TIMEUP);
    ck_assert_int_ge(p->timeout_took, VT_MS(29));
    ck_assert_int_eq(p->ready_rv, APR_SUCCESS);
    ck_assert_int_lt(p->ready_took, apr_time_from_sec(10));
}

START_TEST(test_wait_fd_pipe)
{
    vt_test_rt_t t;
    pipe_wait_t p;
    pipe_poke_t pk;
    apr_thread_t *th;
    int fds[2];
    char c;
    memset(&p, 0, sizeof(p));
    ck_assert_int_eq(pipe(fds), 0);
    p.rfd = fds[0];
    p.wfd = fds[1];
    pk.fd = fds[1];
    pk.delay = VT_MS(150);
    vt_test_rt_start(&t, 2);
    th = vt_test_thread(t.pool, pipe_poke, &pk);
    ck_assert_int_eq(vt_test_run(&t, fn_wait_pipe, &p), APR_SUCCESS);
    vt_test_thread_join(th);
    check_pipe_wait(&p);
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    ck_assert_int_eq(c, '!');
    vt_test_rt_stop(&t);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Cancel a fiber parked in I/O. */

typedef struct {
    apr_socket_t *sock;
    int fd;
    apr_status_t recv_rv, fd_rv;
} cancel_io_t;

static apr_status_t fn_recv_forever(void *arg)
{
    cancel_io_t *c = arg;
    char buf[16];
    apr_size_t n = sizeof(buf);
    c->recv_rv = vthread_socket_recv(c->sock, buf, &n);
    /* cancelled: later waits fail at once too */
    c->fd_rv = vthread_wait_fd(c->fd, APR_POLLIN, -1);
    return APR_SUCCESS;
}

START_TEST(test_cancel_io_wait)
{
    vt_test_rt_t t;
    apr_socket_t *cl, *sv;
    cancel_io_t c;
    vt_fiber_t *f;
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    vt_test_rt_start(&t, 2);
    vt_test_socket_pair(t.pool, &cl, &sv);
    c.sock = sv;
    c.fd = fds[0];
    c.recv_rv = c.fd_rv = -1;
    f = vt_test_go(&t, fn_recv_forever, &c, "recv-forever");
    ck_assert(vt_test_wait_parked(t.rt, 0, 1, 0));
    vt_spawn_cancel(f);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    ck_assert_int_eq(c.recv_rv, APR_ECONNABORTED);
    ck_assert_int_eq(c.fd_rv, APR_ECONNABORTED);
    vt_test_rt_stop(&t);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Many connections: an acceptor fiber hands each connection to its own
 * echo fiber; client fibers connect, exchange a message, close. */

enum { MANY_MAX = 64 };

typedef struct {
    vt_runtime_t *rt;
    apr_socket_t *listener;
    apr_pool_t *pools[MANY_MAX];
    int n;
    _Atomic int echoed;
} acceptor_t;

static apr_status_t fn_conn_echo(void *arg)
{
    apr_socket_t *c = arg;
    char buf[2048];
    for (;;) {
        apr_size_t n = sizeof(buf);
        if (vthread_socket_recv(c, buf, &n) != APR_SUCCESS) {
            break;
        }
        if (!VT_CHECK(send_all(c, buf, n, NULL, NULL) == APR_SUCCESS)) {
            break;
        }
    }
    apr_socket_close(c);
    return APR_SUCCESS;
}

static apr_status_t fn_acceptor(void *arg)
{
    acceptor_t *a = arg;
    vt_fiber_t *kids[MANY_MAX];
    int k = 0;
    for (int i = 0; i < a->n; i++) {
        apr_socket_t *c = NULL;
        if (!VT_CHECK(vthread_socket_accept(&c, a->listener, a->pools[i])
                      == APR_SUCCESS)) {
            break;
        }
        if (!VT_CHECK(vt_spawn_create(&kids[k], a->rt, fn_conn_echo, c,
                                      "conn") == APR_SUCCESS)) {
            apr_socket_close(c);
            break;
        }
        vt_spawn_start(kids[k++]);
    }
    for (int i = 0; i < k; i++) {
        VT_CHECK(vt_wait_join(kids[i], -1, NULL) == APR_SUCCESS);
        atomic_fetch_add(&a->echoed, 1);
    }
    return APR_SUCCESS;
}

typedef struct {
    apr_socket_t *sock;
    apr_sockaddr_t *sa;
    int id;
    int ok;
} many_client_t;

static apr_status_t fn_many_client(void *arg)
{
    many_client_t *c = arg;
    char out[1000], in[1000];
    if (!VT_CHECK(vthread_socket_connect(c->sock, c->sa) == APR_SUCCESS)) {
        return APR_EGENERAL;
    }
    vt_test_pattern_fill(out, sizeof(out), (apr_size_t)c->id * 7);
    for (int round = 0; round < 3; round++) {
        if (!VT_CHECK(send_all(c->sock, out, sizeof(out), NULL, NULL)
                      == APR_SUCCESS)
            || !VT_CHECK(recv_all(c->sock, in, sizeof(in)) == APR_SUCCESS)
            || !VT_CHECK(memcmp(in, out, sizeof(in)) == 0)) {
            return APR_EGENERAL;
        }
        vthread_sleep(1000);
    }
    apr_socket_close(c->sock);
    c->ok = 1;
    return APR_SUCCESS;
}

START_TEST(test_many_connections)
{
    vt_test_rt_t t;
    acceptor_t a;
    many_client_t c[MANY_MAX];
    vt_fiber_t *fa, *fc[MANY_MAX];
    apr_sockaddr_t *sa;
    int n = VT_N(MANY_MAX, 16);
    memset(&a, 0, sizeof(a));
    vt_test_rt_start(&t, 2);
    a.rt = t.rt;
    a.n = n;
    a.listener = vt_test_listener(t.pool, 0, &sa);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(apr_pool_create(&a.pools[i], t.pool), APR_SUCCESS);
        c[i].sock = vt_test_socket(t.pool);
        c[i].sa = sa;
        c[i].id = i;
        c[i].ok = 0;
    }
    fa = vt_test_go(&t, fn_acceptor, &a, "acceptor");
    for (int i = 0; i < n; i++) {
        fc[i] = vt_test_go(&t, fn_many_client, &c[i], "client");
    }
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(vt_test_join(fc[i]), APR_SUCCESS);
        ck_assert_int_eq(c[i].ok, 1);
    }
    ck_assert_int_eq(vt_test_join(fa), APR_SUCCESS);
    ck_assert_int_eq(atomic_load(&a.echoed), n);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Off a fiber every call behaves like the APR call it mirrors. */

static void off_fiber_io(apr_pool_t *pool)
{
    apr_sockaddr_t *sa;
    apr_socket_t *l = vt_test_listener(pool, 0, &sa);
    apr_socket_t *cl = vt_test_socket(pool), *sv = NULL, *refused;
    char buf[64];
    apr_size_t n;
    apr_time_t t0;
    int fds[2];
    struct iovec v[2] = { { (void *)"ab", 2 }, { (void *)"cde", 3 } };

    ck_assert_int_eq(vthread_on_fiber(), 0);
    ck_assert_int_eq(vthread_socket_connect(cl, sa), APR_SUCCESS);
    ck_assert_int_eq(vthread_socket_accept(&sv, l, pool), APR_SUCCESS);

    n = 5;
    ck_assert_int_eq(vthread_socket_send(cl, "hello", &n), APR_SUCCESS);
    ck_assert_uint_eq(n, 5);
    n = 0;
    ck_assert_int_eq(vthread_socket_sendv(cl, v, 2, &n), APR_SUCCESS);
    ck_assert_uint_eq(n, 5);
    ck_assert_int_eq(vthread_wait_io(sv, APR_POLLIN, apr_time_from_sec(5)),
                     APR_SUCCESS);
    {
        apr_size_t got = 0;
        while (got < 10) {
            n = sizeof(buf) - got;
            ck_assert_int_eq(vthread_socket_recv(sv, buf + got, &n),
                             APR_SUCCESS);
            got += n;
        }
        ck_assert_int_eq(memcmp(buf, "helloabcde", 10), 0);
    }

    /* recv timeout from the socket */
    ck_assert_int_eq(apr_socket_timeout_set(sv, VT_MS(40)), APR_SUCCESS);
    t0 = apr_time_now();
    n = sizeof(buf);
    ck_assert(APR_STATUS_IS_TIMEUP(vthread_socket_recv(sv, buf, &n)));
    ck_assert_int_ge(vt_test_elapsed(t0), VT_MS(39));
    ck_assert_int_eq(vthread_wait_io(sv, APR_POLLIN, VT_MS(20)), APR_TIMEUP);

    /* accept with a timeout and nobody connecting: whatever APR's own
     * accept returns (it does not wait: EAGAIN), but never a socket */
    {
        apr_socket_t *none = NULL;
        apr_status_t mine, apr;
        ck_assert_int_eq(apr_socket_timeout_set(l, VT_MS(30)), APR_SUCCESS);
        mine = vthread_socket_accept(&none, l, pool);
        apr = apr_socket_accept(&none, l, pool);
        ck_assert_int_ne(mine, APR_SUCCESS);
        ck_assert_int_eq(mine, apr);
    }

    /* EOF */
    apr_socket_close(cl);
    ck_assert_int_eq(apr_socket_timeout_set(sv, apr_time_from_sec(5)),
                     APR_SUCCESS);
    n = sizeof(buf);
    ck_assert_int_eq(vthread_socket_recv(sv, buf, &n), APR_EOF);
    ck_assert_uint_eq(n, 0);

    /* refused */
    refused = vt_test_socket(pool);
    ck_assert(APR_STATUS_IS_ECONNREFUSED(
        vthread_socket_connect(refused, vt_test_closed_addr(pool))));

    /* wait_fd */
    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(vthread_wait_fd(fds[1], APR_POLLOUT, -1), APR_SUCCESS);
    t0 = apr_time_now();
    ck_assert_int_eq(vthread_wait_fd(fds[0], APR_POLLIN, VT_MS(30)),
                     APR_TIMEUP);
    ck_assert_int_ge(vt_test_elapsed(t0), VT_MS(29));
    ck_assert_int_eq(write(fds[1], "x", 1), 1);
    ck_assert_int_eq(vthread_wait_fd(fds[0], APR_POLLIN, -1), APR_SUCCESS);
    close(fds[0]);
    close(fds[1]);
}

START_TEST(test_off_fiber_with_runtime)
{
    vt_test_rt_t t;
    vt_test_rt_start(&t, 2);
    off_fiber_io(t.pool);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_off_fiber_no_runtime)
{
    apr_pool_t *p;
    ck_assert_ptr_null(vt_runtime_default());
    ck_assert_int_eq(apr_pool_create(&p, NULL), APR_SUCCESS);
    off_fiber_io(p);
    apr_pool_destroy(p);
}
END_TEST

/* The same from a plain thread while the runtime runs: no fiber there. */
typedef struct {
    apr_pool_t *pool;
    int ok;
} thread_io_t;

static void *thread_io(void *arg)
{
    thread_io_t *x = arg;
    apr_socket_t *cl, *sv;
    char buf[8];
    apr_size_t n = 3;
    /* Checks here are VT_CHECKs: ck_assert only on the test thread. */
    apr_sockaddr_t *sa = NULL;
    apr_socket_t *l = NULL;
    if (!VT_CHECK(apr_socket_create(&l, APR_INET, SOCK_STREAM, APR_PROTO_TCP,
                                    x->pool) == APR_SUCCESS)
        || !VT_CHECK(apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0,
                                           x->pool) == APR_SUCCESS)
        || !VT_CHECK(apr_socket_bind(l, sa) == APR_SUCCESS)
        || !VT_CHECK(apr_socket_listen(l, 4) == APR_SUCCESS)
        || !VT_CHECK(apr_socket_addr_get(&sa, APR_LOCAL, l) == APR_SUCCESS)
        || !VT_CHECK(apr_socket_create(&cl, APR_INET, SOCK_STREAM,
                                       APR_PROTO_TCP, x->pool) == APR_SUCCESS)
        || !VT_CHECK(vthread_socket_connect(cl, sa) == APR_SUCCESS)
        || !VT_CHECK(vthread_socket_accept(&sv, l, x->pool) == APR_SUCCESS)
        || !VT_CHECK(vthread_socket_send(cl, "abc", &n) == APR_SUCCESS)) {
        return NULL;
    }
    n = sizeof(buf);
    if (VT_CHECK(vthread_socket_recv(sv, buf, &n) == APR_SUCCESS)
        && VT_CHECK(n >= 1 && memcmp(buf, "abc", n) == 0)) {
        x->ok = 1;
    }
    return NULL;
}

START_TEST(test_off_fiber_plain_thread)
{
    vt_test_rt_t t;
    thread_io_t x;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(apr_pool_create(&x.pool, t.pool), APR_SUCCESS);
    x.ok = 0;
    vt_test_thread_join(vt_test_thread(t.pool, thread_io, &x));
    ck_assert_int_eq(x.ok, 1);
    vt_test_rt_stop(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_io");
    vt_test_add(s, test_echo_fibers);
    vt_test_add(s, test_big_send_small_rcvbuf);
    vt_test_add(s, test_sendv);
    vt_test_add(s, test_recv_timeout);
    vt_test_add(s, test_send_timeout);
    vt_test_add(s, test_accept_timeout);
    vt_test_add(s, test_accept_parks);
    vt_test_add(s, test_connect_refused);
    vt_test_add(s, test_wait_io_then_data_then_eof);
    vt_test_add(s, test_wait_io_hangup);
    vt_test_add(s, test_wait_io_timeout_and_writable);
    vt_test_add(s, test_wait_fd_pipe);
    vt_test_add(s, test_cancel_io_wait);
    vt_test_add(s, test_many_connections);
    vt_test_add(s, test_off_fiber_with_runtime);
    vt_test_add(s, test_off_fiber_no_runtime);
    vt_test_add(s, test_off_fiber_plain_thread);
    return vt_test_main(s);
}
