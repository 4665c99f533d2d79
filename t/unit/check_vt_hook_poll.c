/* Unit tests for vt_hook_poll.c: poll, select and epoll_wait through the
 * transparent hooks (installed on libvt_hook_target.so, see
 * vt_hook_test.h). Off a fiber and on a fiber with the switch off they
 * are libc's; with the switch on they must answer as libc does (ready
 * fds, POLLNVAL/EBADF, timeouts, EINVAL) and park the fiber where libc
 * would block, so another fiber on the same (single) carrier runs.
 *
 * A regression that blocks the carrier instead fails rather than hangs:
 * every blocking wait here has its own timeout, and the fiber that would
 * end it then simply runs too late. */
#include "vt_hook_test.h"

#include <fcntl.h>

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

/* ---- answers without waiting, three ways ----------------------------- */

/* Ready, not ready, invalid: the hook's answer is libc's. */
static void body_poll_answers(void *arg)
{
    int sv[2], bad;
    struct pollfd p[3], q[3];
    int rv;

    (void)arg;
    vt_hook_test_pair(sv);
    bad = vt_hook_test_closed_fd();  /* after vt_hook_test_pair(), which could reuse its number */
    VT_CHECK(write(sv[1], "x", 1) == 1);
    /* sv[0]: readable and writable; sv[1]: writable only; bad: POLLNVAL */
    p[0] = (struct pollfd){ .fd = sv[0], .events = POLLIN | POLLOUT };
    p[1] = (struct pollfd){ .fd = sv[1], .events = POLLIN | POLLOUT };
    p[2] = (struct pollfd){ .fd = bad, .events = POLLIN };
    memcpy(q, p, sizeof(p));
    rv = vt_tgt.poll(p, 3, 1000);
    VT_CHECK(poll(q, 3, 1000) == 3);
    VT_CHECK(rv == 3);
    for (int i = 0; i < 3; i++) {
        VT_CHECK(p[i].revents == q[i].revents);
    }
    VT_CHECK(p[2].revents == POLLNVAL);

    /* Not ready, timeout 0: 0 at once, revents cleared. */
    p[0] = (struct pollfd){ .fd = sv[1], .events = POLLIN, .revents = -1 };
    VT_CHECK(vt_tgt.poll(p, 1, 0) == 0);
    VT_CHECK(p[0].revents == 0);

    /* A negative fd is skipped, as libc does. */
    p[0] = (struct pollfd){ .fd = -1, .events = POLLIN, .revents = -1 };
    p[1] = (struct pollfd){ .fd = sv[0], .events = POLLIN };
    VT_CHECK(vt_tgt.poll(p, 2, 1000) == 1);
    VT_CHECK(p[0].revents == 0);
    VT_CHECK(p[1].revents == POLLIN);

    close(sv[0]);
    close(sv[1]);
}

START_TEST(test_poll_answers)
{
    vt_hook_call_stats_t before = vt_hook_test_stats(VT_HOOK_POLL), after;
    vt_hook_test_three_ways(body_poll_answers, NULL);
    /* Only the run with the switch on counts: 3 calls, none parked. */
    after = vt_hook_test_stats(VT_HOOK_POLL);
    ck_assert_uint_eq(after.calls - before.calls, 3);
    ck_assert_uint_eq(after.parked - before.parked, 0);
}
END_TEST

