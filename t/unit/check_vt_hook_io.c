/* Unit tests for vt_hook_io.c: read, write, writev, sendfile, connect,
 * accept and accept4 through the transparent hooks (installed on
 * libvt_hook_target.so, see vt_hook_test.h).
 *
 * Non-blocking fds pass through (EAGAIN, partial writes); blocking ones
 * park the fiber until ready, a blocking write writes everything, and
 * the fd's flags never change as the caller sees them. The blocking
 * cases run two fibers on ONE carrier, the peer being the other fiber:
 * a hook that blocked the carrier would deadlock, so each has a rescue
 * thread (vt_hook_rescue_*) that ends the wait and makes the test fail. */
#include "vt_hook_test.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>

static void set_nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    VT_CHECK(fl >= 0);
    VT_CHECK(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK)
             == 0);
}

/* What a call answered: return value and errno (errno only if < 0). */
typedef struct {
    long rv;
    int err;
} answer_t;

#define ANSWER(call) \
    (errno = 0, ans_rv_ = (long)(call), \
     (answer_t){ ans_rv_, ans_rv_ < 0 ? errno : 0 })

static int same(answer_t a, answer_t b)
{
    if (a.rv != b.rv || a.err != b.err) {
        fprintf(stderr, "hook answered %ld (errno %d), libc %ld (errno %d)"
                "\n", a.rv, a.err, b.rv, b.err);
        return 0;
    }
    return 1;
}

/* ---- read: answers without waiting, three ways ---------------------- */

static void body_read_answers(void *arg)
{
    int sv[2], pp[2], fl0, fl1, devnull;
    char buf[100];
    long ans_rv_;
    answer_t h, r;

    (void)arg;
    vt_hook_test_pair(sv);
    fl0 = fcntl(sv[0], F_GETFL);
    /* Partial read: 5 bytes there, 100 asked. */
    VT_CHECK(write(sv[1], "hello", 5) == 5);
    h = ANSWER(vt_tgt.read(sv[0], buf, sizeof(buf)));
    VT_CHECK(h.rv == 5 && memcmp(buf, "hello", 5) == 0);
    VT_CHECK(write(sv[1], "hello", 5) == 5);
    r = ANSWER(read(sv[0], buf, sizeof(buf)));
    VT_CHECK(same(h, r));
    /* A non-blocking socket with nothing to read: EAGAIN passes. */
    set_nonblock(sv[0], 1);
    fl1 = fcntl(sv[0], F_GETFL);
    h = ANSWER(vt_tgt.read(sv[0], buf, sizeof(buf)));
    r = ANSWER(read(sv[0], buf, sizeof(buf)));
    VT_CHECK(h.rv == -1 && h.err == EAGAIN);
    VT_CHECK(same(h, r));
    VT_CHECK(fcntl(sv[0], F_GETFL) == fl1);
    set_nonblock(sv[0], 0);
    VT_CHECK(fcntl(sv[0], F_GETFL) == fl0);
    /* A closed fd: EBADF. */
    h = ANSWER(vt_tgt.read(vt_hook_test_closed_fd(), buf, sizeof(buf)));
    r = ANSWER(read(vt_hook_test_closed_fd(), buf, sizeof(buf)));
    VT_CHECK(h.rv == -1 && h.err == EBADF);
    VT_CHECK(same(h, r));
    /* End of stream on a blocking socket: 0 at once. */
    close(sv[1]);
    h = ANSWER(vt_tgt.read(sv[0], buf, sizeof(buf)));
    r = ANSWER(read(sv[0], buf, sizeof(buf)));
    VT_CHECK(h.rv == 0);
    VT_CHECK(same(h, r));
    VT_CHECK(fcntl(sv[0], F_GETFL) == fl0);
    close(sv[0]);
    /* Not a socket: a pipe with data, an empty non-blocking pipe, a
     * character device. */
    VT_CHECK(pipe2(pp, O_CLOEXEC) == 0);
    VT_CHECK(write(pp[1], "abc", 3) == 3);
    h = ANSWER(vt_tgt.read(pp[0], buf, 2));
    VT_CHECK(h.rv == 2 && memcmp(buf, "ab", 2) == 0);
    h = ANSWER(vt_tgt.read(pp[0], buf, sizeof(buf)));
    VT_CHECK(h.rv == 1 && buf[0] == 'c');
    set_nonblock(pp[0], 1);
    h = ANSWER(vt_tgt.read(pp[0], buf, sizeof(buf)));
    r = ANSWER(read(pp[0], buf, sizeof(buf)));
    VT_CHECK(h.rv == -1 && h.err == EAGAIN);
    VT_CHECK(same(h, r));
    close(pp[0]);
    close(pp[1]);
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    VT_CHECK(devnull >= 0);
    h = ANSWER(vt_tgt.read(devnull, buf, sizeof(buf)));
    VT_CHECK(h.rv == 0);
    close(devnull);
}

