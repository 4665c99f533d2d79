/* Unit tests for vt_libstate.c and the switch in vt_fiber.h: errno and
 * OpenSSL's error queue are each fiber's own across a park, though the
 * fibers share one carrier thread. OpenSSL is loaded as mod_ssl would
 * load it (libcrypto.so.3, which Debian's apache2 depends on). */
#include "vt_test_util.h"
#include "vt_libstate.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>

typedef unsigned long (*peek_fn)(void);
typedef unsigned long (*get_all_fn)(const char **, int *, const char **,
                                    const char **, int *);
typedef void (*new_fn)(void);
typedef void (*set_debug_fn)(const char *, int, const char *);
typedef void (*set_error_fn)(int, int, const char *, ...);
typedef void (*clear_fn)(void);

static struct {
    peek_fn peek;
    get_all_fn get_all;
    new_fn new_error;
    set_debug_fn set_debug;
    set_error_fn set_error;
    clear_fn clear;
} ssl;

#define LIB_SSL 20      /* ERR_LIB_SSL */
#define LIB_SYS 2       /* ERR_LIB_SYS: reason is an errno */

static void load_openssl(void)
{
    void *h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_GLOBAL);
    ck_assert_msg(h != NULL, "libcrypto.so.3: %s", dlerror());
    ssl.peek = (peek_fn)dlsym(h, "ERR_peek_error");
    ssl.get_all = (get_all_fn)dlsym(h, "ERR_get_error_all");
    ssl.new_error = (new_fn)dlsym(h, "ERR_new");
    ssl.set_debug = (set_debug_fn)dlsym(h, "ERR_set_debug");
    ssl.set_error = (set_error_fn)dlsym(h, "ERR_set_error");
    ssl.clear = (clear_fn)dlsym(h, "ERR_clear_error");
    ck_assert(ssl.peek && ssl.get_all && ssl.new_error && ssl.set_debug
              && ssl.set_error && ssl.clear);
    ck_assert_int_eq(vt_libstate_enable(), 1);
}

/* One fiber's errors and errno around a park. */
typedef struct {
    const char *tag;        /* its error's data */
    int lib, reason, err;
    apr_interval_time_t nap;
    unsigned long raised;   /* what ERR_peek_error said before the park */
    int queue_empty_at_start;
    int own_back, only_own, errno_back;
} owner_t;

static apr_status_t fn_owner(void *arg)
{
    owner_t *o = arg;
    const char *file, *func, *data;
    int line, flags;
    unsigned long code;

    o->queue_empty_at_start = ssl.peek() == 0;
    /* As mod_ssl does before SSL_read: it frees what the thread's queue
     * held, strings included, while the other fiber's errors are kept
     * aside (a kept pointer into them would dangle: ASan says so). */
    ssl.clear();
    ssl.new_error();
    ssl.set_debug(o->tag, o->reason, "fn_owner");
    ssl.set_error(o->lib, o->reason, "%s", o->tag);
    o->raised = ssl.peek();
    errno = o->err;
    vthread_sleep(o->nap);      /* the other fiber runs meanwhile */
    o->errno_back = errno == o->err;
    code = ssl.get_all(&file, &line, &func, &data, &flags);
    o->own_back = code == o->raised && code != 0 && data
                  && strcmp(data, o->tag) == 0 && file
                  && strcmp(file, o->tag) == 0 && line == o->reason;
    o->only_own = ssl.get_all(NULL, NULL, NULL, NULL, NULL) == 0;
    return APR_SUCCESS;
}

START_TEST(test_queue_and_errno_are_per_fiber)
{
    vt_test_rt_t t;
    owner_t a = { "from-a", LIB_SSL, 100, 33, VT_MS(100), 0, 0, 0, 0, 0 };
    owner_t b = { "from-b", LIB_SYS, ECONNRESET, 34, VT_MS(50), 0, 0, 0, 0,
                  0 };
    vt_fiber_t *fa, *fb;

    load_openssl();
    vt_test_rt_start(&t, 1);    /* one carrier: both on one thread */
    fa = vt_test_go(&t, fn_owner, &a, "a");
    fb = vt_test_go(&t, fn_owner, &b, "b");
    ck_assert_int_eq(vt_test_join(fa), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(fb), APR_SUCCESS);
    vt_test_rt_stop(&t);
    ck_assert(a.raised != 0 && b.raised != 0 && a.raised != b.raised);
    /* b started while a was parked with its error queued: it found the
     * thread's queue empty, and each got back its own error only. */
    ck_assert(a.queue_empty_at_start && b.queue_empty_at_start);
    ck_assert(a.own_back && a.only_own);
    ck_assert(b.own_back && b.only_own);
    ck_assert(a.errno_back && b.errno_back);
}
END_TEST

static apr_status_t fn_leave_error(void *arg)
{
    (void)arg;
    ssl.new_error();
    ssl.set_debug("left.c", 1, "fn_leave_error");
    ssl.set_error(LIB_SSL, 300, NULL);
    return APR_SUCCESS;
}

static apr_status_t fn_queue_empty(void *arg)
{
    *(int *)arg = ssl.peek() == 0;
    return APR_SUCCESS;
}

START_TEST(test_an_ended_fiber_leaves_nothing)
{
    vt_test_rt_t t;
    int empty = 0;

    load_openssl();
    vt_test_rt_start(&t, 1);
    ck_assert_int_eq(vt_test_run(&t, fn_leave_error, NULL), APR_SUCCESS);
    ck_assert_int_eq(vt_test_run(&t, fn_queue_empty, &empty), APR_SUCCESS);
    vt_test_rt_stop(&t);
    ck_assert(empty);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_libstate");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, vt_test_timeout());
    tcase_add_test(tc, test_queue_and_errno_are_per_fiber);
    tcase_add_test(tc, test_an_ended_fiber_leaves_nothing);
    suite_add_tcase(s, tc);
    return vt_test_main(s);
}
