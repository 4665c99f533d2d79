/* Unit tests for vt_reactor.c: poll timeouts, readiness on pipes and
 * sockets, hang-up, EBUSY and EPERM registrations, removal, batches larger
 * than one epoll_wait, and wake-ups from another thread.
 *
 * Slow mode (VT_SLOW=1, ASan, valgrind: see vt_test_util.h) only widens the
 * time bounds. */
#include "vt_test_util.h"
#include "vt_reactor.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    vt_io_wait_t w;
    int calls;
    apr_int16_t last;
} waiter_t;

static void on_ready(vt_io_wait_t *w)
{
    waiter_t *x = (waiter_t *)w;
    x->calls++;
    x->last = w->revents;
}

static void waiter_init(waiter_t *x, int fd, apr_int16_t events)
{
    x->w.fd = fd;
    x->w.events = events;
    x->w.revents = 0;
    x->w.ready = on_ready;
    x->calls = 0;
    x->last = 0;
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

START_TEST(test_init_destroy_no_fd_leak)
{
    vt_reactor_t r;
    int before = open_fds();
    ck_assert_int_eq(vt_reactor_init(&r), APR_SUCCESS);
    ck_assert_int_ge(r.epfd, 0);
    ck_assert_int_ge(r.wakefd, 0);
    ck_assert_int_ne(r.epfd, r.wakefd);
    ck_assert_int_eq(open_fds(), before + 2);
    vt_reactor_destroy(&r);
    ck_assert_int_eq(open_fds(), before);
}
END_TEST

START_TEST(test_poll_timeout)
{
    vt_reactor_t r;
    apr_time_t t0;
    apr_interval_time_t el;
    ck_assert_int_eq(vt_reactor_init(&r), APR_SUCCESS);
    t0 = apr_time_now();
    ck_assert_int_eq(vt_reactor_poll(&r, 0), APR_SUCCESS);
    ck_assert_int_lt(vt_test_elapsed(t0), vt_test_soon());
    t0 = apr_time_now();
    ck_assert_int_eq(vt_reactor_poll(&r, VT_MS(30)), APR_SUCCESS);
    el = vt_test_elapsed(t0);
    ck_assert_int_ge(el, VT_MS(29));
    ck_assert_int_lt(el, vt_test_soon());
    /* sub-millisecond timeouts must not turn into a busy poll of 0 ms
     * forever, nor into a long wait */
    t0 = apr_time_now();
    ck_assert_int_eq(vt_reactor_poll(&r, 300), APR_SUCCESS);
    ck_assert_int_lt(vt_test_elapsed(t0), vt_test_soon());
    vt_reactor_destroy(&r);
}
END_TEST

START_TEST(test_pipe_readable)
{
    vt_reactor_t r;
    waiter_t x;
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(vt_reactor_init(&r), APR_SUCCESS);
    waiter_init(&x, p[0], APR_POLLIN);
    ck_assert_int_eq(vt_reactor_add(&r, &x.w), APR_SUCCESS);
    ck_assert_int_eq(vt_reactor_poll(&r, 0), APR_SUCCESS);
    ck_assert_int_eq(x.calls, 0);
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    ck_assert_int_eq(vt_reactor_poll(&r, VT_MS(5000)), APR_SUCCESS);
    ck_assert_int_eq(x.calls, 1);
    ck_assert(x.last & APR_POLLIN);
    ck_assert(!(x.last & APR_POLLOUT));
    vt_reactor_remove(&r, &x.w);
    /* removed: the still-readable pipe no longer calls back */
    ck_assert_int_eq(vt_reactor_poll(&r, VT_MS(10)), APR_SUCCESS);
    ck_assert_int_eq(x.calls, 1);
    /* and it can be registered again */
    ck_assert_int_eq(vt_reactor_add(&r, &x.w), APR_SUCCESS);
    ck_assert_int_eq(vt_reactor_poll(&r, VT_MS(5000)), APR_SUCCESS);
    ck_assert_int_eq(x.calls, 2);
    vt_reactor_remove(&r, &x.w);
    vt_reactor_destroy(&r);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(test_pipe_writable)
{
    vt_reactor_t r;
    waiter_t x;
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(vt_reactor_init(&r), APR_SUCCESS);
    waiter_init(&x, p[1], APR_POLLOUT);
    ck_assert_int_eq(vt_reactor_add(&r, &x.w), APR_SUCCESS);
    ck_assert_int_eq(vt_reactor_poll(&r, VT_MS(5000)), APR_SUCCESS);
    ck_assert_int_eq(x.calls, 1);
    ck_assert(x.last & APR_POLLOUT);
    vt_reactor_remove(&r, &x.w);
    vt_reactor_destroy(&r);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(test_hangup)
{
    vt_reactor_t r;
    waiter_t x, y;
    int p[2], sv[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(vt_reactor_init(&r), APR_SUCCESS);
    waiter_init(&x, p[0], APR_POLLIN);
    waiter_init(&y, sv[0], APR_POLLIN);
    ck_assert_int_eq(vt_reactor_add(&r, &x.w), APR_SUCCESS);
    ck_assert_int_eq(vt_reactor_add(&r, &y.w), APR_SUCCESS);
    close(p[1]);
    close(sv[1]);
    for (int i = 0; i < 10 && (x.calls == 0 || y.calls == 0); i++) {
        ck_assert_int_eq(vt_reactor_poll(&r, VT_MS(1000)), APR_SUCCESS);
        if (x.calls) {
            vt_reactor_remove(&r, &x.w);
        }
        if (y.calls) {
            vt_reactor_remove(&r, &y.w);
        }
    }
    ck_assert_int_eq(x.calls, 1);
    ck_assert_int_eq(y.calls, 1);
    /* a waiter for input learns of the hang-up (its next read sees EOF) */
    ck_assert(x.last & (APR_POLLIN | APR_POLLHUP));
    ck_assert(y.last & (APR_POLLIN | APR_POLLHUP));
    vt_reactor_destroy(&r);
    close(p[0]);
    close(sv[0]);
}
END_TEST

START_TEST(test_add_twice_ebusy)
{
    vt_reactor_t r;
    waiter_t x, y;
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(vt_reactor_init(&r), APR_SUCCESS);
    waiter_init(&x, p[0], APR_POLLIN);
    waiter_init(&y, p[0], APR_POLLIN);
    ck_assert_int_eq(vt_reactor_add(&r, &x.w), APR_SUCCESS);
    ck_assert_int_eq(vt_reactor_add(&r, &y.w), APR_EBUSY);
    vt_reactor_remove(&r, &x.w);
    ck_assert_int_eq(vt_reactor_add(&r, &y.w), APR_SUCCESS);
    vt_reactor_remove(&r, &y.w);
    vt_reactor_destroy(&r);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(test_regular_file_refused)
{
    vt_reactor_t r;
    waiter_t x;
    apr_status_t rv;
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(vt_reactor_init(&r), APR_SUCCESS);
    waiter_init(&x, fileno(f), APR_POLLIN);
    rv = vt_reactor_add(&r, &x.w);
    ck_assert_int_ne(rv, APR_SUCCESS);
    ck_assert_int_ne(rv, APR_EBUSY);
    ck_assert_int_eq(rv, EPERM);
    /* a bad fd is an error too, not a crash */
    waiter_init(&x, 1 << 20, APR_POLLIN);
    ck_assert_int_ne(vt_reactor_add(&r, &x.w), APR_SUCCESS);
    vt_reactor_destroy(&r);
    fclose(f);
}
END_TEST

/* More ready fds than one epoll_wait batch: each is reported exactly once
 * when the waiter removes itself after its call-back. */
START_TEST(test_many_ready)
{
    enum { N = 200 };
    vt_reactor_t r;
    static waiter_t x[N];
    static int p[N][2];
    int total = 0, polls = 0;
    ck_assert_int_eq(vt_reactor_init(&r), APR_SUCCESS);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(pipe(p[i]), 0);
        waiter_init(&x[i], p[i][0], APR_POLLIN);
        ck_assert_int_eq(vt_reactor_add(&r, &x[i].w), APR_SUCCESS);
        ck_assert_int_eq(write(p[i][1], "y", 1), 1);
    }
    while (total < N && polls < 10 * N) {
        ck_assert_int_eq(vt_reactor_poll(&r, VT_MS(1000)), APR_SUCCESS);
        polls++;
        for (int i = 0; i < N; i++) {
            if (x[i].calls == 1 && x[i].w.fd >= 0) {
                vt_reactor_remove(&r, &x[i].w);
                x[i].w.fd = -1;
                total++;
            }
        }
    }
    ck_assert_int_eq(total, N);
    ck_assert_int_ge(polls, 2);     /* more than one batch here */
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(x[i].calls, 1);
        close(p[i][0]);
        close(p[i][1]);
    }
    vt_reactor_destroy(&r);
}
END_TEST

typedef struct {
    vt_reactor_t *r;
    apr_interval_time_t delay;
} waker_t;

static void *waker(void *arg)
{
    waker_t *w = arg;
    apr_sleep(w->delay);
    vt_reactor_wakeup(w->r);
    return NULL;
}

START_TEST(test_wakeup_other_thread)
{
    vt_reactor_t r;
    apr_pool_t *p;
    apr_thread_t *th;
    waker_t w;
    apr_time_t t0;
    apr_interval_time_t el;
    ck_assert_int_eq(apr_pool_create(&p, NULL), APR_SUCCESS);
    ck_assert_int_eq(vt_reactor_init(&r), APR_SUCCESS);
    w.r = &r;
    w.delay = VT_MS(50);
    t0 = apr_time_now();
    th = vt_test_thread(p, waker, &w);
    ck_assert_int_eq(vt_reactor_poll(&r, -1), APR_SUCCESS);
    el = vt_test_elapsed(t0);
    vt_test_thread_join(th);
    ck_assert_int_ge(el, VT_MS(45));
    ck_assert_int_lt(el, VT_MS(50) + vt_test_soon());
    /* the wake-up was consumed: the next poll waits its full timeout */
    t0 = apr_time_now();
    ck_assert_int_eq(vt_reactor_poll(&r, VT_MS(30)), APR_SUCCESS);
    ck_assert_int_ge(vt_test_elapsed(t0), VT_MS(29));
    vt_reactor_destroy(&r);
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_wakeup_before_poll_coalesces)
{
    vt_reactor_t r;
    apr_time_t t0;
    ck_assert_int_eq(vt_reactor_init(&r), APR_SUCCESS);
    /* a wake-up given before the poll makes it return at once */
    vt_reactor_wakeup(&r);
    vt_reactor_wakeup(&r);
    vt_reactor_wakeup(&r);
    t0 = apr_time_now();
    ck_assert_int_eq(vt_reactor_poll(&r, VT_MS(5000)), APR_SUCCESS);
    ck_assert_int_lt(vt_test_elapsed(t0), vt_test_soon());
    /* several wake-ups coalesce: none is left for the next poll */
    t0 = apr_time_now();
    ck_assert_int_eq(vt_reactor_poll(&r, VT_MS(30)), APR_SUCCESS);
    ck_assert_int_ge(vt_test_elapsed(t0), VT_MS(29));
    /* and the next wake-up after that works again */
    vt_reactor_wakeup(&r);
    t0 = apr_time_now();
    ck_assert_int_eq(vt_reactor_poll(&r, VT_MS(5000)), APR_SUCCESS);
    ck_assert_int_lt(vt_test_elapsed(t0), vt_test_soon());
    vt_reactor_destroy(&r);
}
END_TEST

/* Threads waking one poller while it polls: no wake-up may be lost. Once
 * the storm is over and the poller has drained what was pending, one more
 * wake-up must still make a poll return at once. */
typedef struct {
    vt_reactor_t *r;
    _Atomic int stop;
} storm_t;

static void *storm(void *arg)
{
    storm_t *s = arg;
    for (unsigned i = 0; !atomic_load(&s->stop); i++) {
        vt_reactor_wakeup(s->r);
        if (i % 16 == 0) {
            apr_thread_yield();
        }
    }
    return NULL;
}

START_TEST(test_wakeup_storm)
{
    enum { THREADS = 3 };
    vt_reactor_t r;
    apr_pool_t *p;
    apr_thread_t *th[THREADS];
    storm_t s;
    apr_time_t t0;
    int rounds = VT_N(300, 50);
    ck_assert_int_eq(apr_pool_create(&p, NULL), APR_SUCCESS);
    ck_assert_int_eq(vt_reactor_init(&r), APR_SUCCESS);
    s.r = &r;
    atomic_store(&s.stop, 0);
    for (int i = 0; i < THREADS; i++) {
        th[i] = vt_test_thread(p, storm, &s);
    }
    for (int i = 0; i < rounds; i++) {
        ck_assert_int_eq(vt_reactor_poll(&r, VT_MS(1)), APR_SUCCESS);
    }
    atomic_store(&s.stop, 1);
    for (int i = 0; i < THREADS; i++) {
        vt_test_thread_join(th[i]);
    }
    ck_assert_int_eq(vt_reactor_poll(&r, 0), APR_SUCCESS);
    for (int i = 0; i < 5; i++) {
        vt_reactor_wakeup(&r);
        t0 = apr_time_now();
        ck_assert_int_eq(vt_reactor_poll(&r, VT_MS(3000)), APR_SUCCESS);
        ck_assert_msg(vt_test_elapsed(t0) < vt_test_soon(),
                      "wake-up %d after the storm was lost: poll slept its "
                      "whole timeout (%ld us)", i, (long)vt_test_elapsed(t0));
    }
    vt_reactor_destroy(&r);
    apr_pool_destroy(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_reactor");
    vt_test_add(s, test_init_destroy_no_fd_leak);
    vt_test_add(s, test_poll_timeout);
    vt_test_add(s, test_pipe_readable);
    vt_test_add(s, test_pipe_writable);
    vt_test_add(s, test_hangup);
    vt_test_add(s, test_add_twice_ebusy);
    vt_test_add(s, test_regular_file_refused);
    vt_test_add(s, test_many_ready);
    vt_test_add(s, test_wakeup_other_thread);
    vt_test_add(s, test_wakeup_before_poll_coalesces);
    vt_test_add(s, test_wakeup_storm);
    return vt_test_main(s);
}