START_TEST(test_read_answers)
{
    vt_hook_test_three_ways(body_read_answers, NULL);
}
END_TEST

/* ---- write, writev: answers without waiting, three ways ------------- */

static void body_write_answers(void *arg)
{
    int sv[2], fl, devnull;
    /* volatile: the compiler would refuse a constant -1 count */
    volatile int bad_count = -1;
    char buf[64], *big;
    size_t big_len = 1 << 20;
    struct iovec iov[3] = { { "ab", 2 }, { "", 0 }, { "cde", 3 } };
    long ans_rv_;
    answer_t h, r;

    (void)arg;
    vt_hook_test_pair(sv);
    h = ANSWER(vt_tgt.write(sv[0], "hello", 5));
    VT_CHECK(h.rv == 5);
    h = ANSWER(vt_tgt.writev(sv[0], iov, 3));
    VT_CHECK(h.rv == 5);
    VT_CHECK(read(sv[1], buf, sizeof(buf)) == 10);
    VT_CHECK(memcmp(buf, "helloabcde", 10) == 0);
    /* Nothing to write: 0. */
    h = ANSWER(vt_tgt.write(sv[0], "", 0));
    VT_CHECK(h.rv == 0);
    /* Non-blocking, the buffer fills: a partial write, then EAGAIN. */
    set_nonblock(sv[0], 1);
    fl = fcntl(sv[0], F_GETFL);
    big = malloc(big_len);
    VT_CHECK(big != NULL);
    memset(big, 'z', big_len);
    h = ANSWER(vt_tgt.write(sv[0], big, big_len));
    VT_CHECK(h.rv > 0 && h.rv < (long)big_len);
    h = ANSWER(vt_tgt.write(sv[0], big, big_len));
    r = ANSWER(write(sv[0], big, big_len));
    VT_CHECK(h.rv == -1 && h.err == EAGAIN);
    VT_CHECK(same(h, r));
    h = ANSWER(vt_tgt.writev(sv[0], iov, 3));
    VT_CHECK(h.rv == -1 && h.err == EAGAIN);
    VT_CHECK(fcntl(sv[0], F_GETFL) == fl);
    free(big);
    /* The peer gone: EPIPE (SIGPIPE is ignored by the test). */
    close(sv[1]);
    h = ANSWER(vt_tgt.write(sv[0], "x", 1));
    r = ANSWER(write(sv[0], "x", 1));
    VT_CHECK(h.rv == -1 && h.err == EPIPE);
    VT_CHECK(same(h, r));
    close(sv[0]);
    /* A closed fd: EBADF; a bad iovec count: EINVAL. */
    h = ANSWER(vt_tgt.write(vt_hook_test_closed_fd(), "x", 1));
    r = ANSWER(write(vt_hook_test_closed_fd(), "x", 1));
    VT_CHECK(h.rv == -1 && h.err == EBADF);
    VT_CHECK(same(h, r));
    h = ANSWER(vt_tgt.writev(vt_hook_test_closed_fd(), iov, 3));
    VT_CHECK(h.rv == -1 && h.err == EBADF);
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    VT_CHECK(devnull >= 0);
    h = ANSWER(vt_tgt.writev(devnull, iov, bad_count));
    r = ANSWER(writev(devnull, iov, bad_count));
    VT_CHECK(h.rv == -1 && h.err == EINVAL);
    VT_CHECK(same(h, r));
    /* Not a socket: the real call. */
    h = ANSWER(vt_tgt.write(devnull, "hello", 5));
    VT_CHECK(h.rv == 5);
    h = ANSWER(vt_tgt.writev(devnull, iov, 3));
    VT_CHECK(h.rv == 5);
    close(devnull);
}

START_TEST(test_write_answers)
{
    vt_hook_test_three_ways(body_write_answers, NULL);
}
END_TEST

