/* Unit tests for vt_carrier.c: a fiber never migrates (same thread and
 * carrier across yields and sleeps), a fiber started from a thread other
 * than its creator still runs on its carrier, the counters of
 * vt_carrier_stats (read from another thread while fibers run; each kind
 * of park in its own counter), the stack cache watermark kept by the
 * periodic trim, and a fiber that finds no stack to map waits for one
 * instead of being lost.
 *
 * Slow mode (VT_SLOW=1, ASan, valgrind: see vt_test_util.h) uses fewer
 * fibers, and skips the stack exhaustion test (RLIMIT_AS cannot be aimed
 * at the runtime under ASan or valgrind). */
#include "vt_test_util.h"
#include "vt_fiber.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* A fiber never migrates. */

typedef struct {
    int rounds;
    pthread_t thread[64];
    int carrier[64];
} pin_t;

static apr_status_t fn_stay(void *arg)
{
    pin_t *p = arg;
    for (int i = 0; i < p->rounds; i++) {
        p->thread[i] = pthread_self();
        p->carrier[i] = vt_fiber_carrier_index(vt_fiber_current());
        if (i % 3 == 0) {
            VT_CHECK(vthread_yield() == APR_SUCCESS);
        }
        else {
            VT_CHECK(vthread_sleep(1000 * (i % 4)) == APR_SUCCESS);
        }
    }
    return APR_SUCCESS;
}

START_TEST(test_never_migrates)
{
    enum { F = 8 };
    vt_test_rt_t t;
    pin_t p[F];
    vt_fiber_t *f[F];
    vt_test_rt_start(&t, 2);
    for (int i = 0; i < F; i++) {
        p[i].rounds = 64;
        f[i] = vt_test_go(&t, fn_stay, &p[i], "stay");
    }
    for (int i = 0; i < F; i++) {
        int idx = vt_fiber_carrier_index(f[i]);
        ck_assert_int_eq(vt_test_join(f[i]), APR_SUCCESS);
        for (int r = 1; r < p[i].rounds; r++) {
            ck_assert(pthread_equal(p[i].thread[r], p[i].thread[0]));
            ck_assert_int_eq(p[i].carrier[r], idx);
        }
    }
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Start from a plain thread other than the creator. */
typedef struct {
    vt_fiber_t *f;
} starter_t;

static void *start_elsewhere(void *arg)
{
    vt_spawn_start(((starter_t *)arg)->f);
    return NULL;
}

START_TEST(test_start_from_other_thread)
{
    vt_test_rt_t t;
    starter_t s;
    vt_test_whoami_t w;
    apr_thread_t *th;
    memset(&w, 0, sizeof(w));
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vt_spawn_create(&s.f, t.rt, vt_test_fn_whoami, &w,
                                     "elsewhere"), APR_SUCCESS);
    th = vt_test_thread(t.pool, start_elsewhere, &s);
    vt_test_thread_join(th);
    ck_assert_int_eq(vt_test_join(s.f), 42);
    ck_assert_int_eq(w.on_fiber, 1);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Counters. */

typedef struct {
    const vt_runtime_t *rt;
    _Atomic int stop;
    apr_uint32_t max_live;
    int reads;
    int went_back;          /* switches or started decreased */
} reader_t;

static void *stats_reader(void *arg)
{
    reader_t *r = arg;
    apr_uint64_t last_sw[2] = { 0, 0 }, last_st[2] = { 0, 0 };
    while (!atomic_load(&r->stop)) {
        for (int i = 0; i < 2; i++) {
            vt_carrier_stats_t s;
            if (!VT_CHECK(vt_runtime_carrier_stats(r->rt, i, &s)
                          == APR_SUCCESS)) {
                return NULL;
            }
            if (s.switches < last_sw[i] || s.started < last_st[i]) {
                r->went_back = 1;
            }
            last_sw[i] = s.switches;
            last_st[i] = s.started;
            if (s.live > r->max_live) {
                r->max_live = s.live;
            }
        }
        r->reads++;
        apr_sleep(200);
    }
    return NULL;
}

static apr_status_t fn_work(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        VT_CHECK(vthread_sleep(1000) == APR_SUCCESS);
        VT_CHECK(vthread_yield() == APR_SUCCESS);
    }
    return APR_SUCCESS;
}

