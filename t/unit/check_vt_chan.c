/* Unit tests for vt_chan.c: FIFO order, back-pressure (a sender parks while
 * the channel is full and resumes after a receive), close (senders get
 * APR_EPIPE, receivers drain then get APR_EOF), timeouts, plain threads on
 * either end, many producers and consumers on two carriers, cancellation.
 *
 * Slow mode (VT_SLOW=1, ASan, valgrind: see vt_test_util.h) moves fewer
 * items. */
#include "vt_test_util.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ITEM(i) ((void *)(uintptr_t)((i) + 1))
#define INDEX(p) ((long)(uintptr_t)(p) - 1)

START_TEST(test_create_capacity)
{
    vt_test_rt_t t;
    vthread_chan_t *ch = NULL;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_chan_create(&ch, 0, t.pool), APR_EINVAL);
    ck_assert_int_eq(vthread_chan_create(&ch, 1, t.pool), APR_SUCCESS);
    ck_assert_ptr_nonnull(ch);
    vt_test_rt_stop(&t);
}
END_TEST

/* FIFO within one fiber (fills to capacity, then drains), off a fiber the
 * same, and timeouts 0 on full/empty. */
typedef struct {
    vthread_chan_t *ch;
    int cap;
    int order_ok;
    apr_status_t full_rv, empty_rv;
    apr_interval_time_t full_took, empty_took;
} fifo_t;

static apr_status_t fifo_checks(void *arg)
{
    fifo_t *x = arg;
    apr_time_t t0;
    void *item = NULL;
    x->order_ok = 1;
    for (int i = 0; i < x->cap; i++) {
        if (vthread_chan_send(x->ch, ITEM(i), 0) != APR_SUCCESS) {
            x->order_ok = 0;
        }
    }
    t0 = apr_time_now();
    x->full_rv = vthread_chan_send(x->ch, ITEM(999), VT_MS(30));
    x->full_took = vt_test_elapsed(t0);
    VT_CHECK(vthread_chan_send(x->ch, ITEM(999), 0) == APR_TIMEUP);
    for (int i = 0; i < x->cap; i++) {
        item = NULL;
        if (vthread_chan_recv(x->ch, &item, 0) != APR_SUCCESS
            || item != ITEM(i)) {
            x->order_ok = 0;
        }
    }
    t0 = apr_time_now();
    x->empty_rv = vthread_chan_recv(x->ch, &item, VT_MS(30));
    x->empty_took = vt_test_elapsed(t0);
    VT_CHECK(vthread_chan_recv(x->ch, &item, 0) == APR_TIMEUP);
    /* a NULL item travels like any other */
    VT_CHECK(vthread_chan_send(x->ch, NULL, 0) == APR_SUCCESS);
    item = ITEM(5);
    VT_CHECK(vthread_chan_recv(x->ch, &item, 0) == APR_SUCCESS);
    VT_CHECK(item == NULL);
    return APR_SUCCESS;
}

static void check_fifo(const fifo_t *x)
{
    ck_assert_int_eq(x->order_ok, 1);
    ck_assert_int_eq(x->full_rv, APR_TIMEUP);
    ck_assert_int_ge(x->full_took, VT_MS(29));
    ck_assert_int_lt(x->full_took, VT_MS(30) + vt_test_soon());
    ck_assert_int_eq(x->empty_rv, APR_TIMEUP);
    ck_assert_int_ge(x->empty_took, VT_MS(29));
    ck_assert_int_lt(x->empty_took, VT_MS(30) + vt_test_soon());
}

START_TEST(test_fifo_on_fiber)
{
    vt_test_rt_t t;
    fifo_t x;
    memset(&x, 0, sizeof(x));
    x.cap = 100;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_chan_create(&x.ch, (apr_size_t)x.cap, t.pool),
                     APR_SUCCESS);
    ck_assert_int_eq(vt_test_run(&t, fifo_checks, &x), APR_SUCCESS);
    check_fifo(&x);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_fifo_off_fiber)
{
    vt_test_rt_t t;
    fifo_t x;
    memset(&x, 0, sizeof(x));
    x.cap = 7;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_chan_create(&x.ch, (apr_size_t)x.cap, t.pool),
                     APR_SUCCESS);
    fifo_checks(&x);
    check_fifo(&x);
    vt_test_rt_stop(&t);
}
END_TEST

/* Producer and consumer fibers through a small channel keep the order. */
typedef struct {
    vthread_chan_t *ch;
    long n;
    long got;
    int in_order;
    apr_status_t end_rv;
} pc_t;

static apr_status_t fn_producer(void *arg)
{
    pc_t *p = arg;
    for (long i = 0; i < p->n; i++) {
        if (!VT_CHECK(vthread_chan_send(p->ch, ITEM(i), -1) == APR_SUCCESS)) {
            return APR_EGENERAL;
        }
    }
    vthread_chan_close(p->ch);
    return APR_SUCCESS;
}