/* ---- a blocking read parks; the writer is a fiber on the same carrier */

typedef struct {
    int fd[2];              /* [0] read by the hook, [1] written */
    _Atomic int in_call;
    _Atomic int overlap;    /* the peer ran while the hook waited */
    long rv;
    int err;
    int fl_before, fl_after;
    char buf[16];
} rpark_t;

static void body_read_blocking(void *arg)
{
    rpark_t *o = arg;
    o->fl_before = fcntl(o->fd[0], F_GETFL);
    errno = EDOM;
    atomic_store(&o->in_call, 1);
    o->rv = vt_tgt.read(o->fd[0], o->buf, sizeof(o->buf));
    o->err = errno;
    atomic_store(&o->in_call, 0);
    o->fl_after = fcntl(o->fd[0], F_GETFL);
}

static void body_write_later(void *arg)
{
    rpark_t *o = arg;
    vthread_sleep(VT_MS(100));
    atomic_store(&o->overlap, atomic_load(&o->in_call));
    /* What this fiber leaves in errno must not reach the reader's. */
    errno = ERANGE;
    VT_CHECK(write(o->fd[1], "ping", 4) == 4);
}

static void rescue_write(void *arg)
{
    rpark_t *o = arg;
    if (write(o->fd[1], "resc", 4) != 4) {
        shutdown(o->fd[0], SHUT_RDWR);
    }
}

static void run_read_parks(int use_pipe)
{
    vt_test_rt_t t;
    rpark_t o;
    vt_fiber_t *a, *b;
    vt_hook_rescue_t resc;
    vt_hook_call_stats_t before = vt_hook_test_stats(VT_HOOK_READ), after;
    int rescued;

    memset(&o, 0, sizeof(o));
    o.rv = -2;
    if (use_pipe) {
        ck_assert_int_eq(pipe2(o.fd, O_CLOEXEC), 0);
    }
    else {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                                    o.fd), 0);
    }
    vt_test_rt_start(&t, 1);
    vt_hook_rescue_start(&resc, VT_HOOK_RESCUE_MS, rescue_write, &o);
    a = vt_hook_test_go(&t, 1, body_read_blocking, &o, "reader");
    b = vt_hook_test_go(&t, 0, body_write_later, &o, "writer");
    ck_assert_int_eq(vt_test_join(a), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(b), APR_SUCCESS);
    rescued = vt_hook_rescue_end(&resc);
    vt_test_rt_stop(&t);
    after = vt_hook_test_stats(VT_HOOK_READ);
    ck_assert_msg(!rescued && o.overlap, "the writer did not run while "
                  "the reader was in the hook: the carrier was blocked");
    ck_assert_int_eq(o.rv, 4);
    ck_assert(memcmp(o.buf, "ping", 4) == 0);
    ck_assert_int_eq(o.fl_after, o.fl_before);
    ck_assert_int_eq(o.fl_before & O_NONBLOCK, 0);
    /* A successful read leaves errno as the caller had it. */
    ck_assert_int_eq(o.err, EDOM);
    ck_assert_uint_eq(after.calls - before.calls, 1);
    ck_assert_uint_eq(after.parked - before.parked, 1);
    close(o.fd[0]);
    close(o.fd[1]);
}

START_TEST(test_read_socket_parks)
{
    run_read_parks(0);
}
END_TEST

START_TEST(test_read_pipe_parks)
{
    run_read_parks(1);
}
END_TEST

/* ---- a blocking write of more than the buffer parks until drained ---- */

typedef struct {
    int sv[2];              /* [0] written by the hook, [1] drained */
    int use_writev;
    size_t total;
    char *data;
    _Atomic int in_call;
    _Atomic int overlap;
    long rv;
    int err;
    int fl_before, fl_after;
    size_t got;
    int pattern_ok;
} wpark_t;

static void body_write_blocking(void *arg)
{
    wpark_t *o = arg;
    o->fl_before = fcntl(o->sv[0], F_GETFL);
    errno = EDOM;
    atomic_store(&o->in_call, 1);
    if (o->use_writev) {
        /* Three pieces, the middle one empty. */
        struct iovec iov[3] = {
            { o->data, o->total / 3 }, { o->data, 0 },
            { o->data + o->total / 3, o->total - o->total / 3 }
        };
        o->rv = vt_tgt.writev(o->sv[0], iov, 3);
    }
    else {
        o->rv = vt_tgt.write(o->sv[0], o->data, o->total);
    }
    o->err = errno;
    atomic_store(&o->in_call, 0);
    o->fl_after = fcntl(o->sv[0], F_GETFL);
}

