/* Unit tests for vt_waitq.c, the part of the wake-up protocol that is
 * plain data: exactly one party wins vt_waitq_claim() (raced by threads),
 * and the FIFO wait queue: claim_first wakes in push order and skips
 * waiters whose timeout already won, claim_all counts, unlink is safe
 * from any position and twice. Parking is check_vt_wait.c's.
 *
 * Slow mode (VT_SLOW=1, ASan, valgrind: see vt_test_util.h) uses fewer
 * rounds. */
#include "vt_test_util.h"
#include "vt_wait.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>


/* A result only a waker sets: neither the initial APR_SUCCESS nor one the
 * waiting side sets itself (APR_TIMEUP, APR_ECONNABORTED). */
#define WAKE_RV APR_EOF

/* ------------------------------------------------------------------ */
/* Claim */

START_TEST(test_claim_once)
{
    vt_test_rt_t t;
    vt_waiter_t w;
    vt_test_rt_start(&t, 1);
    vt_wait_init(&w);
    ck_assert_int_eq(atomic_load(&w.claimed), 0);
    ck_assert_int_eq(vt_waitq_claim(&w, WAKE_RV), 1);
    ck_assert_int_eq(w.result, WAKE_RV);
    /* a later party loses and does not overwrite the winner's result */
    ck_assert_int_eq(vt_waitq_claim(&w, APR_TIMEUP), 0);
    ck_assert_int_eq(vt_waitq_claim(&w, WAKE_RV), 0);
    ck_assert_int_eq(w.result, WAKE_RV);
    /* init makes it claimable again, for the next wait */
    vt_wait_init(&w);
    ck_assert_int_eq(vt_waitq_claim(&w, APR_TIMEUP), 1);
    ck_assert_int_eq(w.result, APR_TIMEUP);
    vt_test_rt_stop(&t);
}
END_TEST

enum { CLAIMERS = 4 };

typedef struct {
    pthread_barrier_t start, end;
    vt_waiter_t w;
    int rounds;
    int won[CLAIMERS];
} claim_race_t;

typedef struct {
    claim_race_t *r;
    int id;
} claimer_t;

#define CLAIMER_RV(id) (1000 + (id))

static void *claimer(void *arg)
{
    claimer_t *c = arg;
    claim_race_t *r = c->r;
    for (int i = 0; i < r->rounds; i++) {
        pthread_barrier_wait(&r->start);
        r->won[c->id] = vt_waitq_claim(&r->w, CLAIMER_RV(c->id));
        pthread_barrier_wait(&r->end);
    }
    return NULL;
}

/* CLAIMERS threads released together by a barrier claim one waiter, each
 * with its own result, round after round: exactly one wins each round and
 * the waiter holds that one's result. */
