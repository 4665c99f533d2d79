/* Helpers shared by the Check suites: see vt_test_util.h. */
#ifdef HAVE_CONFIG_H
#include "vt_autoconf.h"
#endif
#include "vt_test_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

int vt_test_slow(void)
{
    const char *s = getenv("VT_SLOW");
    if (s && *s && strcmp(s, "0") != 0) {
        return 1;
    }
#ifdef __SANITIZE_ADDRESS__
    return 1;
#endif
#ifdef RUNNING_ON_VALGRIND
    if (RUNNING_ON_VALGRIND) {
        return 1;
    }
#endif
    return 0;
}

int vt_test_under_valgrind(void)
{
#ifdef RUNNING_ON_VALGRIND
    return RUNNING_ON_VALGRIND ? 1 : 0;
#else
    return 0;
#endif
}

int vt_test_timeout(void)
{
    return vt_test_slow() ? 60 : 30;
}

apr_interval_time_t vt_test_soon(void)
{
    return vt_test_slow() ? apr_time_from_sec(10) : apr_time_from_sec(1);
}

apr_interval_time_t vt_test_elapsed(apr_time_t since)
{
    return apr_time_now() - since;
}

/* ------------------------------------------------------------------ */

static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;
static int fail_count;
static char fail_first[512];

int vt_test_check(int ok, const char *expr, const char *file, int line)
{
    if (!ok) {
        pthread_mutex_lock(&fail_mu);
        if (fail_count++ == 0) {
            snprintf(fail_first, sizeof(fail_first), "%s:%d: VT_CHECK(%s)",
                     file, line, expr);
        }
        pthread_mutex_unlock(&fail_mu);
        fprintf(stderr, "%s:%d: VT_CHECK(%s) failed\n", file, line, expr);
    }
    return ok;
}

void vt_test_failures_reset(void)
{
    pthread_mutex_lock(&fail_mu);
    fail_count = 0;
    fail_first[0] = '\0';
    pthread_mutex_unlock(&fail_mu);
}

void vt_test_assert_no_failures(void)
{
    int n;
    char first[512];
    pthread_mutex_lock(&fail_mu);
    n = fail_count;
    memcpy(first, fail_first, sizeof(first));
    pthread_mutex_unlock(&fail_mu);
    ck_assert_msg(n == 0, "%d check(s) failed off the test thread; first: %s",
                  n, first);
}

/* ------------------------------------------------------------------ */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void vt_test_log_fn(void *baton, int level, int msg_id, const char *msg)
{
    vt_test_log_t *log = baton;
    pthread_mutex_lock(&log_mu);
    if (log->n < VT_TEST_LOG_MAX) {
        log->level[log->n] = level;
        log->id[log->n] = msg_id;
        snprintf(log->msg[log->n], sizeof(log->msg[0]), "%s",
                 msg ? msg : "(null)");
    }
    log->n++;
    pthread_mutex_unlock(&log_mu);
}

int vt_test_log_count(vt_test_log_t *log, int msg_id)
{
    int c = 0;
    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < log->n && i < VT_TEST_LOG_MAX; i++) {
        c += log->id[i] == msg_id;
    }
    pthread_mutex_unlock(&log_mu);
    return c;
}

int vt_test_log_find(vt_test_log_t *log, int msg_id, const char *needle)
{
    int found = 0;
    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < log->n && i < VT_TEST_LOG_MAX && !found; i++) {
        found = log->id[i] == msg_id && strstr(log->msg[i], needle) != NULL;
    }
    pthread_mutex_unlock(&log_mu);
    return found;
}

void vt_test_log_dump(vt_test_log_t *log)
{
    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < log->n && i < VT_TEST_LOG_MAX; i++) {
        fprintf(stderr, "  log[%d] level %d id %d: %s\n", i, log->level[i],
                log->id[i], log->msg[i]);
    }
    pthread_mutex_unlock(&log_mu);
}

/* ------------------------------------------------------------------ */

