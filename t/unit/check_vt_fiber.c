/* Unit tests for vt_fiber.c: labels (copied, cut, replaced while the
 * fiber runs, also in its stack's header), the first-wait hook, deferred
 * calls (LIFO, once, on the fiber, after the body returns, also when it is
 * cancelled or detached; refused off a fiber), the time a fiber spent
 * parked. */
#include "vt_test_util.h"
#include "vt_fiber.h"

#include <stdatomic.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Labels. */

START_TEST(test_labels)
{
    vt_test_rt_t t;
    vt_test_whoami_t w;
    char buf[64], longl[400];
    vt_fiber_t *f;
    vt_test_rt_start(&t, 2);

    /* the label is copied */
    strcpy(buf, "GET /slow HTTP/1.1");
    ck_assert_int_eq(vt_spawn_create(&f, t.rt, vt_test_fn_whoami, &w, buf),
                     APR_SUCCESS);
    memset(buf, 'z', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    ck_assert_str_eq(vt_fiber_label(f), "GET /slow HTTP/1.1");
    vt_spawn_start(f);
    vt_test_join(f);
    ck_assert_str_eq(w.label, "GET /slow HTTP/1.1");

    /* a long label is cut to VT_FIBER_LABEL_MAX - 1 bytes */
    for (size_t i = 0; i < sizeof(longl) - 1; i++) {
        longl[i] = (char)('a' + i % 26);
    }
    longl[sizeof(longl) - 1] = '\0';
    f = vt_test_go(&t, vt_test_fn_whoami, &w, longl);
    vt_test_join(f);
    ck_assert_uint_eq(strlen(w.label), VT_FIBER_LABEL_MAX - 1);
    ck_assert_int_eq(memcmp(w.label, longl, VT_FIBER_LABEL_MAX - 1), 0);
    vt_test_rt_stop(&t);
}
END_TEST

/* A fiber that serves one piece of work after another renames itself:
 * the new label replaces the whole old one, in the fiber and in its
 * stack's header (what an overflow report names). */
typedef struct {
    char after_long[VT_FIBER_LABEL_MAX];
    char after_short[VT_FIBER_LABEL_MAX];
    char in_stack[VT_FIBER_LABEL_MAX];
} relabel_t;

static apr_status_t fn_relabel(void *arg)
{
    relabel_t *rl = arg;
    vt_fiber_t *self = vt_fiber_current();

    vt_fiber_set_label(self, "GET /first-request-with-a-long-name HTTP/1.1");
    strcpy(rl->after_long, vt_fiber_label(self));
    vt_fiber_set_label(self, "GET /b HTTP/1.1");
    strcpy(rl->after_short, vt_fiber_label(self));
    strcpy(rl->in_stack, self->stack->label);
    return APR_SUCCESS;
}

START_TEST(test_set_label)
{
    vt_test_rt_t t;
    relabel_t rl;
    vt_fiber_t *f;

    vt_test_rt_start(&t, 1);
    f = vt_test_go(&t, fn_relabel, &rl, "created as");
    vt_test_join(f);
    ck_assert_str_eq(rl.after_long,
                     "GET /first-request-with-a-long-name HTTP/1.1");
    ck_assert_str_eq(rl.after_short, "GET /b HTTP/1.1");
    ck_assert_str_eq(rl.in_stack, "GET /b HTTP/1.1");
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* vt_fiber_on_first_wait: once, on the fiber, at its first park or
 * yield; never for a fiber that does not wait, nor once cleared. */

typedef struct {
    int how;            /* 0: no wait, 1: sleeps twice, 2: yields, 3: cleared */
    int calls;
    int on_self;
    vt_fiber_t *self;
} first_wait_t;

static void on_first_wait(void *arg)
{
    first_wait_t *fw = arg;

    fw->calls++;
    fw->on_self = vt_fiber_current() == fw->self;
}

static apr_status_t fn_first_wait(void *arg)
{
    first_wait_t *fw = arg;

    fw->self = vt_fiber_current();
    vt_fiber_on_first_wait(fw->self, on_first_wait, fw);
    switch (fw->how) {
    case 1:
        VT_CHECK(vthread_sleep(1000) == APR_SUCCESS);
        VT_CHECK(vthread_sleep(1000) == APR_SUCCESS);
        break;
    case 2:
        VT_CHECK(vthread_yield() == APR_SUCCESS);
        VT_CHECK(vthread_yield() == APR_SUCCESS);
        break;
    case 3:
        vt_fiber_on_first_wait(fw->self, NULL, NULL);
        VT_CHECK(vthread_sleep(1000) == APR_SUCCESS);
        break;
    }
    return APR_SUCCESS;
}

START_TEST(test_on_first_wait)
{
    vt_test_rt_t t;
    first_wait_t fw[4];

    memset(fw, 0, sizeof(fw));
    vt_test_rt_start(&t, 1);
    for (int i = 0; i < 4; i++) {
        fw[i].how = i;
        vt_test_join(vt_test_go(&t, fn_first_wait, &fw[i], "first-wait"));
    }
    ck_assert_int_eq(fw[0].calls, 0);   /* never waited */
    ck_assert_int_eq(fw[1].calls, 1);   /* two sleeps: once */
    ck_assert_int_eq(fw[1].on_self, 1);
    ck_assert_int_eq(fw[2].calls, 1);   /* two yields: once */
    ck_assert_int_eq(fw[2].on_self, 1);
    ck_assert_int_eq(fw[3].calls, 0);   /* cleared before its sleep */
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Deferred calls. */

typedef struct {
    int order[8];
    _Atomic int n;
    int ran_on_fiber[8];
    vt_fiber_t *ran_in[8];
    vt_fiber_t *self;
    int returned;       /* the body returned before the defers ran */
    apr_status_t sleep_rv;
} defer_log_t;

typedef struct {
    defer_log_t *log;
    int id;
} defer_arg_t;

static void deferred(void *arg)
{
    defer_arg_t *d = arg;
    int i = atomic_fetch_add(&d->log->n, 1);
    if (i < 8) {
        d->log->order[i] = d->id;
        d->log->ran_on_fiber[i] = vthread_on_fiber();
        d->log->ran_in[i] = vt_fiber_current();
    }
}

typedef struct {
    defer_log_t log;
    defer_arg_t args[3];
    int park;           /* sleep long (to be cancelled) before returning */
    _Atomic int started;
} defer_test_t;

static apr_status_t fn_defers(void *arg)
{
    defer_test_t *d = arg;
    d->log.self = vt_fiber_current();
    for (int i = 0; i < 3; i++) {
        d->args[i].log = &d->log;
        d->args[i].id = i + 1;
        VT_CHECK(vthread_defer(deferred, &d->args[i]) == APR_SUCCESS);
    }
    atomic_store(&d->started, 1);
    if (d->park) {
        d->log.sleep_rv = vthread_sleep(apr_time_from_sec(20));
    }
    /* nothing ran yet */
    VT_CHECK(atomic_load(&d->log.n) == 0);
    d->log.returned = 1;
    return APR_SUCCESS;
}

static void check_defer_log(defer_test_t *d)
{
    ck_assert_int_eq(atomic_load(&d->log.n), 3);
    ck_assert_int_eq(d->log.returned, 1);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(d->log.order[i], 3 - i);   /* LIFO */
        ck_assert_int_eq(d->log.ran_on_fiber[i], 1);
        ck_assert_ptr_eq(d->log.ran_in[i], d->log.self);
    }
}

START_TEST(test_defer_lifo_once)
{
    vt_test_rt_t t;
    defer_test_t d;
    memset(&d, 0, sizeof(d));
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vt_test_run(&t, fn_defers, &d), APR_SUCCESS);
    /* they ran before join returned */
    check_defer_log(&d);
    vt_test_rt_stop(&t);
    ck_assert_int_eq(atomic_load(&d.log.n), 3);
}
END_TEST

static int defer_started(void *arg)
{
    return atomic_load(&((defer_test_t *)arg)->started);
}

START_TEST(test_defer_on_cancel)
{
    vt_test_rt_t t;
    defer_test_t d;
    vt_fiber_t *f;
    memset(&d, 0, sizeof(d));
    d.park = 1;
    vt_test_rt_start(&t, 2);
    f = vt_test_go(&t, fn_defers, &d, "defer-cancel");
    ck_assert(vt_test_wait_until(defer_started, &d, apr_time_from_sec(5)));
    vt_spawn_cancel(f);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    ck_assert_int_eq(d.log.sleep_rv, APR_ECONNABORTED);
    check_defer_log(&d);
    vt_test_rt_stop(&t);
    ck_assert_int_eq(atomic_load(&d.log.n), 3);
}
END_TEST

START_TEST(test_defer_detached)
{
    vt_test_rt_t t;
    defer_test_t d;
    memset(&d, 0, sizeof(d));
    vt_test_rt_start(&t, 2);
    vt_spawn_detach(vt_test_go(&t, fn_defers, &d, "defer-detached"));
    ck_assert(vt_test_wait_live(t.rt, 0));
    check_defer_log(&d);
    vt_test_rt_stop(&t);
}
END_TEST

static void never(void *arg)
{
    atomic_store((_Atomic int *)arg, 1);
}

START_TEST(test_defer_off_fiber)
{
    vt_test_rt_t t;
    _Atomic int ran = 0;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_defer(never, &ran), APR_EINVAL);
    vt_test_rt_stop(&t);
    ck_assert_int_eq(atomic_load(&ran), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Time spent parked. */

typedef struct {
    apr_interval_time_t before, after;
} parked_t;

static apr_status_t fn_parked_time(void *arg)
{
    parked_t *p = arg;
    p->before = vt_fiber_parked_time(vt_fiber_current());
    VT_CHECK(vthread_sleep(VT_MS(50)) == APR_SUCCESS);
    p->after = vt_fiber_parked_time(vt_fiber_current());
    return APR_SUCCESS;
}

START_TEST(test_parked_time)
{
    vt_test_rt_t t;
    parked_t p;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vt_test_run(&t, fn_parked_time, &p), APR_SUCCESS);
    ck_assert_int_lt(p.before, VT_MS(50));
    ck_assert_int_ge(p.after - p.before, VT_MS(45));
    ck_assert_int_lt(p.after - p.before, VT_MS(50) + vt_test_soon());
    vt_test_rt_stop(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_fiber");
    vt_test_add(s, test_labels);
    vt_test_add(s, test_set_label);
    vt_test_add(s, test_on_first_wait);
    vt_test_add(s, test_defer_lifo_once);
    vt_test_add(s, test_defer_on_cancel);
    vt_test_add(s, test_defer_detached);
    vt_test_add(s, test_defer_off_fiber);
    vt_test_add(s, test_parked_time);
    return vt_test_main(s);
}