/* Drain with the hooked (blocking) read: it parks too. */
static void body_drain(void *arg)
{
    wpark_t *o = arg;
    char *buf = malloc(65536);
    VT_CHECK(buf != NULL);
    o->pattern_ok = 1;
    vthread_sleep(VT_MS(50));
    atomic_store(&o->overlap, atomic_load(&o->in_call));
    while (buf && o->got < o->total) {
        ssize_t n = vt_tgt.read(o->sv[1], buf, 65536);
        if (n <= 0) {
            break;
        }
        if (!vt_test_pattern_ok(buf, (apr_size_t)n, o->got)) {
            o->pattern_ok = 0;
        }
        o->got += (size_t)n;
    }
    free(buf);
}

/* Run @a writer against body_drain, both with the switch on, on one
 * carrier: @a total bytes through a socketpair with small buffers, so the
 * write cannot fit many times over. Fills @a o; the caller checks it and
 * frees o->data and o->sv with wpark_done(). */
static void wpark_run(wpark_t *o, size_t total, int use_writev,
                      void (*writer)(void *), const char *label)
{
    vt_test_rt_t t;
    vt_fiber_t *a, *b;
    vt_hook_rescue_t resc;
    int small = 16384, rescued;

    memset(o, 0, sizeof(*o));
    o->rv = -2;
    o->use_writev = use_writev;
    o->total = total;
    o->data = malloc(o->total);
    ck_assert_ptr_nonnull(o->data);
    vt_test_pattern_fill(o->data, o->total, 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                                o->sv), 0);
    setsockopt(o->sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(o->sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    vt_test_rt_start(&t, 1);
    vt_hook_rescue_start(&resc, VT_HOOK_RESCUE_MS, vt_hook_rescue_shutdown,
                         &o->sv[0]);
    a = vt_hook_test_go(&t, 1, writer, o, label);
    b = vt_hook_test_go(&t, 1, body_drain, o, "drain");
    ck_assert_int_eq(vt_test_join(a), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(b), APR_SUCCESS);
    rescued = vt_hook_rescue_end(&resc);
    vt_test_rt_stop(&t);
    ck_assert_msg(!rescued && o->overlap, "the drain did not run while %s "
                  "was in the hook: the carrier was blocked", label);
    /* Everything arrived, in order, and the fd's flags are unchanged. */
    ck_assert_int_eq(o->rv, (long)o->total);
    ck_assert_uint_eq(o->got, o->total);
    ck_assert(o->pattern_ok);
    ck_assert_int_eq(o->fl_after, o->fl_before);
    ck_assert_int_eq(o->err, EDOM);
}

static void wpark_done(wpark_t *o)
{
    free(o->data);
    close(o->sv[0]);
    close(o->sv[1]);
}

static void run_write_parks(int use_writev)
{
    wpark_t o;
    vt_hook_call_stats_t before = vt_hook_test_stats(VT_HOOK_WRITE), after;

    wpark_run(&o, (size_t)VT_N(4, 1) << 20, use_writev, body_write_blocking,
              "the writer");
    after = vt_hook_test_stats(VT_HOOK_WRITE);
    wpark_done(&o);
    ck_assert_int_eq(o.fl_before & O_NONBLOCK, 0);
    ck_assert_uint_eq(after.calls - before.calls, 1);
    ck_assert_uint_eq(after.parked - before.parked, 1);
}

START_TEST(test_write_blocking_parks)
{
    run_write_parks(0);
}
END_TEST

START_TEST(test_writev_blocking_parks)
{
    run_write_parks(1);
}
END_TEST

/* ---- sendfile ------------------------------------------------------- */

static void body_sendfile_blocking(void *arg)
{
    wpark_t *o = arg;
    char path[] = "/tmp/vt_hook_sendfile.XXXXXX";
    int in = mkstemp(path);
    off_t off = 0;

    VT_CHECK(in >= 0);
    unlink(path);
    VT_CHECK(write(in, o->data, o->total) == (ssize_t)o->total);
    o->fl_before = fcntl(o->sv[0], F_GETFL);
    errno = EDOM;
    atomic_store(&o->in_call, 1);
    o->rv = vt_tgt.sendfile(o->sv[0], in, &off, o->total);
    o->err = errno;
    atomic_store(&o->in_call, 0);
    o->fl_after = fcntl(o->sv[0], F_GETFL);
    VT_CHECK(off == (off_t)o->total);
    close(in);
}

START_TEST(test_sendfile_blocking_parks)
{
    wpark_t o;
    off_t off = 0;
    long ans_rv_;
    answer_t h, r;

    wpark_run(&o, (size_t)VT_N(2, 1) << 20, 0, body_sendfile_blocking,
              "sendfile");
    /* A bad input fd: the real answer (off a fiber here). */
    h = ANSWER(vt_tgt.sendfile(o.sv[0], vt_hook_test_closed_fd(), &off, 10));
    r = ANSWER(sendfile(o.sv[0], vt_hook_test_closed_fd(), &off, 10));
    ck_assert(same(h, r));
    wpark_done(&o);
}
END_TEST

/* ---- connect -------------------------------------------------------- */

typedef struct {
    struct sockaddr_in open_sa;     /* something listens there */
    struct sockaddr_in closed_sa;   /* nothing does */
} addrs_t;

static int tcp_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    VT_CHECK(fd >= 0);
    return fd;
}

