/* Unit tests for vt_runtime.c: vt_runtime_create refuses a bad config
 * (through the log callback only, not also on stderr), carriers, the
 * process default runtime, the max_fibers limit, placement on the least
 * loaded carrier, the thread_create hook, and stop: fibers parked in
 * sleep, I/O and every kind of sync wait see APR_ECONNABORTED, their
 * deferred calls run exactly once, a fiber that never parks is waited for,
 * stop returns, nothing is left alive; a pool cleanup stops a runtime too;
 * create/stop cycles.
 *
 * Slow mode (VT_SLOW=1, ASan, valgrind: see vt_test_util.h) uses fewer
 * create/stop cycles. */
#include "vt_test_util.h"

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Create: config, carriers, the default runtime. */

START_TEST(test_create_refuses_bad_config)
{
    vt_test_rt_t t;
    vt_runtime_t *rt = NULL;
    apr_status_t rv;
    vt_test_config(&t, -3);
    ck_assert_int_eq(apr_pool_create(&t.pool, NULL), APR_SUCCESS);
    rv = vt_runtime_create(&rt, &t.cfg, t.pool);
    ck_assert_int_eq(rv, APR_EINVAL);
    ck_assert_int_ge(vt_test_log_count(&t.log, VT_MSG_CONFIG), 1);
    ck_assert_ptr_null(vt_runtime_default());
    t.cfg.carriers = 2;
    t.cfg.stack_size = 100;
    ck_assert_int_eq(vt_runtime_create(&rt, &t.cfg, t.pool), APR_EINVAL);
    ck_assert_int_ge(vt_test_log_count(&t.log, VT_MSG_CONFIG), 2);
    ck_assert_ptr_null(vt_runtime_default());
    apr_pool_destroy(t.pool);
}
END_TEST

/* With a log callback, a refusal goes to the callback only, not also to
 * stderr ("NULL writes to stderr"). */
START_TEST(test_bad_config_not_on_stderr)
{
    vt_test_rt_t t;
    vt_runtime_t *rt = NULL;
    vt_test_stderr_t cap;
    apr_status_t rv;
    char buf[512];
    apr_size_t n;
    vt_test_config(&t, -1);
    ck_assert_int_eq(apr_pool_create(&t.pool, NULL), APR_SUCCESS);
    vt_test_stderr_begin(&cap);
    rv = vt_runtime_create(&rt, &t.cfg, t.pool);
    n = vt_test_stderr_end(&cap, buf, sizeof(buf));
    ck_assert_int_eq(rv, APR_EINVAL);
    ck_assert_int_eq(vt_test_log_count(&t.log, VT_MSG_CONFIG), 1);
    ck_assert_msg(n == 0, "also written to stderr: %s", buf);
    apr_pool_destroy(t.pool);
}
END_TEST

START_TEST(test_carriers)
{
    vt_test_rt_t t;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    vt_carrier_stats_t s;
    vt_test_rt_start(&t, 0);
    ck_assert_int_eq(vt_runtime_carriers(t.rt), (int)cpus);
    vt_test_rt_stop(&t);
    vt_test_rt_start(&t, 3);
    ck_assert_int_eq(vt_runtime_carriers(t.rt), 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(vt_runtime_carrier_stats(t.rt, i, &s), APR_SUCCESS);
        ck_assert_uint_eq(s.live, 0);
    }
    ck_assert_int_eq(vt_runtime_carrier_stats(t.rt, -1, &s), APR_EINVAL);
    ck_assert_int_eq(vt_runtime_carrier_stats(t.rt, 3, &s), APR_EINVAL);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_default_runtime)
{
    vt_test_rt_t a, b;
    ck_assert_ptr_null(vt_runtime_default());
    vt_test_rt_start(&a, 1);
    ck_assert_ptr_eq(vt_runtime_default(), a.rt);
    ck_assert_int_eq(vt_runtime_stop(a.rt), APR_SUCCESS);
    ck_assert_ptr_null(vt_runtime_default());
    vt_test_rt_stop(&a);
    vt_test_rt_start(&b, 1);
    ck_assert_ptr_eq(vt_runtime_default(), b.rt);
    vt_test_rt_stop(&b);
    ck_assert_ptr_null(vt_runtime_default());
}
END_TEST

/* ------------------------------------------------------------------ */
/* The account of fibers: max_fibers, placement. */