START_TEST(test_claim_race)
{
    vt_test_rt_t t;
    claim_race_t r;
    claimer_t c[CLAIMERS];
    apr_thread_t *th[CLAIMERS];
    int bad_rounds = 0, first_bad = -1;
    vt_test_rt_start(&t, 1);
    memset(&r, 0, sizeof(r));
    r.rounds = VT_N(3000, 300);
    ck_assert_int_eq(pthread_barrier_init(&r.start, NULL, CLAIMERS + 1), 0);
    ck_assert_int_eq(pthread_barrier_init(&r.end, NULL, CLAIMERS + 1), 0);
    for (int i = 0; i < CLAIMERS; i++) {
        c[i].r = &r;
        c[i].id = i;
        th[i] = vt_test_thread(t.pool, claimer, &c[i]);
    }
    for (int i = 0; i < r.rounds; i++) {
        int winners = 0, winner = -1;
        vt_wait_init(&r.w);
        pthread_barrier_wait(&r.start);
        pthread_barrier_wait(&r.end);
        for (int k = 0; k < CLAIMERS; k++) {
            if (r.won[k]) {
                winners++;
                winner = k;
            }
        }
        /* no ck_assert here: the claimers would be left at the barrier */
        if (winners != 1 || r.w.result != CLAIMER_RV(winner)) {
            if (bad_rounds++ == 0) {
                first_bad = i;
            }
        }
    }
    for (int i = 0; i < CLAIMERS; i++) {
        vt_test_thread_join(th[i]);
    }
    pthread_barrier_destroy(&r.start);
    pthread_barrier_destroy(&r.end);
    ck_assert_msg(bad_rounds == 0, "%d of %d rounds without exactly one "
                  "winner holding its result (first: round %d)",
                  bad_rounds, r.rounds, first_bad);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Wait queue: FIFO, skipping claimed waiters, claim_all, unlink. These
 * waiters are claimed but never resumed (nobody waits on them). */

enum { QN = 5 };

static void init_all(vt_waiter_t *w, int n)
{
    for (int i = 0; i < n; i++) {
        vt_wait_init(&w[i]);
    }
}

/* An empty @a q, then @a n fresh waiters pushed in order. */
static void queue_all(vt_waitq_t *q, vt_waiter_t *w, int n)
{
    memset(q, 0, sizeof(*q));
    init_all(w, n);
    for (int i = 0; i < n; i++) {
        vt_waitq_push(q, &w[i]);
    }
}

/* Is @a w on the list linked through resume_next (at most @a max long)? */
static int on_resume_list(vt_waiter_t *list, vt_waiter_t *w, int max)
{
    for (int i = 0; list && i < max; i++, list = list->resume_next) {
        if (list == w) {
            return 1;
        }
    }
    return 0;
}

static int resume_list_len(vt_waiter_t *list, int max)
{
    int n = 0;
    for (; list && n <= max; list = list->resume_next) {
        n++;
    }
    return n;
}

START_TEST(test_waitq_fifo)
{
    vt_test_rt_t t;
    vt_waitq_t q;
    vt_waiter_t w[QN];
    vt_waiter_t *list = NULL;
    vt_test_rt_start(&t, 1);
    memset(&q, 0, sizeof(q));
    init_all(w, QN);
    for (int i = 0; i < QN; i++) {
        vt_waitq_push(&q, &w[i]);
        ck_assert_uint_eq(q.count, (apr_size_t)i + 1);
        ck_assert_int_eq(w[i].linked, 1);
    }
    ck_assert_ptr_eq(q.head, &w[0]);
    ck_assert_ptr_eq(q.tail, &w[QN - 1]);
    /* woken in push order, each unlinked, claimed with the given result
     * and put on the resume list */
    for (int i = 0; i < QN; i++) {
        vt_waiter_t *got = vt_waitq_claim_first(&q, WAKE_RV, &list);
        ck_assert_ptr_eq(got, &w[i]);
        ck_assert_int_eq(got->linked, 0);
        ck_assert_int_eq(atomic_load(&got->claimed), 1);
        ck_assert_int_eq(got->result, WAKE_RV);
        ck_assert_uint_eq(q.count, (apr_size_t)(QN - i - 1));
        ck_assert(on_resume_list(list, got, QN));
        ck_assert_int_eq(resume_list_len(list, QN), i + 1);
    }
    ck_assert_ptr_null(q.head);
    ck_assert_ptr_null(q.tail);
    /* an empty queue claims nobody and leaves the list alone */
    {
        vt_waiter_t *before = list;
        ck_assert_ptr_null(vt_waitq_claim_first(&q, WAKE_RV, &list));
        ck_assert_ptr_eq(list, before);
        ck_assert_uint_eq(vt_waitq_claim_all(&q, WAKE_RV, &list), 0);
        ck_assert_ptr_eq(list, before);
    }
    vt_test_rt_stop(&t);
}
END_TEST

/* Waiters whose own timeout or cancel won the claim are still queued until
 * they retake the lock: claim_first must skip them (unlinking them, so the
 * count stays right) and wake the next one, never hand them a wake. */
START_TEST(test_waitq_claim_first_skips_claimed)
{
    vt_test_rt_t t;
    vt_waitq_t q;
    vt_waiter_t w[QN];
    vt_waiter_t *list = NULL;
    vt_test_rt_start(&t, 1);
    queue_all(&q, w, QN);
    /* w0 and w1 at the front, and w3 in the middle, timed out */
    ck_assert_int_eq(vt_waitq_claim(&w[0], APR_TIMEUP), 1);
    ck_assert_int_eq(vt_waitq_claim(&w[1], APR_TIMEUP), 1);
    ck_assert_int_eq(vt_waitq_claim(&w[3], APR_ECONNABORTED), 1);

    ck_assert_ptr_eq(vt_waitq_claim_first(&q, WAKE_RV, &list), &w[2]);
    ck_assert_int_eq(w[0].linked, 0);
    ck_assert_int_eq(w[1].linked, 0);
    ck_assert_uint_eq(q.count, 2);
    ck_assert_ptr_eq(q.head, &w[3]);

    ck_assert_ptr_eq(vt_waitq_claim_first(&q, WAKE_RV, &list), &w[4]);
    ck_assert_int_eq(w[3].linked, 0);
    ck_assert_uint_eq(q.count, 0);
    ck_assert_ptr_null(q.head);
    ck_assert_ptr_null(q.tail);
    ck_assert_ptr_null(vt_waitq_claim_first(&q, WAKE_RV, &list));

    /* the skipped ones keep their own result and are not on the list */
    ck_assert_int_eq(w[0].result, APR_TIMEUP);
    ck_assert_int_eq(w[1].result, APR_TIMEUP);
    ck_assert_int_eq(w[3].result, APR_ECONNABORTED);
    ck_assert_int_eq(w[2].result, WAKE_RV);
    ck_assert_int_eq(w[4].result, WAKE_RV);
    ck_assert_int_eq(resume_list_len(list, QN), 2);
    ck_assert(on_resume_list(list, &w[2], QN));
    ck_assert(on_resume_list(list, &w[4], QN));

    /* a queue of claimed waiters only is empty for a waker */
    init_all(w, 2);
    vt_waitq_push(&q, &w[0]);
    vt_waitq_push(&q, &w[1]);
    ck_assert_int_eq(vt_waitq_claim(&w[0], APR_TIMEUP), 1);
    ck_assert_int_eq(vt_waitq_claim(&w[1], APR_TIMEUP), 1);
    list = NULL;
    ck_assert_ptr_null(vt_waitq_claim_first(&q, WAKE_RV, &list));
    ck_assert_ptr_null(list);
    ck_assert_uint_eq(q.count, 0);
    ck_assert_ptr_null(q.head);
    ck_assert_ptr_null(q.tail);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_waitq_claim_all)
{
    vt_test_rt_t t;
    vt_waitq_t q;
    vt_waiter_t w[QN];
    vt_waiter_t *list = NULL;
    vt_test_rt_start(&t, 1);
    queue_all(&q, w, QN);
    ck_assert_int_eq(vt_waitq_claim(&w[1], APR_TIMEUP), 1);
    ck_assert_int_eq(vt_waitq_claim(&w[4], APR_TIMEUP), 1);
    /* counts only the ones it claimed, and empties the queue */
    ck_assert_uint_eq(vt_waitq_claim_all(&q, WAKE_RV, &list), QN - 2);
    ck_assert_uint_eq(q.count, 0);
    ck_assert_ptr_null(q.head);
    ck_assert_ptr_null(q.tail);
    ck_assert_int_eq(resume_list_len(list, QN), QN - 2);
    for (int i = 0; i < QN; i++) {
        int skipped = i == 1 || i == 4;
        ck_assert_int_eq(w[i].linked, 0);
        ck_assert_int_eq(w[i].result, skipped ? APR_TIMEUP : WAKE_RV);
        ck_assert_int_eq(on_resume_list(list, &w[i], QN), !skipped);
    }
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_waitq_unlink)
{
    vt_test_rt_t t;
    vt_waitq_t q;
    vt_waiter_t w[QN], never;
    vt_waiter_t *list = NULL;
    vt_test_rt_start(&t, 1);
    memset(&q, 0, sizeof(q));
    init_all(w, QN);
    vt_wait_init(&never);
    for (int i = 0; i < QN; i++) {
        vt_waitq_push(&q, &w[i]);
    }
    /* middle, head, tail */
    vt_waitq_unlink(&q, &w[2]);
    vt_waitq_unlink(&q, &w[0]);
    vt_waitq_unlink(&q, &w[4]);
    ck_assert_uint_eq(q.count, 2);
    ck_assert_ptr_eq(q.head, &w[1]);
    ck_assert_ptr_eq(q.tail, &w[3]);
    ck_assert_ptr_eq(w[1].next, &w[3]);
    ck_assert_ptr_eq(w[3].prev, &w[1]);
    /* unlinking again, or a waiter never queued, changes nothing (a waiter
     * unlinks itself after its wait even if a waker already did) */
    vt_waitq_unlink(&q, &w[2]);
    vt_waitq_unlink(&q, &w[0]);
    vt_waitq_unlink(&q, &never);
    ck_assert_uint_eq(q.count, 2);
    ck_assert_ptr_eq(q.head, &w[1]);
    ck_assert_ptr_eq(q.tail, &w[3]);
    /* a waiter unlinked by claim_first, then unlinked by itself */
    ck_assert_ptr_eq(vt_waitq_claim_first(&q, WAKE_RV, &list), &w[1]);
    vt_waitq_unlink(&q, &w[1]);
    ck_assert_uint_eq(q.count, 1);
    ck_assert_ptr_eq(q.head, &w[3]);
    ck_assert_ptr_eq(q.tail, &w[3]);
    /* an unlinked waiter can be queued again, at the back */
    vt_waitq_push(&q, &w[0]);
    ck_assert_uint_eq(q.count, 2);
    ck_assert_ptr_eq(vt_waitq_claim_first(&q, WAKE_RV, &list), &w[3]);
    ck_assert_ptr_eq(vt_waitq_claim_first(&q, WAKE_RV, &list), &w[0]);
    ck_assert_uint_eq(q.count, 0);
    ck_assert_ptr_null(q.head);
    ck_assert_ptr_null(q.tail);
    vt_test_rt_stop(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_waitq");
    vt_test_add(s, test_claim_once);
    vt_test_add(s, test_claim_race);
    vt_test_add(s, test_waitq_fifo);
    vt_test_add(s, test_waitq_claim_first_skips_claimed);
    vt_test_add(s, test_waitq_claim_all);
    vt_test_add(s, test_waitq_unlink);
    return vt_test_main(s);
}