static apr_status_t fn_consumer(void *arg)
{
    pc_t *p = arg;
    void *item;
    p->in_order = 1;
    for (;;) {
        apr_status_t rv = vthread_chan_recv(p->ch, &item, -1);
        if (rv != APR_SUCCESS) {
            p->end_rv = rv;
            break;
        }
        if (INDEX(item) != p->got) {
            p->in_order = 0;
        }
        p->got++;
    }
    return APR_SUCCESS;
}

static void *thread_producer(void *arg)
{
    fn_producer(arg);
    return NULL;
}

static void *thread_consumer(void *arg)
{
    fn_consumer(arg);
    return NULL;
}

START_TEST(test_producer_consumer_fibers)
{
    vt_test_rt_t t;
    pc_t p;
    vt_fiber_t *fp, *fc;
    memset(&p, 0, sizeof(p));
    p.n = VT_N(20000, 2000);
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_chan_create(&p.ch, 4, t.pool), APR_SUCCESS);
    fc = vt_test_go(&t, fn_consumer, &p, "consumer");
    fp = vt_test_go(&t, fn_producer, &p, "producer");
    ck_assert_int_eq(vt_test_join(fp), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(fc), APR_SUCCESS);
    ck_assert_int_eq(p.got, p.n);
    ck_assert_int_eq(p.in_order, 1);
    ck_assert_int_eq(p.end_rv, APR_EOF);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_plain_thread_ends)
{
    vt_test_rt_t t;
    pc_t a, b;
    vt_fiber_t *f;
    apr_thread_t *th;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.n = b.n = VT_N(5000, 500);
    vt_test_rt_start(&t, 2);
    /* thread produces, fiber consumes */
    ck_assert_int_eq(vthread_chan_create(&a.ch, 3, t.pool), APR_SUCCESS);
    f = vt_test_go(&t, fn_consumer, &a, "consumer");
    th = vt_test_thread(t.pool, thread_producer, &a);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    vt_test_thread_join(th);
    ck_assert_int_eq(a.got, a.n);
    ck_assert_int_eq(a.in_order, 1);
    ck_assert_int_eq(a.end_rv, APR_EOF);
    /* fiber produces, thread consumes */
    ck_assert_int_eq(vthread_chan_create(&b.ch, 3, t.pool), APR_SUCCESS);
    th = vt_test_thread(t.pool, thread_consumer, &b);
    f = vt_test_go(&t, fn_producer, &b, "producer");
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    vt_test_thread_join(th);
    ck_assert_int_eq(b.got, b.n);
    ck_assert_int_eq(b.in_order, 1);
    ck_assert_int_eq(b.end_rv, APR_EOF);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Back-pressure. */

typedef struct {
    vthread_chan_t *ch;
    int n;
    _Atomic int sent;
    apr_status_t rv[8];
} bp_t;

static apr_status_t fn_send_n(void *arg)
{
    bp_t *b = arg;
    for (int i = 0; i < b->n; i++) {
        b->rv[i] = vthread_chan_send(b->ch, ITEM(i), apr_time_from_sec(20));
        if (b->rv[i] != APR_SUCCESS) {
            break;
        }
        atomic_fetch_add(&b->sent, 1);
    }
    return APR_SUCCESS;
}

START_TEST(test_back_pressure)
{
    vt_test_rt_t t;
    bp_t b;
    vt_fiber_t *f;
    void *item = NULL;
    memset(&b, 0, sizeof(b));
    b.n = 3;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_chan_create(&b.ch, 2, t.pool), APR_SUCCESS);
    f = vt_test_go(&t, fn_send_n, &b, "sender");
    /* two fit; the third send parks */
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, 1));
    apr_sleep(VT_MS(50));
    ck_assert_int_eq(atomic_load(&b.sent), 2);
    /* one receive (off a fiber) makes room: the sender resumes */
    ck_assert_int_eq(vthread_chan_recv(b.ch, &item, apr_time_from_sec(5)),
                     APR_SUCCESS);
    ck_assert_ptr_eq(item, ITEM(0));
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    ck_assert_int_eq(atomic_load(&b.sent), 3);
    ck_assert_int_eq(b.rv[2], APR_SUCCESS);
    ck_assert_int_eq(vthread_chan_recv(b.ch, &item, 0), APR_SUCCESS);
    ck_assert_ptr_eq(item, ITEM(1));
    ck_assert_int_eq(vthread_chan_recv(b.ch, &item, 0), APR_SUCCESS);
    ck_assert_ptr_eq(item, ITEM(2));
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Close. */

