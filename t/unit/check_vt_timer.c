/* Unit tests for vt_timer.c: deadline order, FIFO ties, partial expiry,
 * removal from anywhere, timers touched from fire callbacks, and a
 * randomised comparison against a plain array model.
 *
 * Slow mode (VT_SLOW=1, ASan, valgrind: see vt_test_util.h) runs fewer
 * random operations. */
#include "vt_test_util.h"
#include "vt_timer.h"

#include <stdlib.h>
#include <string.h>

/* A timer with a record of when it fired. */
typedef struct {
    vt_timer_t t;
    int id;
    int fired;              /* how many times */
    int order;              /* global fire order, -1 if never */
} rec_t;

static int fire_seq;
static rec_t *fire_log[20000];

static void rec_fire(vt_timer_t *t)
{
    rec_t *r = (rec_t *)t;
    r->fired++;
    r->order = fire_seq;
    if (fire_seq < (int)(sizeof(fire_log) / sizeof(fire_log[0]))) {
        fire_log[fire_seq] = r;
    }
    fire_seq++;
}

static void rec_init(rec_t *r, int id)
{
    memset(r, 0, sizeof(*r));
    r->t.index = VT_TIMER_IDLE;
    r->t.fire = rec_fire;
    r->id = id;
    r->order = -1;
}

static void reset_log(void)
{
    fire_seq = 0;
    memset(fire_log, 0, sizeof(fire_log));
}

START_TEST(test_empty)
{
    vt_timer_heap_t h;
    vt_timer_heap_init(&h);
    ck_assert_ptr_null(vt_timer_peek(&h));
    ck_assert_uint_eq(vt_timer_expire(&h, APR_INT64_MAX), 0);
    ck_assert_uint_eq(h.count, 0);
    vt_timer_heap_destroy(&h);
    ck_assert_uint_eq(h.count, 0);
}
END_TEST

START_TEST(test_order)
{
    enum { N = 1000 };
    static rec_t r[N];
    vt_timer_heap_t h;
    apr_time_t maxw = 0;
    reset_log();
    vt_timer_heap_init(&h);
    srand(12345);
    for (int i = 0; i < N; i++) {
        apr_time_t when = 1000 + (apr_time_t)(rand() % 100000);
        rec_init(&r[i], i);
        ck_assert_int_eq(vt_timer_add(&h, &r[i].t, when), APR_SUCCESS);
        ck_assert_uint_ne(r[i].t.index, VT_TIMER_IDLE);
        ck_assert_int_eq(r[i].t.when, when);
        if (when > maxw) {
            maxw = when;
        }
        /* peek is always the earliest so far */
        ck_assert_int_le(vt_timer_peek(&h)->when, when);
    }
    ck_assert_uint_eq(h.count, N);
    ck_assert_uint_eq(vt_timer_expire(&h, maxw), N);
    ck_assert_uint_eq(h.count, 0);
    ck_assert_int_eq(fire_seq, N);
    for (int i = 1; i < N; i++) {
        ck_assert_int_le(fire_log[i - 1]->t.when, fire_log[i]->t.when);
    }
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(r[i].fired, 1);
        ck_assert_uint_eq(r[i].t.index, VT_TIMER_IDLE);
    }
    vt_timer_heap_destroy(&h);
}
END_TEST

START_TEST(test_ties_fifo)
{
    enum { N = 50 };
    rec_t r[N];
    vt_timer_heap_t h;
    reset_log();
    vt_timer_heap_init(&h);
    /* interleave two deadlines; within each, insertion order must hold */
    for (int i = 0; i < N; i++) {
        rec_init(&r[i], i);
        ck_assert_int_eq(vt_timer_add(&h, &r[i].t, (i % 2) ? 200 : 100),
                         APR_SUCCESS);
    }
    ck_assert_uint_eq(vt_timer_expire(&h, 200), N);
    for (int i = 0; i < N / 2; i++) {
        ck_assert_int_eq(fire_log[i]->id, 2 * i);
        ck_assert_int_eq(fire_log[N / 2 + i]->id, 2 * i + 1);
    }
    vt_timer_heap_destroy(&h);
}
END_TEST