START_TEST(test_max_fibers)
{
    vt_test_rt_t t;
    vt_fiber_t *f[4];
    vthread_t *th = NULL;
    vt_test_config(&t, 2);
    t.cfg.max_fibers = 3;
    vt_test_rt_start_cfg(&t);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(vt_spawn_create(&f[i], t.rt, vt_test_fn_nothing,
                                         NULL, "m"), APR_SUCCESS);
    }
    ck_assert_int_eq(vt_spawn_create(&f[3], t.rt, vt_test_fn_nothing, NULL,
                                     "m"), APR_EAGAIN);
    ck_assert_int_eq(vthread_spawn(&th, vt_test_fn_nothing, NULL), APR_EAGAIN);
    ck_assert_uint_eq(vt_runtime_live(t.rt), 3);
    vt_spawn_discard(f[2]);
    ck_assert_int_eq(vt_spawn_create(&f[2], t.rt, vt_test_fn_nothing, NULL,
                                     "m"), APR_SUCCESS);
    for (int i = 0; i < 3; i++) {
        vt_spawn_start(f[i]);
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(vt_test_join(f[i]), APR_SUCCESS);
    }
    /* ended fibers gave their capacity back */
    ck_assert_int_eq(vthread_spawn(&th, vt_test_fn_nothing, NULL),
                     APR_SUCCESS);
    ck_assert_int_eq(vthread_join(th, apr_time_from_sec(10), NULL),
                     APR_SUCCESS);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_least_loaded)
{
    enum { N = 6 };
    vt_test_rt_t t;
    vt_test_parks_t p;
    vt_fiber_t *f[N];
    int per[2] = { 0, 0 };
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_event_create(&p.ev, t.pool), APR_SUCCESS);
    for (int i = 0; i < N; i++) {
        int c;
        f[i] = vt_test_go(&t, vt_test_fn_park_sync, &p, "balanced");
        c = vt_fiber_carrier_index(f[i]);
        ck_assert_int_ge(c, 0);
        ck_assert_int_lt(c, 2);
        per[c]++;
    }
    ck_assert_int_eq(per[0], N / 2);
    ck_assert_int_eq(per[1], N / 2);
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, N));
    for (int c = 0; c < 2; c++) {
        vt_carrier_stats_t s;
        ck_assert_int_eq(vt_runtime_carrier_stats(t.rt, c, &s), APR_SUCCESS);
        ck_assert_uint_eq(s.live, N / 2);
        ck_assert_uint_eq(s.parked_sync, N / 2);
    }
    ck_assert_uint_eq(vthread_event_broadcast(p.ev), N);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(vt_test_join(f[i]), APR_SUCCESS);
    }
    vt_test_rt_stop(&t);
}
END_TEST

/* Every thread of the runtime is made by cfg.thread_create. */
static _Atomic int threads_made;

static apr_status_t counting_thread_create(apr_thread_t **thread,
                                           apr_threadattr_t *attr,
                                           apr_thread_start_t fn, void *data,
                                           apr_pool_t *p)
{
    atomic_fetch_add(&threads_made, 1);
    return apr_thread_create(thread, attr, fn, data, p);
}