START_TEST(test_close_drains_then_eof)
{
    vt_test_rt_t t;
    vthread_chan_t *ch;
    void *item = NULL;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_chan_create(&ch, 4, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_chan_send(ch, ITEM(0), 0), APR_SUCCESS);
    ck_assert_int_eq(vthread_chan_send(ch, ITEM(1), 0), APR_SUCCESS);
    vthread_chan_close(ch);
    vthread_chan_close(ch);     /* twice is harmless */
    ck_assert_int_eq(vthread_chan_send(ch, ITEM(2), 0), APR_EPIPE);
    ck_assert_int_eq(vthread_chan_send(ch, ITEM(2), -1), APR_EPIPE);
    ck_assert_int_eq(vthread_chan_recv(ch, &item, -1), APR_SUCCESS);
    ck_assert_ptr_eq(item, ITEM(0));
    ck_assert_int_eq(vthread_chan_recv(ch, &item, -1), APR_SUCCESS);
    ck_assert_ptr_eq(item, ITEM(1));
    ck_assert_int_eq(vthread_chan_recv(ch, &item, -1), APR_EOF);
    ck_assert_int_eq(vthread_chan_recv(ch, &item, 0), APR_EOF);
    vt_test_rt_stop(&t);
}
END_TEST

typedef struct {
    vthread_chan_t *ch;
    apr_status_t rv;
    void *item;
} one_t;

static apr_status_t fn_recv_one(void *arg)
{
    one_t *o = arg;
    o->rv = vthread_chan_recv(o->ch, &o->item, -1);
    return APR_SUCCESS;
}

static apr_status_t fn_send_one(void *arg)
{
    one_t *o = arg;
    o->rv = vthread_chan_send(o->ch, o->item, -1);
    return APR_SUCCESS;
}

START_TEST(test_close_wakes_waiters)
{
    vt_test_rt_t t;
    vthread_chan_t *empty, *full;
    one_t r[3], s[3];
    vt_fiber_t *fr[3], *fs[3];
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_chan_create(&empty, 1, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_chan_create(&full, 1, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_chan_send(full, ITEM(0), 0), APR_SUCCESS);
    for (int i = 0; i < 3; i++) {
        r[i].ch = empty;
        r[i].rv = -1;
        r[i].item = ITEM(77);
        fr[i] = vt_test_go(&t, fn_recv_one, &r[i], "receiver");
        s[i].ch = full;
        s[i].rv = -1;
        s[i].item = ITEM(10 + i);
        fs[i] = vt_test_go(&t, fn_send_one, &s[i], "sender");
    }
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, 6));
    vthread_chan_close(empty);
    vthread_chan_close(full);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(vt_test_join(fr[i]), APR_SUCCESS);
        ck_assert_int_eq(vt_test_join(fs[i]), APR_SUCCESS);
        ck_assert_int_eq(r[i].rv, APR_EOF);
        ck_assert_int_eq(s[i].rv, APR_EPIPE);
    }
    /* the item that was in before the close can still be taken */
    {
        void *item = NULL;
        ck_assert_int_eq(vthread_chan_recv(full, &item, 0), APR_SUCCESS);
        ck_assert_ptr_eq(item, ITEM(0));
        ck_assert_int_eq(vthread_chan_recv(full, &item, 0), APR_EOF);
    }
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Several producers and consumers on two carriers: every item arrives
 * exactly once, and each producer's items arrive in its order. */

enum { MP_PRODUCERS = 4, MP_CONSUMERS = 4 };

typedef struct {
    vthread_chan_t *ch;
    long per_producer;
    _Atomic long *seen;         /* count per item */
    _Atomic int producers_left;
} mp_t;

typedef struct {
    mp_t *m;
    int id;
    long last[MP_PRODUCERS];    /* consumer: last seq per producer */
    int in_order;
    long got;
} mp_arg_t;

static apr_status_t fn_mp_producer(void *arg)
{
    mp_arg_t *a = arg;
    for (long i = 0; i < a->m->per_producer; i++) {
        long v = a->id * a->m->per_producer + i;
        if (!VT_CHECK(vthread_chan_send(a->m->ch, ITEM(v), -1)
                      == APR_SUCCESS)) {
            break;
        }
        if (i % 64 == 0) {
            vthread_yield();
        }
    }
    if (atomic_fetch_sub(&a->m->producers_left, 1) == 1) {
        vthread_chan_close(a->m->ch);
    }
    return APR_SUCCESS;
}