/* The runtime of the test in progress, for the teardown after a failed
 * assertion (CK_FORK=no: the test's frame is gone, its runtime is not). */
static vt_runtime_t *cur_rt;
static apr_pool_t *cur_pool;

static void leftover_teardown(void)
{
    if (cur_rt) {
        fprintf(stderr, "teardown: stopping the runtime a failed test "
                "left running\n");
        vt_runtime_stop(cur_rt);
        apr_pool_destroy(cur_pool);
        cur_rt = NULL;
        cur_pool = NULL;
    }
}

void vt_test_config(vt_test_rt_t *t, int carriers)
{
    memset(t, 0, sizeof(*t));
    vt_config_default(&t->cfg);
    t->cfg.carriers = carriers;
    t->cfg.log = vt_test_log_fn;
    t->cfg.log_baton = &t->log;
}

void vt_test_rt_start_cfg(vt_test_rt_t *t)
{
    apr_status_t rv;
    vt_test_failures_reset();
    ck_assert_int_eq(apr_pool_create(&t->pool, NULL), APR_SUCCESS);
    rv = vt_runtime_create(&t->rt, &t->cfg, t->pool);
    if (rv != APR_SUCCESS) {
        vt_test_log_dump(&t->log);
    }
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(t->pool);
        t->pool = NULL;
    }
    ck_assert_int_eq(rv, APR_SUCCESS);
    ck_assert_ptr_nonnull(t->rt);
    cur_rt = t->rt;
    cur_pool = t->pool;
}

void vt_test_rt_start(vt_test_rt_t *t, int carriers)
{
    vt_test_config(t, carriers);
    vt_test_rt_start_cfg(t);
}

void vt_test_rt_stop(vt_test_rt_t *t)
{
    apr_status_t rv = vt_runtime_stop(t->rt);
    apr_uint32_t live = vt_runtime_live(t->rt);
    apr_pool_destroy(t->pool);
    if (cur_rt == t->rt) {
        cur_rt = NULL;
        cur_pool = NULL;
    }
    t->pool = NULL;
    t->rt = NULL;
    ck_assert_int_eq(rv, APR_SUCCESS);
    ck_assert_uint_eq(live, 0);
    vt_test_assert_no_failures();
}

vt_fiber_t *vt_test_go(vt_test_rt_t *t, vthread_fn_t fn, void *arg,
                       const char *label)
{
    vt_fiber_t *f = NULL;
    apr_status_t rv = vt_spawn_create(&f, t->rt, fn, arg, label);
    ck_assert_int_eq(rv, APR_SUCCESS);
    ck_assert_ptr_nonnull(f);
    vt_spawn_start(f);
    return f;
}

apr_status_t vt_test_join(vt_fiber_t *f)
{
    apr_status_t result = -1;
    apr_status_t rv = vt_wait_join(f, apr_time_from_sec(vt_test_timeout() / 2),
                                    &result);
    ck_assert_msg(rv == APR_SUCCESS, "join returned %d", rv);
    return result;
}

apr_status_t vt_test_run(vt_test_rt_t *t, vthread_fn_t fn, void *arg)
{
    return vt_test_join(vt_test_go(t, fn, arg, "vt_test_run"));
}

void vt_test_stats_sum(const vt_runtime_t *rt, vt_carrier_stats_t *sum)
{
    memset(sum, 0, sizeof(*sum));
    for (int i = 0; i < vt_runtime_carriers(rt); i++) {
        vt_carrier_stats_t s;
        if (vt_runtime_carrier_stats(rt, i, &s) != APR_SUCCESS) {
            continue;
        }
        sum->live += s.live;
        sum->runnable += s.runnable;
        sum->parked_timer += s.parked_timer;
        sum->parked_io += s.parked_io;
        sum->parked_sync += s.parked_sync;
        sum->switches += s.switches;
        sum->started += s.started;
        sum->stacks_cached += s.stacks_cached;
        sum->stacks_cached_bytes += s.stacks_cached_bytes;
        sum->pinned += s.pinned;
    }
}