START_TEST(test_stats_move)
{
    const int n = VT_N(400, 60);
    vt_test_rt_t t;
    reader_t r;
    apr_thread_t *th;
    vt_fiber_t **f = calloc((size_t)n, sizeof(*f));
    vt_carrier_stats_t s;
    ck_assert_ptr_nonnull(f);
    memset(&r, 0, sizeof(r));
    vt_test_rt_start(&t, 2);
    r.rt = t.rt;
    vt_test_stats_sum(t.rt, &s);
    ck_assert_uint_eq(s.started, 0);
    ck_assert_uint_eq(s.live, 0);
    th = vt_test_thread(t.pool, stats_reader, &r);
    for (int i = 0; i < n; i++) {
        f[i] = vt_test_go(&t, fn_work, NULL, "work");
    }
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(vt_test_join(f[i]), APR_SUCCESS);
    }
    atomic_store(&r.stop, 1);
    vt_test_thread_join(th);
    vt_test_stats_sum(t.rt, &s);
    ck_assert_int_gt(r.reads, 0);
    ck_assert_int_eq(r.went_back, 0);
    ck_assert_uint_gt(r.max_live, 0);
    ck_assert_uint_eq(s.started, (apr_uint64_t)n);
    ck_assert_uint_ge(s.switches, 7 * (apr_uint64_t)n);
    ck_assert_uint_eq(s.live, 0);
    ck_assert_uint_eq(s.runnable, 0);
    ck_assert_uint_eq(s.parked_timer, 0);
    ck_assert_uint_eq(s.parked_io, 0);
    ck_assert_uint_eq(s.parked_sync, 0);
    ck_assert_uint_eq(vt_runtime_live(t.rt), 0);
    vt_test_rt_stop(&t);
    free(f);
}
END_TEST

/* Each kind of park shows in its own counter (sync: vt_test_fn_park_sync,
 * on p.ev). */

static apr_status_t fn_park_timer(void *arg)
{
    (void)arg;
    return vthread_sleep(apr_time_from_sec(30));
}

static apr_status_t fn_park_io(void *arg)
{
    return vthread_wait_fd(((vt_test_parks_t *)arg)->fd, APR_POLLIN, -1);
}

START_TEST(test_stats_parked_kinds)
{
    vt_test_rt_t t;
    vt_test_parks_t p;
    int fds[2];
    vt_fiber_t *f[3];
    vt_carrier_stats_t s;
    ck_assert_int_eq(pipe(fds), 0);
    p.fd = fds[0];
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_event_create(&p.ev, t.pool), APR_SUCCESS);
    f[0] = vt_test_go(&t, fn_park_timer, &p, "timer");
    f[1] = vt_test_go(&t, fn_park_io, &p, "io");
    f[2] = vt_test_go(&t, vt_test_fn_park_sync, &p, "sync");
    ck_assert(vt_test_wait_parked(t.rt, 1, 1, 1));
    vt_test_stats_sum(t.rt, &s);
    ck_assert_uint_eq(s.parked_timer, 1);
    ck_assert_uint_eq(s.parked_io, 1);
    ck_assert_uint_eq(s.parked_sync, 1);
    ck_assert_uint_eq(s.live, 3);
    ck_assert_uint_eq(s.runnable, 0);
    ck_assert_uint_eq(vt_runtime_live(t.rt), 3);
    for (int i = 0; i < 3; i++) {
        vt_spawn_cancel(f[i]);
        ck_assert_int_eq(vt_test_join(f[i]), APR_ECONNABORTED);
    }
    vt_test_stats_sum(t.rt, &s);
    ck_assert_uint_eq(s.parked_timer + s.parked_io + s.parked_sync, 0);
    vt_test_rt_stop(&t);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