START_TEST(test_thread_create_hook)
{
    vt_test_rt_t t;
    atomic_store(&threads_made, 0);
    vt_test_config(&t, 3);
    t.cfg.thread_create = counting_thread_create;
    vt_test_rt_start_cfg(&t);
    /* three carriers, plus the watchdog (pinned_warn is on by default) */
    ck_assert_int_ge(atomic_load(&threads_made), 3);
    ck_assert_int_le(atomic_load(&threads_made), 4);
    ck_assert_int_eq(vt_test_run(&t, vt_test_fn_nothing, NULL), APR_SUCCESS);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Stop with fibers parked everywhere. */

enum {
    W_SLEEP, W_RECV, W_WAIT_FD, W_EVENT, W_MUTEX, W_COND, W_CHAN_RECV,
    W_CHAN_SEND, W_JOIN, W_SPIN, W_STUBBORN, W_COUNT
};

static const char *const w_names[W_COUNT] = {
    "sleep", "recv", "wait_fd", "event", "mutex", "cond", "chan_recv",
    "chan_send", "join", "spin", "stubborn"
};

typedef struct stop_test_t stop_test_t;

typedef struct {
    stop_test_t *st;
    int kind;
} stop_arg_t;

struct stop_test_t {
    apr_socket_t *sock;
    int fd;
    vthread_event_t *ev;
    vthread_mutex_t *held;      /* held by the test thread */
    vthread_mutex_t *cm;
    vthread_cond_t *cv;
    vthread_chan_t *empty, *full;
    vt_fiber_t *join_target;
    apr_status_t rv[W_COUNT];
    _Atomic int defers[W_COUNT];
    _Atomic int ended[W_COUNT];
    _Atomic int spinning;
    int target_defers;
    stop_arg_t args[W_COUNT];
};

static void count_defer(void *arg)
{
    stop_arg_t *a = arg;
    atomic_fetch_add(&a->st->defers[a->kind], 1);
}

static apr_status_t fn_stop_victim(void *arg)
{
    stop_arg_t *a = arg;
    stop_test_t *st = a->st;
    apr_status_t rv = APR_EGENERAL;
    char buf[8];
    apr_size_t n = sizeof(buf);
    void *item;
    if (!VT_CHECK(vthread_defer(count_defer, a) == APR_SUCCESS)) {
        return APR_EGENERAL;
    }
    switch (a->kind) {
    case W_SLEEP:
        rv = vthread_sleep(apr_time_from_sec(60));
        break;
    case W_RECV:
        rv = vthread_socket_recv(st->sock, buf, &n);
        break;
    case W_WAIT_FD:
        rv = vthread_wait_fd(st->fd, APR_POLLIN, -1);
        break;
    case W_EVENT:
        rv = vthread_event_wait(st->ev, -1);
        break;
    case W_MUTEX:
        /* parked while holding a mutex: cancelled, it can still unlock
         * (a lock wait itself is not cancellable, see vthread.h) */
        if (VT_CHECK(vthread_mutex_lock(st->held) == APR_SUCCESS)) {
            rv = vthread_sleep(apr_time_from_sec(60));
            vthread_mutex_unlock(st->held);
        }
        break;
    case W_COND:
        if (VT_CHECK(vthread_mutex_lock(st->cm) == APR_SUCCESS)) {
            rv = vthread_cond_wait(st->cv, st->cm, -1);
            vthread_mutex_unlock(st->cm);
        }
        break;
    case W_CHAN_RECV:
        rv = vthread_chan_recv(st->empty, &item, -1);
        break;
    case W_CHAN_SEND:
        rv = vthread_chan_send(st->full, NULL, -1);
        break;
    case W_JOIN:
        rv = vt_wait_join(st->join_target, -1, NULL);
        break;
    case W_SPIN: {
        /* never parks: stop has to wait for it; it learns of the stop
         * from vthread_cancelled() (or gives up after 10 s) */
        apr_time_t end = apr_time_now() + apr_time_from_sec(10);
        atomic_store(&st->spinning, 1);
        while (!vthread_cancelled() && apr_time_now() < end) {
        }
        rv = vthread_cancelled() ? APR_ECONNABORTED : APR_SUCCESS;
        break;
    }
    case W_STUBBORN:
        /* ignores the first ECONNABORTED and keeps waiting: every later
         * wait fails at once, so it still ends quickly */
        for (int i = 0; i < 50; i++) {
            rv = vthread_sleep(apr_time_from_sec(1));
        }
        break;
    }
    st->rv[a->kind] = rv;
    atomic_store(&st->ended[a->kind], 1);
    return rv;
}

static void target_defer(void *arg)
{
    ((stop_test_t *)arg)->target_defers++;
}

/* Parks until stop cancels it, then keeps running (without parking) until
 * the fiber joining it, on the other carrier, has seen its join end: were
 * the target to end first, that join would succeed and free the handle. */
static apr_status_t fn_join_target(void *arg)
{
    stop_test_t *st = arg;
    apr_status_t rv;
    apr_time_t end;
    VT_CHECK(vthread_defer(target_defer, st) == APR_SUCCESS);
    rv = vthread_sleep(apr_time_from_sec(60));
    end = apr_time_now() + apr_time_from_sec(10);
    while (!atomic_load(&st->ended[W_JOIN]) && apr_time_now() < end) {
    }
    return rv;
}

static int spinning(void *arg)
{
    return atomic_load(&((stop_test_t *)arg)->spinning);
}

START_TEST(test_stop_with_parked_fibers)
{
    vt_test_rt_t t;
    stop_test_t st;
    apr_socket_t *cl, *sv;
    int fds[2];
    apr_time_t t0;
    apr_interval_time_t took;
    apr_status_t result = -1;
    memset(&st, 0, sizeof(st));
    ck_assert_int_eq(pipe(fds), 0);
    vt_test_config(&t, 2);
    t.cfg.pinned_warn = 0;
    vt_test_rt_start_cfg(&t);
    vt_test_socket_pair(t.pool, &cl, &sv);
    st.sock = sv;
    st.fd = fds[0];
    ck_assert_int_eq(vthread_event_create(&st.ev, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_mutex_create(&st.held, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_mutex_create(&st.cm, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_cond_create(&st.cv, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_chan_create(&st.empty, 1, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_chan_create(&st.full, 1, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_chan_send(st.full, NULL, 0), APR_SUCCESS);
    for (int k = 0; k < W_COUNT; k++) {
        st.args[k].st = &st;
        st.args[k].kind = k;
    }
    /* the join target and its joiner first: on different carriers */
    st.join_target = vt_test_go(&t, fn_join_target, &st, "join-target");
    {
        vt_fiber_t *j = vt_test_go(&t, fn_stop_victim, &st.args[W_JOIN],
                                   w_names[W_JOIN]);
        ck_assert_int_ne(vt_fiber_carrier_index(j),
                         vt_fiber_carrier_index(st.join_target));
        vt_spawn_detach(j);
    }
    for (int k = 0; k < W_COUNT; k++) {
        if (k == W_SPIN || k == W_JOIN) {
            continue;
        }
        vt_spawn_detach(vt_test_go(&t, fn_stop_victim, &st.args[k],
                                   w_names[k]));
    }
    /* sleep, join target, stubborn, mutex holder / recv, wait_fd / event,
     * cond, chan recv, chan send, join */
    ck_assert(vt_test_wait_parked(t.rt, 4, 2, 5));

    t0 = apr_time_now();
    ck_assert_int_eq(vt_runtime_stop(t.rt), APR_SUCCESS);
    took = vt_test_elapsed(t0);
    ck_assert_int_lt(took, apr_time_from_sec(10));
    ck_assert_uint_eq(vt_runtime_live(t.rt), 0);

    for (int k = 0; k < W_COUNT; k++) {
        if (k == W_SPIN) {
            continue;
        }
        ck_assert_msg(atomic_load(&st.ended[k]) == 1, "%s: did not end",
                      w_names[k]);
        ck_assert_msg(atomic_load(&st.defers[k]) == 1,
                      "%s: deferred call ran %d times", w_names[k],
                      atomic_load(&st.defers[k]));
        ck_assert_msg(st.rv[k] == APR_ECONNABORTED,
                      "%s: wait returned %d, not APR_ECONNABORTED",
                      w_names[k], st.rv[k]);
    }
    ck_assert_int_eq(st.target_defers, 1);
    /* the joined handle is still ours: its fiber ended, join frees it */
    ck_assert_int_eq(vt_wait_join(st.join_target, 0, &result), APR_SUCCESS);
    ck_assert_int_eq(result, APR_ECONNABORTED);

    /* nothing more is accepted */
    {
        vt_fiber_t *f = NULL;
        ck_assert_int_eq(vt_spawn_create(&f, t.rt, vt_test_fn_nothing, NULL,
                                         "late"), APR_ECONNABORTED);
    }
    /* the holder unlocked on its way out */
    ck_assert_int_eq(vthread_mutex_trylock(st.held), APR_SUCCESS);
    ck_assert_int_eq(vthread_mutex_unlock(st.held), APR_SUCCESS);
    vt_test_rt_stop(&t);        /* stops again: safe */
    close(fds[0]);
    close(fds[1]);
}
END_TEST

/* A fiber that runs (never parks) while stop begins: stop waits for it,
 * its deferred call runs once, and it has been cancelled (the header:
 * stop cancels every fiber; vthread_cancelled() tells). A sleeping fiber
 * on the other carrier is cancelled meanwhile. */
START_TEST(test_stop_waits_for_running_fiber)
{
    vt_test_rt_t t;
    stop_test_t st;
    apr_time_t t0;
    memset(&st, 0, sizeof(st));
    vt_test_config(&t, 2);
    t.cfg.pinned_warn = 0;
    vt_test_rt_start_cfg(&t);
    st.args[W_SLEEP].st = st.args[W_SPIN].st = &st;
    st.args[W_SLEEP].kind = W_SLEEP;
    st.args[W_SPIN].kind = W_SPIN;
    vt_spawn_detach(vt_test_go(&t, fn_stop_victim, &st.args[W_SLEEP],
                               w_names[W_SLEEP]));
    ck_assert(vt_test_wait_parked(t.rt, 1, 0, 0));
    vt_spawn_detach(vt_test_go(&t, fn_stop_victim, &st.args[W_SPIN],
                               w_names[W_SPIN]));
    ck_assert(vt_test_wait_until(spinning, &st, apr_time_from_sec(10)));
    t0 = apr_time_now();
    ck_assert_int_eq(vt_runtime_stop(t.rt), APR_SUCCESS);
    ck_assert_int_lt(vt_test_elapsed(t0), apr_time_from_sec(10));
    ck_assert_uint_eq(vt_runtime_live(t.rt), 0);
    ck_assert_int_eq(atomic_load(&st.ended[W_SPIN]), 1);
    ck_assert_int_eq(atomic_load(&st.defers[W_SPIN]), 1);
    ck_assert_int_eq(atomic_load(&st.ended[W_SLEEP]), 1);
    ck_assert_int_eq(atomic_load(&st.defers[W_SLEEP]), 1);
    ck_assert_int_eq(st.rv[W_SLEEP], APR_ECONNABORTED);
    ck_assert_msg(st.rv[W_SPIN] == APR_ECONNABORTED,
                  "a fiber running (not parked) when stop began never saw "
                  "vthread_cancelled() == 1 (gave up after 10 s)");
    vt_test_rt_stop(&t);
}
END_TEST

/* A cleanup on the runtime's pool stops it. */
START_TEST(test_pool_cleanup_stops)
{
    vt_test_rt_t t;
    stop_test_t st;
    apr_pool_t *sub;
    vt_runtime_t *rt;
    memset(&st, 0, sizeof(st));
    vt_test_config(&t, 2);
    ck_assert_int_eq(apr_pool_create(&t.pool, NULL), APR_SUCCESS);
    ck_assert_int_eq(apr_pool_create(&sub, t.pool), APR_SUCCESS);
    vt_test_failures_reset();
    ck_assert_int_eq(vt_runtime_create(&rt, &t.cfg, sub), APR_SUCCESS);
    st.args[W_SLEEP].st = &st;
    st.args[W_SLEEP].kind = W_SLEEP;
    {
        vt_fiber_t *f;
        ck_assert_int_eq(vt_spawn_create(&f, rt, fn_stop_victim,
                                         &st.args[W_SLEEP], "sleeper"),
                         APR_SUCCESS);
        vt_spawn_start(f);
        vt_spawn_detach(f);
    }
    ck_assert(vt_test_wait_parked(rt, 1, 0, 0));
    apr_pool_destroy(sub);
    ck_assert_ptr_null(vt_runtime_default());
    ck_assert_int_eq(atomic_load(&st.ended[W_SLEEP]), 1);
    ck_assert_int_eq(atomic_load(&st.defers[W_SLEEP]), 1);
    ck_assert_int_eq(st.rv[W_SLEEP], APR_ECONNABORTED);
    apr_pool_destroy(t.pool);
    vt_test_assert_no_failures();
}
END_TEST

/* Create and stop many times, with fibers each time (leaks show under
 * valgrind and LSan). */
/* Sleeps and yields three times; stop may cancel it half way. */
static apr_status_t fn_work_until_stop(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        apr_status_t rv = vthread_sleep(1000);
        VT_CHECK(rv == APR_SUCCESS || rv == APR_ECONNABORTED);
        rv = vthread_yield();
        VT_CHECK(rv == APR_SUCCESS || rv == APR_ECONNABORTED);
    }
    return APR_SUCCESS;
}

START_TEST(test_create_stop_cycles)
{
    const int cycles = VT_N(20, 4);
    for (int c = 0; c < cycles; c++) {
        vt_test_rt_t t;
        vt_fiber_t *f[8];
        vt_test_rt_start(&t, 1 + c % 3);
        for (int i = 0; i < 8; i++) {
            f[i] = vt_test_go(&t, fn_work_until_stop, NULL, "cycle");
        }
        for (int i = 0; i < 4; i++) {
            ck_assert_int_eq(vt_test_join(f[i]), APR_SUCCESS);
        }
        for (int i = 4; i < 8; i++) {
            vt_spawn_detach(f[i]);
        }
        vt_test_rt_stop(&t);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_runtime");
    vt_test_add(s, test_create_refuses_bad_config);
    vt_test_add(s, test_bad_config_not_on_stderr);
    vt_test_add(s, test_carriers);
    vt_test_add(s, test_default_runtime);
    vt_test_add(s, test_max_fibers);
    vt_test_add(s, test_least_loaded);
    vt_test_add(s, test_thread_create_hook);
    vt_test_add(s, test_stop_with_parked_fibers);
    vt_test_add(s, test_stop_waits_for_running_fiber);
    vt_test_add(s, test_pool_cleanup_stops);
    vt_test_add(s, test_create_stop_cycles);
    return vt_test_main(s);
}