int vt_test_wait_until(int (*pred)(void *arg), void *arg,
                       apr_interval_time_t max)
{
    apr_time_t end = apr_time_now() + max;
    for (;;) {
        if (pred(arg)) {
            return 1;
        }
        if (apr_time_now() > end) {
            return pred(arg);
        }
        apr_sleep(1000);
    }
}

typedef struct {
    const vt_runtime_t *rt;
    apr_uint32_t timer, io, sync, live;
} parked_want_t;

static int parked_reached(void *arg)
{
    parked_want_t *w = arg;
    vt_carrier_stats_t s;
    vt_test_stats_sum(w->rt, &s);
    return s.parked_timer >= w->timer && s.parked_io >= w->io
        && s.parked_sync >= w->sync;
}

int vt_test_wait_parked(const vt_runtime_t *rt, apr_uint32_t timer,
                        apr_uint32_t io, apr_uint32_t sync)
{
    parked_want_t w = { rt, timer, io, sync, 0 };
    return vt_test_wait_until(parked_reached, &w,
                              apr_time_from_sec(vt_test_timeout() / 3));
}

static int live_reached(void *arg)
{
    parked_want_t *w = arg;
    return vt_runtime_live(w->rt) == w->live;
}

int vt_test_wait_live(const vt_runtime_t *rt, apr_uint32_t n)
{
    parked_want_t w = { rt, 0, 0, 0, n };
    return vt_test_wait_until(live_reached, &w,
                              apr_time_from_sec(vt_test_timeout() / 3));
}

/* ------------------------------------------------------------------ */

typedef struct {
    void *(*fn)(void *arg);
    void *arg;
} thread_call_t;

static void *APR_THREAD_FUNC thread_trampoline(apr_thread_t *th, void *data)
{
    thread_call_t *c = data;
    void *(*fn)(void *) = c->fn;
    void *arg = c->arg;
    free(c);
    fn(arg);
    apr_thread_exit(th, APR_SUCCESS);
    return NULL;
}

apr_thread_t *vt_test_thread(apr_pool_t *p, void *(*fn)(void *arg),
                             void *arg)
{
    apr_thread_t *th = NULL;
    thread_call_t *c = malloc(sizeof(*c));
    ck_assert_ptr_nonnull(c);
    c->fn = fn;
    c->arg = arg;
    ck_assert_int_eq(apr_thread_create(&th, NULL, thread_trampoline, c, p),
                     APR_SUCCESS);
    return th;
}

void vt_test_thread_join(apr_thread_t *th)
{
    apr_status_t trv;
    ck_assert_int_eq(apr_thread_join(&trv, th), APR_SUCCESS);
}

/* ------------------------------------------------------------------ */

apr_status_t vt_test_fn_whoami(void *arg)
{
    vt_test_whoami_t *w = arg;
    w->arg_seen = 1;
    w->on_fiber = vthread_on_fiber();
    w->self = vt_fiber_current();
    w->carrier = w->self ? vt_fiber_carrier_index(w->self) : -1;
    strcpy(w->label, w->self ? vt_fiber_label(w->self) : "(no fiber)");
    return 42;
}

apr_status_t vt_test_fn_nothing(void *arg)
{
    (void)arg;
    return APR_SUCCESS;
}

apr_status_t vt_test_fn_park_sync(void *arg)
{
    return vthread_event_wait(((vt_test_parks_t *)arg)->ev, -1);
}

/* ------------------------------------------------------------------ */

void vt_test_stderr_begin(vt_test_stderr_t *c)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    c->rd = p[0];
    c->wr = p[1];
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    ck_assert_int_ge(c->saved, 0);
    dup2(c->wr, STDERR_FILENO);
}