static void body_select_answers(void *arg)
{
    int sv[2], bad, rv, err;
    fd_set rd, wr, rd2, wr2;
    struct timeval tv = { 1, 0 }, tv2 = { 1, 0 };

    (void)arg;
    vt_hook_test_pair(sv);
    bad = vt_hook_test_closed_fd();  /* after vt_hook_test_pair(), which could reuse its number */
    VT_CHECK(write(sv[1], "x", 1) == 1);
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_SET(sv[0], &rd);
    FD_SET(sv[1], &rd);
    FD_SET(sv[1], &wr);
    rd2 = rd;
    wr2 = wr;
    rv = vt_tgt.select(sv[1] + 1, &rd, &wr, NULL, &tv);
    VT_CHECK(select(sv[1] + 1, &rd2, &wr2, NULL, &tv2) == 2);
    VT_CHECK(rv == 2);
    VT_CHECK(FD_ISSET(sv[0], &rd) && !FD_ISSET(sv[1], &rd));
    VT_CHECK(FD_ISSET(sv[1], &wr));
    VT_CHECK(memcmp(&rd, &rd2, sizeof(rd)) == 0);
    VT_CHECK(memcmp(&wr, &wr2, sizeof(wr)) == 0);

    /* Not ready, zero timeout: 0 and the set cleared. */
    FD_ZERO(&rd);
    FD_SET(sv[1], &rd);
    tv = (struct timeval){ 0, 0 };
    VT_CHECK(vt_tgt.select(sv[1] + 1, &rd, NULL, NULL, &tv) == 0);
    VT_CHECK(!FD_ISSET(sv[1], &rd));

    /* A closed fd: EBADF. */
    FD_ZERO(&rd);
    FD_SET(bad, &rd);
    tv = (struct timeval){ 1, 0 };
    errno = 0;
    rv = vt_tgt.select(bad + 1, &rd, NULL, NULL, &tv);
    err = errno;
    VT_CHECK(rv == -1);
    VT_CHECK(err == EBADF);

    /* A bad timeval: EINVAL. */
    tv = (struct timeval){ 0, -1 };
    errno = 0;
    rv = vt_tgt.select(0, NULL, NULL, NULL, &tv);
    err = errno;
    VT_CHECK(rv == -1);
    VT_CHECK(err == EINVAL);
    close(sv[0]);
    close(sv[1]);
}

START_TEST(test_select_answers)
{
    vt_hook_test_three_ways(body_select_answers, NULL);
}
END_TEST

static void body_epoll_answers(void *arg)
{
    int sv[2], ep = epoll_create1(EPOLL_CLOEXEC), rv, err;
    struct epoll_event ev = { .events = EPOLLIN }, out[4];

    (void)arg;
    vt_hook_test_pair(sv);
    VT_CHECK(ep >= 0);
    ev.data.fd = sv[0];
    VT_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev) == 0);
    /* Nothing yet: 0 at once with timeout 0. */
    VT_CHECK(vt_tgt.epoll_wait(ep, out, 4, 0) == 0);
    VT_CHECK(write(sv[1], "x", 1) == 1);
    memset(out, 0, sizeof(out));
    VT_CHECK(vt_tgt.epoll_wait(ep, out, 4, 1000) == 1);
    VT_CHECK(out[0].events == EPOLLIN && out[0].data.fd == sv[0]);
    /* maxevents 0: EINVAL; not an epoll fd: EINVAL; closed: EBADF. */
    errno = 0;
    rv = vt_tgt.epoll_wait(ep, out, 0, 1000);
    err = errno;
    VT_CHECK(rv == -1 && err == EINVAL);
    errno = 0;
    rv = vt_tgt.epoll_wait(sv[0], out, 4, 1000);
    err = errno;
    VT_CHECK(rv == -1 && err == EINVAL);
    errno = 0;
    rv = vt_tgt.epoll_wait(vt_hook_test_closed_fd(), out, 4, 1000);
    err = errno;
    VT_CHECK(rv == -1 && err == EBADF);
    close(ep);
    close(sv[0]);
    close(sv[1]);
}

START_TEST(test_epoll_answers)
{
    vt_hook_test_three_ways(body_epoll_answers, NULL);
}
END_TEST

/* ---- timeouts ------------------------------------------------------- */

enum { WAIT_POLL, WAIT_SELECT, WAIT_EPOLL };

typedef struct {
    int which;
    int rv;
    int err;
    apr_int64_t took_ns;
    struct timeval tv;      /* select's, after the call */
    int set_after;          /* select: the fd still in the set */
} timeout_t;

/* Wait 50 ms on an fd that never becomes ready; errno must stay what the
 * caller had (a timeout sets none). */