/* A listener on 127.0.0.1, blocking; its address in @a sa. */
static int tcp_listener(struct sockaddr_in *sa)
{
    int fd = tcp_socket(), one = 1;
    socklen_t len = sizeof(*sa);
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    VT_CHECK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))
             == 0);
    VT_CHECK(bind(fd, (struct sockaddr *)sa, sizeof(*sa)) == 0);
    VT_CHECK(listen(fd, 64) == 0);
    VT_CHECK(getsockname(fd, (struct sockaddr *)sa, &len) == 0);
    return fd;
}

static void body_connect_answers(void *arg)
{
    addrs_t *a = arg;
    int c, fl;
    long ans_rv_;
    answer_t h, r;

    /* A listener: 0 on a blocking socket, flags as they were. */
    c = tcp_socket();
    fl = fcntl(c, F_GETFL);
    h = ANSWER(vt_tgt.connect(c, (struct sockaddr *)&a->open_sa,
                              sizeof(a->open_sa)));
    VT_CHECK(h.rv == 0);
    VT_CHECK(fcntl(c, F_GETFL) == fl);
    /* Connected already: EISCONN, as libc says. */
    h = ANSWER(vt_tgt.connect(c, (struct sockaddr *)&a->open_sa,
                              sizeof(a->open_sa)));
    r = ANSWER(connect(c, (struct sockaddr *)&a->open_sa,
                       sizeof(a->open_sa)));
    VT_CHECK(h.rv == -1 && h.err == EISCONN);
    VT_CHECK(same(h, r));
    close(c);
    /* Nothing listens: ECONNREFUSED, as libc says. */
    c = tcp_socket();
    h = ANSWER(vt_tgt.connect(c, (struct sockaddr *)&a->closed_sa,
                              sizeof(a->closed_sa)));
    VT_CHECK(fcntl(c, F_GETFL) == fl);
    close(c);
    c = tcp_socket();
    r = ANSWER(connect(c, (struct sockaddr *)&a->closed_sa,
                       sizeof(a->closed_sa)));
    close(c);
    VT_CHECK(h.rv == -1 && h.err == ECONNREFUSED);
    VT_CHECK(same(h, r));
    /* A closed fd: EBADF; a bad address length: EINVAL. */
    h = ANSWER(vt_tgt.connect(vt_hook_test_closed_fd(), (struct sockaddr *)&a->open_sa,
                              sizeof(a->open_sa)));
    VT_CHECK(h.rv == -1 && h.err == EBADF);
    c = tcp_socket();
    h = ANSWER(vt_tgt.connect(c, (struct sockaddr *)&a->open_sa, 3));
    r = ANSWER(connect(c, (struct sockaddr *)&a->open_sa, 3));
    VT_CHECK(h.rv == -1 && h.err == EINVAL);
    VT_CHECK(same(h, r));
    close(c);
}

START_TEST(test_connect_answers)
{
    addrs_t a;
    int l = tcp_listener(&a.open_sa), l2 = tcp_listener(&a.closed_sa);
    vt_hook_call_stats_t before = vt_hook_test_stats(VT_HOOK_CONNECT), after;

    close(l2);      /* its port: nothing listens there now */
    vt_hook_test_three_ways(body_connect_answers, &a);
    after = vt_hook_test_stats(VT_HOOK_CONNECT);
    close(l);
    ck_assert_uint_ge(after.calls - before.calls, 4);
}
END_TEST