apr_size_t vt_test_stderr_end(vt_test_stderr_t *c, char *buf,
                              apr_size_t size)
{
    apr_size_t got = 0;
    fflush(stderr);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    close(c->wr);
    /* every writer is closed: read to the end of what was written */
    while (got + 1 < size) {
        ssize_t n = read(c->rd, buf + got, size - 1 - got);
        if (n <= 0) {
            break;
        }
        got += (apr_size_t)n;
    }
    close(c->rd);
    buf[got] = '\0';
    return got;
}

/* ------------------------------------------------------------------ */

static apr_sockaddr_t *loopback(apr_pool_t *p, apr_port_t port)
{
    apr_sockaddr_t *sa = NULL;
    ck_assert_int_eq(apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, port,
                                           0, p), APR_SUCCESS);
    return sa;
}

apr_socket_t *vt_test_socket(apr_pool_t *p)
{
    apr_socket_t *s = NULL;
    ck_assert_int_eq(apr_socket_create(&s, APR_INET, SOCK_STREAM,
                                       APR_PROTO_TCP, p), APR_SUCCESS);
    return s;
}

apr_socket_t *vt_test_listener(apr_pool_t *p, int rcvbuf,
                               apr_sockaddr_t **sa)
{
    apr_socket_t *l = vt_test_socket(p);
    apr_sockaddr_t *local = NULL;
    ck_assert_int_eq(apr_socket_opt_set(l, APR_SO_REUSEADDR, 1), APR_SUCCESS);
    if (rcvbuf > 0) {
        ck_assert_int_eq(apr_socket_opt_set(l, APR_SO_RCVBUF, rcvbuf),
                         APR_SUCCESS);
    }
    ck_assert_int_eq(apr_socket_bind(l, loopback(p, 0)), APR_SUCCESS);
    ck_assert_int_eq(apr_socket_listen(l, 64), APR_SUCCESS);
    ck_assert_int_eq(apr_socket_addr_get(&local, APR_LOCAL, l), APR_SUCCESS);
    ck_assert_uint_ne(local->port, 0);
    *sa = loopback(p, local->port);
    return l;
}

void vt_test_socket_pair(apr_pool_t *p, apr_socket_t **client,
                         apr_socket_t **server)
{
    apr_sockaddr_t *sa;
    apr_socket_t *l = vt_test_listener(p, 0, &sa);
    *client = vt_test_socket(p);
    ck_assert_int_eq(apr_socket_connect(*client, sa), APR_SUCCESS);
    ck_assert_int_eq(apr_socket_accept(server, l, p), APR_SUCCESS);
    apr_socket_close(l);
}

apr_sockaddr_t *vt_test_closed_addr(apr_pool_t *p)
{
    apr_sockaddr_t *sa;
    apr_socket_t *l = vt_test_listener(p, 0, &sa);
    apr_socket_close(l);
    return sa;
}

void vt_test_pattern_fill(char *buf, apr_size_t len, apr_size_t off)
{
    for (apr_size_t i = 0; i < len; i++) {
        buf[i] = VT_PATTERN(off + i);
    }
}

int vt_test_pattern_ok(const char *buf, apr_size_t len, apr_size_t off)
{
    for (apr_size_t i = 0; i < len; i++) {
        if (buf[i] != VT_PATTERN(off + i)) {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ */

void vt_test_add(Suite *s, const TTest *test)
{
    TCase *tc = tcase_create(test->name);
    tcase_set_timeout(tc, vt_test_timeout());
    tcase_add_checked_fixture(tc, NULL, leftover_teardown);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

void vt_test_add_fixture(Suite *s, const TTest *test, SFun setup,
                         SFun teardown)
{
    TCase *tc = tcase_create(test->name);
    tcase_set_timeout(tc, vt_test_timeout());
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_checked_fixture(tc, NULL, leftover_teardown);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

int vt_test_main(Suite *s)
{
    SRunner *sr;
    int failed;
    if (apr_initialize() != APR_SUCCESS) {
        fprintf(stderr, "apr_initialize failed\n");
        return EXIT_FAILURE;
    }
    sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    apr_terminate();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