static void body_timeout(void *arg)
{
    timeout_t *o = arg;
    int sv[2], ep = -1;
    apr_int64_t t0;

    vt_hook_test_pair(sv);
    t0 = vt_hook_test_now_ns();
    errno = EDOM;
    if (o->which == WAIT_POLL) {
        struct pollfd p = { .fd = sv[0], .events = POLLIN };
        o->rv = vt_tgt.poll(&p, 1, 50);
    }
    else if (o->which == WAIT_SELECT) {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(sv[0], &rd);
        o->tv = (struct timeval){ 0, 50000 };
        o->rv = vt_tgt.select(sv[0] + 1, &rd, NULL, NULL, &o->tv);
        o->set_after = FD_ISSET(sv[0], &rd);
    }
    else {
        struct epoll_event ev = { .events = EPOLLIN }, out[1];
        ep = epoll_create1(EPOLL_CLOEXEC);
        VT_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev) == 0);
        t0 = vt_hook_test_now_ns();
        errno = EDOM;
        o->rv = vt_tgt.epoll_wait(ep, out, 1, 50);
    }
    o->err = errno;
    o->took_ns = vt_hook_test_now_ns() - t0;
    if (ep >= 0) {
        close(ep);
    }
    close(sv[0]);
    close(sv[1]);
}

static void run_timeout(int which, vt_hook_call_e call)
{
    vt_test_rt_t t;
    timeout_t o = { .which = which, .rv = -2 };
    vt_hook_call_stats_t before = vt_hook_test_stats(call), after;

    vt_test_rt_start(&t, 1);
    vt_hook_test_run(&t, 1, body_timeout, &o);
    vt_test_rt_stop(&t);
    after = vt_hook_test_stats(call);
    ck_assert_int_eq(o.rv, 0);
    ck_assert_int_eq(o.err, EDOM);
    /* Never early (1 ms of slack for the clocks' rounding), and soon. */
    ck_assert_int_ge(o.took_ns, 49 * 1000000LL);
    ck_assert_int_lt(o.took_ns, 50 * 1000000LL + vt_test_soon() * 1000);
    if (which == WAIT_SELECT) {
        /* Linux's select leaves the time not slept: none. */
        ck_assert_int_eq(o.tv.tv_sec, 0);
        ck_assert_int_eq(o.tv.tv_usec, 0);
        ck_assert_int_eq(o.set_after, 0);
    }
    ck_assert_uint_eq(after.calls - before.calls, 1);
    ck_assert_uint_eq(after.parked - before.parked, 1);
}

START_TEST(test_poll_timeout)
{
    run_timeout(WAIT_POLL, VT_HOOK_POLL);
}
END_TEST

START_TEST(test_select_timeout)
{
    run_timeout(WAIT_SELECT, VT_HOOK_SELECT);
}
END_TEST

START_TEST(test_epoll_timeout)
{
    run_timeout(WAIT_EPOLL, VT_HOOK_EPOLL_WAIT);
}
END_TEST

/* ---- parking: the writer is another fiber on the same carrier -------- */

typedef struct {
    int which;
    int sv[2];
    int ep;
    _Atomic int in_wait;    /* the waiter is inside the hook */
    _Atomic int overlap;    /* the writer ran while it was */
    int rv;
    int err;
    short revents;
    int isset;
    struct epoll_event out;
} park_t;

/* Waits up to 5 s (a carrier blocked by a regression ends it then, and
 * the checks fail) for the byte the writer fiber sends. errno set before
 * must be there after: the writer changes it meanwhile. */