/* ---- accept4 parks until a fiber on the same carrier connects ------- */

typedef struct {
    int l;
    struct sockaddr_in sa;
    int use_accept;
    _Atomic int in_call;
    _Atomic int overlap;
    int rv;
    int err;
    int fl_before, fl_after, new_fl, new_fd_fl;
    struct sockaddr_in peer;
    socklen_t peer_len;
    int client;
} apark_t;

static void body_accept_blocking(void *arg)
{
    apark_t *o = arg;
    o->fl_before = fcntl(o->l, F_GETFL);
    o->peer_len = sizeof(o->peer);
    errno = EDOM;
    atomic_store(&o->in_call, 1);
    if (o->use_accept) {
        o->rv = vt_tgt.accept(o->l, (struct sockaddr *)&o->peer,
                              &o->peer_len);
    }
    else {
        o->rv = vt_tgt.accept4(o->l, (struct sockaddr *)&o->peer,
                               &o->peer_len, SOCK_CLOEXEC);
    }
    o->err = errno;
    atomic_store(&o->in_call, 0);
    o->fl_after = fcntl(o->l, F_GETFL);
    if (o->rv >= 0) {
        o->new_fl = fcntl(o->rv, F_GETFL);
        o->new_fd_fl = fcntl(o->rv, F_GETFD);
    }
}

static void body_connect_later(void *arg)
{
    apark_t *o = arg;
    vthread_sleep(VT_MS(100));
    atomic_store(&o->overlap, atomic_load(&o->in_call));
    errno = ERANGE;
    o->client = tcp_socket();
    /* Hooked too: a blocking connect on the carrier the accept parks on. */
    VT_CHECK(vt_tgt.connect(o->client, (struct sockaddr *)&o->sa,
                            sizeof(o->sa)) == 0);
}

static void rescue_connect(void *arg)
{
    apark_t *o = arg;
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c >= 0 && connect(c, (struct sockaddr *)&o->sa, sizeof(o->sa)) != 0) {
        close(c);
    }
}

static void run_accept_parks(int use_accept)
{
    vt_test_rt_t t;
    apark_t o;
    vt_fiber_t *a, *b;
    vt_hook_rescue_t resc;
    vt_hook_call_stats_t before = vt_hook_test_stats(VT_HOOK_ACCEPT), after;
    int rescued;

    memset(&o, 0, sizeof(o));
    o.rv = -2;
    o.client = -1;
    o.use_accept = use_accept;
    o.l = tcp_listener(&o.sa);
    vt_test_assert_no_failures();
    vt_test_rt_start(&t, 1);
    vt_hook_rescue_start(&resc, VT_HOOK_RESCUE_MS, rescue_connect, &o);
    a = vt_hook_test_go(&t, 1, body_accept_blocking, &o, "accept");
    b = vt_hook_test_go(&t, 1, body_connect_later, &o, "connect");
    ck_assert_int_eq(vt_test_join(a), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(b), APR_SUCCESS);
    rescued = vt_hook_rescue_end(&resc);
    vt_test_rt_stop(&t);
    after = vt_hook_test_stats(VT_HOOK_ACCEPT);
    ck_assert_msg(!rescued && o.overlap, "the connecting fiber did not run "
                  "while accept was in the hook: the carrier was blocked");
    ck_assert_int_ge(o.rv, 0);
    ck_assert_int_eq(o.err, EDOM);
    ck_assert_int_eq(o.fl_after, o.fl_before);
    ck_assert_int_eq(o.fl_before & O_NONBLOCK, 0);
    /* The accepted socket's flags come from accept4's flags alone. */
    ck_assert_int_eq(o.new_fl & O_NONBLOCK, 0);
    ck_assert_int_eq(o.new_fd_fl & FD_CLOEXEC, use_accept ? 0 : FD_CLOEXEC);
    ck_assert_uint_eq(o.peer_len, sizeof(o.peer));
    ck_assert_int_eq(o.peer.sin_family, AF_INET);
    ck_assert_uint_eq(after.parked - before.parked, 1);
    close(o.rv);
    close(o.client);
    close(o.l);
}

START_TEST(test_accept4_parks)
{
    run_accept_parks(0);
}
END_TEST