START_TEST(test_expire_due_only)
{
    rec_t a, b, c;
    vt_timer_heap_t h;
    reset_log();
    vt_timer_heap_init(&h);
    rec_init(&a, 1);
    rec_init(&b, 2);
    rec_init(&c, 3);
    ck_assert_int_eq(vt_timer_add(&h, &c.t, 30), APR_SUCCESS);
    ck_assert_int_eq(vt_timer_add(&h, &a.t, 10), APR_SUCCESS);
    ck_assert_int_eq(vt_timer_add(&h, &b.t, 20), APR_SUCCESS);
    ck_assert_ptr_eq(vt_timer_peek(&h), &a.t);
    ck_assert_uint_eq(vt_timer_expire(&h, 9), 0);
    ck_assert_uint_eq(vt_timer_expire(&h, 20), 2);   /* due means <= now */
    ck_assert_int_eq(a.fired, 1);
    ck_assert_int_eq(b.fired, 1);
    ck_assert_int_eq(c.fired, 0);
    ck_assert_ptr_eq(vt_timer_peek(&h), &c.t);
    ck_assert_uint_eq(vt_timer_expire(&h, 20), 0);
    ck_assert_uint_eq(vt_timer_expire(&h, 31), 1);
    ck_assert_ptr_null(vt_timer_peek(&h));
    /* a fired timer can be added again */
    ck_assert_int_eq(vt_timer_add(&h, &a.t, 50), APR_SUCCESS);
    ck_assert_uint_eq(vt_timer_expire(&h, 50), 1);
    ck_assert_int_eq(a.fired, 2);
    vt_timer_heap_destroy(&h);
}
END_TEST

START_TEST(test_remove)
{
    enum { N = 64 };
    rec_t r[N];
    vt_timer_heap_t h;
    reset_log();
    vt_timer_heap_init(&h);
    for (int i = 0; i < N; i++) {
        rec_init(&r[i], i);
        ck_assert_int_eq(vt_timer_add(&h, &r[i].t, 1000 - 7 * (i % 13) + i),
                         APR_SUCCESS);
    }
    /* remove the root, the last slot, some middle ones, one twice */
    vt_timer_t *root = vt_timer_peek(&h);
    vt_timer_t *last = h.items[h.count - 1];
    vt_timer_remove(&h, root);
    ck_assert_uint_eq(root->index, VT_TIMER_IDLE);
    vt_timer_remove(&h, last);
    ck_assert_uint_eq(last->index, VT_TIMER_IDLE);
    ck_assert_uint_eq(h.count, N - 2);
    for (int i = 5; i < N; i += 9) {
        vt_timer_remove(&h, &r[i].t);
        vt_timer_remove(&h, &r[i].t); /* idle: no-op */
        ck_assert_uint_eq(r[i].t.index, VT_TIMER_IDLE);
    }
    {
        /* an idle timer never added is a no-op too */
        rec_t idle;
        rec_init(&idle, -1);
        vt_timer_remove(&h, &idle.t);
    }
    apr_size_t left = h.count;
    /* indices stay consistent */
    for (apr_size_t i = 0; i < h.count; i++) {
        ck_assert_uint_eq(h.items[i]->index, i);
    }
    ck_assert_uint_eq(vt_timer_expire(&h, 100000), left);
    for (int i = 1; i < fire_seq; i++) {
        ck_assert_int_le(fire_log[i - 1]->t.when, fire_log[i]->t.when);
    }
    ck_assert_int_eq(((rec_t *)root)->fired, 0);
    ck_assert_int_eq(((rec_t *)last)->fired, 0);
    for (int i = 5; i < N; i += 9) {
        ck_assert_int_eq(r[i].fired, 0);
    }
    vt_timer_heap_destroy(&h);
}
END_TEST

/* A fire callback that adds a later timer and removes another due one:
 * what a carrier does when a wake-up cancels another park's timer. */
static vt_timer_heap_t *cb_heap;
static rec_t cb_other, cb_later;