static void body_park_waiter(void *arg)
{
    park_t *o = arg;

    errno = EDOM;
    atomic_store(&o->in_wait, 1);
    if (o->which == WAIT_POLL) {
        struct pollfd p = { .fd = o->sv[0], .events = POLLIN };
        o->rv = vt_tgt.poll(&p, 1, 5000);
        o->revents = p.revents;
    }
    else if (o->which == WAIT_SELECT) {
        fd_set rd;
        struct timeval tv = { 5, 0 };
        FD_ZERO(&rd);
        FD_SET(o->sv[0], &rd);
        o->rv = vt_tgt.select(o->sv[0] + 1, &rd, NULL, NULL, &tv);
        o->isset = FD_ISSET(o->sv[0], &rd);
    }
    else {
        o->rv = vt_tgt.epoll_wait(o->ep, &o->out, 1, 5000);
    }
    o->err = errno;
    atomic_store(&o->in_wait, 0);
}

static void body_park_writer(void *arg)
{
    park_t *o = arg;
    vthread_sleep(VT_MS(100));
    atomic_store(&o->overlap, atomic_load(&o->in_wait));
    errno = ERANGE;
    VT_CHECK(write(o->sv[1], "x", 1) == 1);
}

static void run_park(int which, vt_hook_call_e call)
{
    vt_test_rt_t t;
    park_t o;
    vt_fiber_t *a, *b;
    vt_hook_call_stats_t before = vt_hook_test_stats(call), after;

    memset(&o, 0, sizeof(o));
    o.which = which;
    o.rv = -2;
    o.ep = -1;
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                                o.sv), 0);
    if (which == WAIT_EPOLL) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 77 };
        o.ep = epoll_create1(EPOLL_CLOEXEC);
        ck_assert_int_ge(o.ep, 0);
        ck_assert_int_eq(epoll_ctl(o.ep, EPOLL_CTL_ADD, o.sv[0], &ev), 0);
    }
    vt_test_rt_start(&t, 1);
    a = vt_hook_test_go(&t, 1, body_park_waiter, &o, "waiter");
    b = vt_hook_test_go(&t, 0, body_park_writer, &o, "writer");
    ck_assert_int_eq(vt_test_join(a), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(b), APR_SUCCESS);
    vt_test_rt_stop(&t);
    after = vt_hook_test_stats(call);
    ck_assert_msg(o.overlap, "the writer fiber did not run while the "
                  "waiter was in the hook: the carrier was blocked");
    ck_assert_int_eq(o.rv, 1);
    if (which == WAIT_POLL) {
        ck_assert_int_eq(o.revents, POLLIN);
    }
    else if (which == WAIT_SELECT) {
        ck_assert_int_eq(o.isset, 1);
    }
    else {
        ck_assert_uint_eq(o.out.events, EPOLLIN);
        ck_assert_uint_eq(o.out.data.u64, 77);
    }
    /* A successful call leaves errno as the caller had it. */
    ck_assert_int_eq(o.err, EDOM);
    ck_assert_uint_eq(after.parked - before.parked, 1);
    if (o.ep >= 0) {
        close(o.ep);
    }
    close(o.sv[0]);
    close(o.sv[1]);
}

START_TEST(test_poll_parks)
{
    run_park(WAIT_POLL, VT_HOOK_POLL);
}
END_TEST

START_TEST(test_select_parks)
{
    run_park(WAIT_SELECT, VT_HOOK_SELECT);
}
END_TEST

START_TEST(test_epoll_parks)
{
    run_park(WAIT_EPOLL, VT_HOOK_EPOLL_WAIT);
}
END_TEST

/* ---- select as a sleep (apr_sleep) ----------------------------------- */

typedef struct {
    long ms;
    int rv;
    int err;
    struct timeval tv;
    apr_int64_t done_ns;
} select_sleep_t;

static void body_select_sleep(void *arg)
{
    select_sleep_t *o = arg;
    o->tv = (struct timeval){ o->ms / 1000, (o->ms % 1000) * 1000 };
    errno = EDOM;
    o->rv = vt_tgt.select(0, NULL, NULL, NULL, &o->tv);
    o->err = errno;
    o->done_ns = vt_hook_test_now_ns();
}

/* Two fibers on one carrier select-sleep 200 ms each: together they take
 * well under the 400 ms that sleeping in turn would. */