START_TEST(test_accept_parks)
{
    run_accept_parks(1);
}
END_TEST

static void body_accept_answers(void *arg)
{
    int l, fl;
    struct sockaddr_in sa;
    long ans_rv_;
    answer_t h, r;

    (void)arg;
    /* A non-blocking listener with nobody waiting: EAGAIN passes. */
    l = tcp_listener(&sa);
    set_nonblock(l, 1);
    fl = fcntl(l, F_GETFL);
    h = ANSWER(vt_tgt.accept4(l, NULL, NULL, 0));
    r = ANSWER(accept4(l, NULL, NULL, 0));
    VT_CHECK(h.rv == -1 && h.err == EAGAIN);
    VT_CHECK(same(h, r));
    VT_CHECK(fcntl(l, F_GETFL) == fl);
    /* Bad flags: EINVAL; a closed fd: EBADF; not listening: EINVAL. */
    h = ANSWER(vt_tgt.accept4(l, NULL, NULL, 0x40000000));
    r = ANSWER(accept4(l, NULL, NULL, 0x40000000));
    VT_CHECK(same(h, r));
    close(l);
    h = ANSWER(vt_tgt.accept4(vt_hook_test_closed_fd(), NULL, NULL, 0));
    VT_CHECK(h.rv == -1 && h.err == EBADF);
    l = tcp_socket();
    h = ANSWER(vt_tgt.accept(l, NULL, NULL));
    r = ANSWER(accept(l, NULL, NULL));
    VT_CHECK(h.rv == -1 && h.err == EINVAL);
    VT_CHECK(same(h, r));
    close(l);
}

START_TEST(test_accept_answers)
{
    vt_hook_test_three_ways(body_accept_answers, NULL);
}
END_TEST

/* Counters: calls that returned at once are counted, none parked. */
static void body_counted(void *arg)
{
    int sv[2];
    char c;
    (void)arg;
    vt_hook_test_pair(sv);
    VT_CHECK(vt_tgt.write(sv[1], "x", 1) == 1);
    VT_CHECK(vt_tgt.read(sv[0], &c, 1) == 1);
    close(sv[0]);
    close(sv[1]);
}

START_TEST(test_counters)
{
    vt_test_rt_t t;
    vt_hook_call_stats_t r0 = vt_hook_test_stats(VT_HOOK_READ), r1;
    vt_hook_call_stats_t w0 = vt_hook_test_stats(VT_HOOK_WRITE), w1;
    vt_test_rt_start(&t, 1);
    /* Off a fiber and with the switch off: not counted at all. */
    body_counted(NULL);
    vt_hook_test_run(&t, 0, body_counted, NULL);
    r1 = vt_hook_test_stats(VT_HOOK_READ);
    w1 = vt_hook_test_stats(VT_HOOK_WRITE);
    ck_assert_uint_eq(r1.calls, r0.calls);
    ck_assert_uint_eq(w1.calls, w0.calls);
    vt_hook_test_run(&t, 1, body_counted, NULL);
    vt_test_rt_stop(&t);
    r1 = vt_hook_test_stats(VT_HOOK_READ);
    w1 = vt_hook_test_stats(VT_HOOK_WRITE);
    ck_assert_uint_eq(r1.calls - r0.calls, 1);
    ck_assert_uint_eq(w1.calls - w0.calls, 1);
    ck_assert_uint_eq(r1.parked - r0.parked, 0);
    ck_assert_uint_eq(w1.parked - w0.parked, 0);
    ck_assert_uint_eq(r1.pinned - r0.pinned, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_hook_io");
    /* EPIPE is an answer here, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    vt_hook_test_add(s, test_read_answers);
    vt_hook_test_add(s, test_write_answers);
    vt_hook_test_add(s, test_read_socket_parks);
    vt_hook_test_add(s, test_read_pipe_parks);
    vt_hook_test_add(s, test_write_blocking_parks);
    vt_hook_test_add(s, test_writev_blocking_parks);
    vt_hook_test_add(s, test_sendfile_blocking_parks);
    vt_hook_test_add(s, test_connect_answers);
    vt_hook_test_add(s, test_accept4_parks);
    vt_hook_test_add(s, test_accept_parks);
    vt_hook_test_add(s, test_accept_answers);
    vt_hook_test_add(s, test_counters);
    return vt_test_main(s);
}