START_TEST(test_stack_cache_watermark)
{
    enum { N = 12 };
    vt_test_rt_t t;
    vt_test_parks_t p;
    vt_fiber_t *f[N];
    vt_carrier_stats_t s;
    vt_test_config(&t, 1);
    t.cfg.stack_size = 64 * 1024;
    t.cfg.stack_cache_hot = 2;
    vt_test_rt_start_cfg(&t);
    ck_assert_int_eq(vthread_event_create(&p.ev, t.pool), APR_SUCCESS);
    for (int i = 0; i < N; i++) {
        f[i] = vt_test_go(&t, vt_test_fn_park_sync, &p, "stacked");
    }
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, N));
    ck_assert_uint_eq(vthread_event_broadcast(p.ev), N);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(vt_test_join(f[i]), APR_SUCCESS);
    }
    /* released stacks are kept for reuse; the carrier's periodic trim
     * (every 250 ms) leaves only `hot` of them committed, and unmaps the
     * cold ones beyond as many again */
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(vt_runtime_carrier_stats(t.rt, 0, &s),
                         APR_SUCCESS);
        if (s.stacks_cached_bytes <= 2 * 64 * 1024
            && s.stacks_cached <= 2 + 2) {
            break;
        }
        apr_sleep(apr_time_from_msec(50));
    }
    ck_assert_uint_eq(s.stacks_cached, 2 + 2);
    ck_assert_uint_le(s.stacks_cached_bytes, 2 * 64 * 1024);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* No stack can be mapped: the fiber waits for one, it is not lost. */

static _Atomic int exhaust_b_ran;
static apr_time_t exhaust_a_end, exhaust_b_start;

static apr_status_t fn_exhaust_a(void *arg)
{
    (void)arg;
    vthread_sleep(apr_time_from_msec(300));
    exhaust_a_end = apr_time_now();
    return APR_SUCCESS;
}

static apr_status_t fn_exhaust_b(void *arg)
{
    (void)arg;
    exhaust_b_start = apr_time_now();
    atomic_store(&exhaust_b_ran, 1);
    return APR_SUCCESS;
}

/* In a forked child (RLIMIT_AS is process-wide): exit status 0 if B ran,
 * after A ended, on the stack A released; 10+ for each way it failed. */
static int exhaust_child(void)
{
    apr_pool_t *pool;
    vt_config_t cfg;
    vt_runtime_t *rt;
    vt_fiber_t *a, *b;
    apr_status_t result = -1;
    unsigned long pages = 0;
    struct rlimit rl;
    FILE *statm;

    apr_pool_create(&pool, NULL);
    vt_config_default(&cfg);
    cfg.carriers = 1;
    cfg.stack_size = 8 * 1024 * 1024; /* one more would not fit below */
    cfg.pinned_warn = 0;
    if (vt_runtime_create(&rt, &cfg, pool) != APR_SUCCESS) {
        return 10;
    }
    if (vt_spawn_create(&a, rt, fn_exhaust_a, NULL, "holder") != APR_SUCCESS
        || vt_spawn_create(&b, rt, fn_exhaust_b, NULL, "late") != APR_SUCCESS) {
        return 11;
    }
    vt_spawn_start(a);
    apr_sleep(apr_time_from_msec(100)); /* A has its stack and sleeps */
    statm = fopen("/proc/self/statm", "r");
    if (!statm || fscanf(statm, "%lu", &pages) != 1) {
        return 12;
    }
    fclose(statm);
    rl.rlim_cur = rl.rlim_max =
        (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + 2 * 1024 * 1024;
    if (setrlimit(RLIMIT_AS, &rl) != 0) {
        return 13;
    }
    vt_spawn_start(b);
    if (vt_wait_join(b, apr_time_from_sec(5), &result) != APR_SUCCESS) {
        return 14;                      /* lost: never ran, never ended */
    }
    if (!atomic_load(&exhaust_b_ran) || result != APR_SUCCESS) {
        return 15;                      /* ended without running */
    }
    if (exhaust_b_start < exhaust_a_end) {
        return 16;                      /* so a stack could be mapped */
    }
    vt_wait_join(a, -1, NULL);
    vt_runtime_stop(rt);
    return 0;
}

START_TEST(test_stack_exhaustion_waits)
{
    pid_t pid;
    int status = 0;
    if (vt_test_slow()) {
        /* ASan reserves terabytes of address space and valgrind maps its
         * own: RLIMIT_AS cannot be aimed at the runtime there. */
        return;
    }
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        _exit(exhaust_child());
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child: %s %d (14: the fiber was lost, 15: ended unrun, "
                  "16: a stack could still be mapped)",
                  WIFEXITED(status) ? "exit" : "signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_carrier");
    vt_test_add(s, test_never_migrates);
    vt_test_add(s, test_start_from_other_thread);
    vt_test_add(s, test_stats_move);
    vt_test_add(s, test_stats_parked_kinds);
    vt_test_add(s, test_stack_cache_watermark);
    vt_test_add(s, test_stack_exhaustion_waits);
    return vt_test_main(s);
}