START_TEST(test_select_sleeps_share_carrier)
{
    vt_test_rt_t t;
    long ms = VT_N(200, 1000);
    select_sleep_t o[2] = { { .ms = ms, .rv = -2 }, { .ms = ms, .rv = -2 } };
    vt_fiber_t *f[2];
    apr_int64_t t0;

    vt_test_rt_start(&t, 1);
    t0 = vt_hook_test_now_ns();
    f[0] = vt_hook_test_go(&t, 1, body_select_sleep, &o[0], "sleep0");
    f[1] = vt_hook_test_go(&t, 1, body_select_sleep, &o[1], "sleep1");
    ck_assert_int_eq(vt_test_join(f[0]), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(f[1]), APR_SUCCESS);
    vt_test_rt_stop(&t);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(o[i].rv, 0);
        ck_assert_int_eq(o[i].err, EDOM);
        ck_assert_int_eq(o[i].tv.tv_sec, 0);
        ck_assert_int_eq(o[i].tv.tv_usec, 0);
        ck_assert_int_ge(o[i].done_ns - t0, (ms - 1) * 1000000LL);
        ck_assert_int_lt(o[i].done_ns - t0, ms * 1900000LL);
    }
}
END_TEST

/* ---- waits that must not wake for what they did not ask ------------- */

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct {
    int fd;
    short events;
    int ms;
    int rv;
    double cpu;
} quiet_poll_t;

static void body_quiet_poll(void *arg)
{
    quiet_poll_t *a = arg;
    struct pollfd p = { .fd = a->fd, .events = a->events };
    double c0 = cpu_now();
    a->rv = vt_tgt.poll(&p, 1, a->ms);
    a->cpu = cpu_now() - c0;
}

/* Wait @a ms on a fiber for @a events that never come, while the fd
 * reports something else: the answer is poll's (0), and the process
 * stays idle meanwhile (the reactor registered only what was asked; a
 * level-triggered report of the rest woke the fiber over and over). */
static void check_quiet(int fd, short events)
{
    vt_test_rt_t t;
    quiet_poll_t ref = { fd, events, 300, -2, 0 }, hk = ref;

    body_quiet_poll(&ref);
    vt_test_rt_start(&t, 1);
    vt_hook_test_run(&t, 1, body_quiet_poll, &hk);
    vt_test_rt_stop(&t);
    ck_assert_int_eq(ref.rv, 0);
    ck_assert_int_eq(hk.rv, 0);
    ck_assert_msg(hk.cpu < VT_N(0.1, 0.25), "a 300 ms wait burnt %.3f s of "
                  "CPU", hk.cpu);
}

START_TEST(test_pollout_on_a_half_closed_full_socket_stays_quiet)
{
    char buf[4096];
    int sv[2];

    memset(buf, 'x', sizeof(buf));
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                     0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    while (send(sv[0], buf, sizeof(buf), MSG_DONTWAIT) > 0) {
    }
    ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);  /* RDHUP on sv[0] */
    check_quiet(sv[0], POLLOUT);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(test_pollpri_with_normal_data_stays_quiet)
{
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                     0);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);      /* POLLIN, not PRI */
    check_quiet(sv[0], POLLPRI);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_hook_poll");
    vt_hook_test_add(s, test_poll_answers);
    vt_hook_test_add(s, test_select_answers);
    vt_hook_test_add(s, test_epoll_answers);
    vt_hook_test_add(s, test_poll_timeout);
    vt_hook_test_add(s, test_select_timeout);
    vt_hook_test_add(s, test_epoll_timeout);
    vt_hook_test_add(s, test_poll_parks);
    vt_hook_test_add(s, test_select_parks);
    vt_hook_test_add(s, test_epoll_parks);
    vt_hook_test_add(s, test_select_sleeps_share_carrier);
    vt_hook_test_add(s, test_pollout_on_a_half_closed_full_socket_stays_quiet);
    vt_hook_test_add(s, test_pollpri_with_normal_data_stays_quiet);
    return vt_test_main(s);
}