static apr_status_t fn_mp_consumer(void *arg)
{
    mp_arg_t *a = arg;
    void *item;
    a->in_order = 1;
    for (int p = 0; p < MP_PRODUCERS; p++) {
        a->last[p] = -1;
    }
    while (vthread_chan_recv(a->m->ch, &item, -1) == APR_SUCCESS) {
        long v = INDEX(item);
        int p = (int)(v / a->m->per_producer);
        long seq = v % a->m->per_producer;
        if (p < 0 || p >= MP_PRODUCERS || seq <= a->last[p]) {
            a->in_order = 0;
        }
        else {
            a->last[p] = seq;
        }
        atomic_fetch_add(&a->m->seen[v], 1);
        a->got++;
    }
    return APR_SUCCESS;
}

START_TEST(test_many_producers_consumers)
{
    vt_test_rt_t t;
    mp_t m;
    mp_arg_t pa[MP_PRODUCERS], ca[MP_CONSUMERS];
    vt_fiber_t *fp[MP_PRODUCERS], *fc[MP_CONSUMERS];
    long total, got = 0;
    memset(&m, 0, sizeof(m));
    memset(pa, 0, sizeof(pa));
    memset(ca, 0, sizeof(ca));
    m.per_producer = VT_N(5000, 500);
    total = m.per_producer * MP_PRODUCERS;
    m.seen = calloc((size_t)total, sizeof(*m.seen));
    ck_assert_ptr_nonnull(m.seen);
    atomic_store(&m.producers_left, MP_PRODUCERS);
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_chan_create(&m.ch, 8, t.pool), APR_SUCCESS);
    for (int i = 0; i < MP_CONSUMERS; i++) {
        ca[i].m = &m;
        ca[i].id = i;
        fc[i] = vt_test_go(&t, fn_mp_consumer, &ca[i], "mp-consumer");
    }
    for (int i = 0; i < MP_PRODUCERS; i++) {
        pa[i].m = &m;
        pa[i].id = i;
        fp[i] = vt_test_go(&t, fn_mp_producer, &pa[i], "mp-producer");
    }
    for (int i = 0; i < MP_PRODUCERS; i++) {
        ck_assert_int_eq(vt_test_join(fp[i]), APR_SUCCESS);
    }
    for (int i = 0; i < MP_CONSUMERS; i++) {
        ck_assert_int_eq(vt_test_join(fc[i]), APR_SUCCESS);
        ck_assert_int_eq(ca[i].in_order, 1);
        got += ca[i].got;
    }
    ck_assert_int_eq(got, total);
    for (long v = 0; v < total; v++) {
        ck_assert_int_eq(atomic_load(&m.seen[v]), 1);
    }
    vt_test_rt_stop(&t);
    free((void *)m.seen);
}
END_TEST

/* ------------------------------------------------------------------ */

START_TEST(test_cancel_parked)
{
    vt_test_rt_t t;
    vthread_chan_t *empty, *full;
    one_t r, s;
    vt_fiber_t *fr, *fs;
    void *item = NULL;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_chan_create(&empty, 1, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_chan_create(&full, 1, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_chan_send(full, ITEM(0), 0), APR_SUCCESS);
    r.ch = empty;
    r.rv = -1;
    s.ch = full;
    s.rv = -1;
    s.item = ITEM(1);
    fr = vt_test_go(&t, fn_recv_one, &r, "receiver");
    fs = vt_test_go(&t, fn_send_one, &s, "sender");
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, 2));
    vt_spawn_cancel(fr);
    vt_spawn_cancel(fs);
    ck_assert_int_eq(vt_test_join(fr), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(fs), APR_SUCCESS);
    ck_assert_int_eq(r.rv, APR_ECONNABORTED);
    ck_assert_int_eq(s.rv, APR_ECONNABORTED);
    /* the cancelled send added nothing; the cancelled receive took
     * nothing and is no longer waiting */
    ck_assert_int_eq(vthread_chan_recv(full, &item, 0), APR_SUCCESS);
    ck_assert_ptr_eq(item, ITEM(0));
    ck_assert_int_eq(vthread_chan_recv(full, &item, 0), APR_TIMEUP);
    ck_assert_int_eq(vthread_chan_send(empty, ITEM(5), 0), APR_SUCCESS);
    ck_assert_int_eq(vthread_chan_recv(empty, &item, 0), APR_SUCCESS);
    ck_assert_ptr_eq(item, ITEM(5));
    vt_test_rt_stop(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_chan");
    vt_test_add(s, test_create_capacity);
    vt_test_add(s, test_fifo_on_fiber);
    vt_test_add(s, test_fifo_off_fiber);
    vt_test_add(s, test_producer_consumer_fibers);
    vt_test_add(s, test_plain_thread_ends);
    vt_test_add(s, test_back_pressure);
    vt_test_add(s, test_close_drains_then_eof);
    vt_test_add(s, test_close_wakes_waiters);
    vt_test_add(s, test_many_producers_consumers);
    vt_test_add(s, test_cancel_parked);
    return vt_test_main(s);
}
