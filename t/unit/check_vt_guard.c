/* Unit tests for vt_guard.c (and the guard page of vt_stack.c), each in a
 * forked child that is meant to crash:
 * - a fiber with a small stack recursing until it overflows: the child
 *   dies by SIGSEGV and its stderr has the overflow report with the
 *   fiber's label (and not the label of another fiber running then);
 * - a NULL dereference, on a fiber or off one, still kills the child by
 *   SIGSEGV, without an overflow report;
 * - touching a cached stack's guard page faults, runtime or not.
 * Plus one that is not meant to crash: deep recursion within the stack.
 *
 * Not run under valgrind (VALGRIND_SKIP in unit.am). In an ASan build the
 * sanitizer's own SIGSEGV handler ends the child (abort or exit 1) after
 * ours has reported; there any abnormal end counts as "died".
 */
#include "vt_test_util.h"
#include "vt_stack.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
#define DIED_OF_SEGV(st)                                                   \
    ((WIFSIGNALED(st) && (WTERMSIG(st) == SIGSEGV                          \
                          || WTERMSIG(st) == SIGABRT))                     \
     || (WIFEXITED(st) && WEXITSTATUS(st) != 0))
#else
#define DIED_OF_SEGV(st) (WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV)
#endif

typedef struct {
    int status;
    char err[16384];    /* the child's stderr */
    int timed_out;
} child_t;

/* Run fn in a forked child whose stderr is captured; wait for it to end
 * (SIGKILL after 20 s). */
static void run_child(void (*fn)(void *arg), void *arg, child_t *c)
{
    int p[2];
    pid_t pid;
    size_t len = 0;
    apr_time_t end = apr_time_now() + apr_time_from_sec(20);
    int eof = 0;

    memset(c, 0, sizeof(*c));
    ck_assert_int_eq(pipe(p), 0);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], STDERR_FILENO);
        close(p[1]);
        fn(arg);
        _exit(0);   /* it was meant to crash */
    }
    close(p[1]);
    while (!eof && apr_time_now() < end) {
        struct pollfd pfd = { .fd = p[0], .events = POLLIN };
        if (poll(&pfd, 1, 100) > 0) {
            ssize_t n = read(p[0], c->err + len, sizeof(c->err) - 1 - len);
            if (n > 0) {
                len += (size_t)n;
            }
            else if (n == 0 || errno != EINTR) {
                eof = 1;
            }
        }
        if (len >= sizeof(c->err) - 1) {
            break;
        }
    }
    c->err[len] = '\0';
    close(p[0]);
    for (;;) {
        pid_t w = waitpid(pid, &c->status, WNOHANG);
        if (w == pid) {
            break;
        }
        if (apr_time_now() >= end) {
            c->timed_out = 1;
            kill(pid, SIGKILL);
            waitpid(pid, &c->status, 0);
            break;
        }
        apr_sleep(VT_MS(10));
    }
    if (c->timed_out) {
        fprintf(stderr, "child timed out; its stderr:\n%s\n", c->err);
    }
}

static const char *describe(const child_t *c, char *buf, size_t len)
{
    if (WIFSIGNALED(c->status)) {
        snprintf(buf, len, "killed by signal %d", WTERMSIG(c->status));
    }
    else if (WIFEXITED(c->status)) {
        snprintf(buf, len, "exited with %d", WEXITSTATUS(c->status));
    }
    else {
        snprintf(buf, len, "status %#x", c->status);
    }
    return buf;
}

static void assert_died_of_segv(const child_t *c)
{
    char how[64];
    ck_assert_msg(!c->timed_out, "child hung; stderr: %s", c->err);
    ck_assert_msg(DIED_OF_SEGV(c->status),
                  "child did not die by SIGSEGV but %s; stderr: %s",
                  describe(c, how, sizeof(how)), c->err);
}

/* ------------------------------------------------------------------ */
/* In the child. */

static volatile long recurse_limit = 1L << 40;

/* Not tail-recursive (the sum after the call), frame not elided
 * (volatile buffer), never ending (the limit is out of reach). */
static long recurse(long depth)
{
    volatile char buf[512];
    buf[0] = (char)depth;
    buf[sizeof(buf) - 1] = (char)depth;
    if (depth >= recurse_limit) {
        return buf[0];
    }
    return recurse(depth + 1) + buf[0] + buf[sizeof(buf) - 1];
}

static apr_status_t fn_overflow(void *arg)
{
    (void)arg;
    return (apr_status_t)recurse(0);
}

__attribute__((no_sanitize_undefined))
static void null_deref(void)
{
    volatile int *volatile p = NULL;
    *p = 42;
}

static apr_status_t fn_null(void *arg)
{
    (void)arg;
    null_deref();
    return APR_SUCCESS;
}

static apr_status_t fn_sleep_long(void *arg)
{
    (void)arg;
    vthread_sleep(apr_time_from_sec(30));
    return APR_SUCCESS;
}

typedef struct {
    int carriers;
    vthread_fn_t fn;            /* the fiber that crashes, or NULL */
    const char *label;
    const char *bystander;      /* label of a sleeping fiber, or NULL */
    int crash_off_fiber;
} crash_t;