static void fire_meddle(vt_timer_t *t)
{
    rec_fire(t);
    vt_timer_remove(cb_heap, &cb_other.t);
    ck_assert_int_eq(vt_timer_add(cb_heap, &cb_later.t, 500), APR_SUCCESS);
}

START_TEST(test_fire_callbacks_touch_heap)
{
    vt_timer_heap_t h;
    rec_t first;
    reset_log();
    vt_timer_heap_init(&h);
    cb_heap = &h;
    rec_init(&first, 1);
    first.t.fire = fire_meddle;
    rec_init(&cb_other, 2);
    rec_init(&cb_later, 3);
    ck_assert_int_eq(vt_timer_add(&h, &first.t, 10), APR_SUCCESS);
    ck_assert_int_eq(vt_timer_add(&h, &cb_other.t, 10), APR_SUCCESS);
    ck_assert_uint_eq(vt_timer_expire(&h, 100), 1);
    ck_assert_int_eq(first.fired, 1);
    ck_assert_int_eq(cb_other.fired, 0);
    ck_assert_int_eq(cb_later.fired, 0);
    ck_assert_ptr_eq(vt_timer_peek(&h), &cb_later.t);
    ck_assert_uint_eq(vt_timer_expire(&h, 500), 1);
    ck_assert_int_eq(cb_later.fired, 1);
    vt_timer_heap_destroy(&h);
}
END_TEST

/* Random adds, removes and expiries against a linear model. */
START_TEST(test_random_model)
{
    const int n = VT_N(2000, 400);
    const int ops = VT_N(40000, 4000);
    rec_t *r = calloc((size_t)n, sizeof(*r));
    int *in = calloc((size_t)n, sizeof(*in));   /* model: in the heap? */
    vt_timer_heap_t h;
    apr_time_t now = 0;
    apr_size_t model_count = 0;
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_nonnull(in);
    srand(777);
    vt_timer_heap_init(&h);
    for (int i = 0; i < n; i++) {
        rec_init(&r[i], i);
    }
    for (int op = 0; op < ops; op++) {
        int i = rand() % n;
        int what = rand() % 10;
        if (what < 5) {
            if (!in[i]) {
                int before = r[i].fired;
                ck_assert_int_eq(vt_timer_add(&h, &r[i].t,
                                              now + 1 + rand() % 1000),
                                 APR_SUCCESS);
                in[i] = 1;
                model_count++;
                ck_assert_int_eq(r[i].fired, before);
            }
        }
        else if (what < 8) {
            vt_timer_remove(&h, &r[i].t);
            if (in[i]) {
                in[i] = 0;
                model_count--;
            }
        }
        else {
            /* expire: exactly the model's due timers fire, in order */
            apr_time_t prev = APR_INT64_MIN;
            apr_size_t due = 0, fired;
            now += rand() % 300;
            for (int k = 0; k < n; k++) {
                due += in[k] && r[k].t.when <= now;
            }
            reset_log();
            fired = vt_timer_expire(&h, now);
            ck_assert_uint_eq(fired, due);
            for (int k = 0; k < fire_seq; k++) {
                rec_t *f = fire_log[k];
                ck_assert(in[f->id]);
                ck_assert_int_le(f->t.when, now);
                ck_assert_int_ge(f->t.when, prev);
                prev = f->t.when;
                in[f->id] = 0;
                model_count--;
            }
        }
        ck_assert_uint_eq(h.count, model_count);
        if (model_count) {
            vt_timer_t *p = vt_timer_peek(&h);
            for (int k = 0; k < n; k++) {
                if (in[k]) {
                    ck_assert_int_le(p->when, r[k].t.when);
                }
            }
        }
    }
    vt_timer_heap_destroy(&h);
    free(in);
    free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_timer");
    vt_test_add(s, test_empty);
    vt_test_add(s, test_order);
    vt_test_add(s, test_ties_fifo);
    vt_test_add(s, test_expire_due_only);
    vt_test_add(s, test_remove);
    vt_test_add(s, test_fire_callbacks_touch_heap);
    vt_test_add(s, test_random_model);
    return vt_test_main(s);
}