static void child_runtime(void *arg)
{
    crash_t *x = arg;
    apr_pool_t *pool;
    vt_runtime_t *rt;
    vt_config_t cfg;
    vt_fiber_t *f;
    vt_config_default(&cfg);
    cfg.carriers = x->carriers;
    cfg.stack_size = VT_STACK_MIN_SIZE;
    cfg.pinned_warn = 0;
    cfg.log = NULL;     /* stderr */
    if (apr_pool_create(&pool, NULL) != APR_SUCCESS
        || vt_runtime_create(&rt, &cfg, pool) != APR_SUCCESS) {
        fprintf(stderr, "child: no runtime\n");
        _exit(3);
    }
    if (x->bystander) {
        if (vt_spawn_create(&f, rt, fn_sleep_long, NULL, x->bystander)
            != APR_SUCCESS) {
            _exit(4);
        }
        vt_spawn_start(f);
        apr_sleep(VT_MS(20));
    }
    if (x->crash_off_fiber) {
        null_deref();
        _exit(0);
    }
    if (vt_spawn_create(&f, rt, x->fn, NULL, x->label) != APR_SUCCESS) {
        _exit(5);
    }
    vt_spawn_start(f);
    vt_wait_join(f, apr_time_from_sec(15), NULL);
    fprintf(stderr, "child: the fiber returned\n");
    _exit(0);
}

/* ------------------------------------------------------------------ */

START_TEST(test_overflow_reported)
{
    static const char label[] = "GET /deep-recursion HTTP/1.1 [guard-test]";
    crash_t x = { 1, fn_overflow, label, NULL, 0 };
    child_t c;
    run_child(child_runtime, &x, &c);
    assert_died_of_segv(&c);
    ck_assert_msg(strstr(c.err, label) != NULL,
                  "no report naming the label; stderr: %s", c.err);
    ck_assert_msg(strcasestr(c.err, "overflow") != NULL,
                  "report does not say overflow; stderr: %s", c.err);
}
END_TEST

START_TEST(test_overflow_names_right_fiber)
{
    static const char label[] = "overflowing-fiber-7f3a";
    static const char innocent[] = "innocent-bystander-51c2";
    crash_t x = { 2, fn_overflow, label, innocent, 0 };
    child_t c;
    run_child(child_runtime, &x, &c);
    assert_died_of_segv(&c);
    ck_assert_msg(strstr(c.err, label) != NULL,
                  "no report naming the label; stderr: %s", c.err);
    ck_assert_msg(strstr(c.err, innocent) == NULL,
                  "report names the wrong fiber; stderr: %s", c.err);
}
END_TEST

START_TEST(test_null_deref_on_fiber)
{
    static const char label[] = "null-deref-fiber-label";
    crash_t x = { 1, fn_null, label, NULL, 0 };
    child_t c;
    run_child(child_runtime, &x, &c);
    assert_died_of_segv(&c);
    ck_assert_msg(strstr(c.err, label) == NULL
                  && strcasestr(c.err, "overflow") == NULL,
                  "a NULL dereference was reported as an overflow: %s",
                  c.err);
}
END_TEST

START_TEST(test_null_deref_off_fiber)
{
    static const char innocent[] = "sleeping-fiber-label";
    crash_t x = { 2, NULL, NULL, innocent, 1 };
    child_t c;
    run_child(child_runtime, &x, &c);
    assert_died_of_segv(&c);
    ck_assert_msg(strstr(c.err, innocent) == NULL
                  && strcasestr(c.err, "overflow") == NULL,
                  "a NULL dereference off a fiber was reported as an "
                  "overflow: %s", c.err);
}
END_TEST

/* A cached stack's guard page faults, with or without a runtime. */
static void child_touch_guard(void *arg)
{
    vt_stack_cache_t sc;
    vt_stack_t *st;
    (void)arg;
    vt_stack_cache_init(&sc, VT_STACK_MIN_SIZE, 1);
    if (vt_stack_get(&sc, &st) != APR_SUCCESS) {
        _exit(3);
    }
    st->lo[0] = 1;                      /* fine */
    ((volatile char *)st->lo)[-1] = 1;  /* guard */
    fprintf(stderr, "child: wrote into the guard page\n");
    _exit(0);
}

START_TEST(test_guard_page_faults)
{
    child_t c;
    run_child(child_touch_guard, NULL, &c);
    assert_died_of_segv(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Deep but bounded recursion on a fiber is fine (in this process). */

static apr_status_t fn_bounded(void *arg)
{
    long depth = *(long *)arg;
    long saved = recurse_limit;
    long r, want = (char)depth;
    for (long d = 0; d < depth; d++) {
        want += 2 * (char)d;
    }
    recurse_limit = depth;
    r = recurse(0);
    recurse_limit = saved;
    return r == want ? APR_SUCCESS : APR_EGENERAL;
}

START_TEST(test_bounded_recursion_ok)
{
    vt_test_rt_t t;
    long depth = 40;    /* about 20 KiB of 64 KiB */
    vt_test_config(&t, 1);
    t.cfg.stack_size = 64 * 1024;
    vt_test_rt_start_cfg(&t);
    ck_assert_int_eq(vt_test_run(&t, fn_bounded, &depth), APR_SUCCESS);
    vt_test_rt_stop(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_guard");
    vt_test_add(s, test_overflow_reported);
    vt_test_add(s, test_overflow_names_right_fiber);
    vt_test_add(s, test_null_deref_on_fiber);
    vt_test_add(s, test_null_deref_off_fiber);
    vt_test_add(s, test_guard_page_faults);
    vt_test_add(s, test_bounded_recursion_ok);
    return vt_test_main(s);
}
