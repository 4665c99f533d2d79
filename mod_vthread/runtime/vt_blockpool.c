/* The blocking-call pool: see vt_blockpool.h. */
#include "vt_blockpool.h"

#include "vt_thread_name.h"
#include "vt_wait.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

typedef struct blockpool_job_t {
    void (*fn)(void *);
    void *arg;
    vt_waiter_t w;
    struct blockpool_job_t *next;
} blockpool_job_t;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static blockpool_job_t *pool_head, *pool_tail;
static apr_uint32_t pool_max_threads = VT_BLOCKPOOL_DEFAULT_THREADS;
static apr_uint32_t pool_max_queue = VT_BLOCKPOOL_DEFAULT_QUEUE;
static apr_uint32_t pool_idle;          /* threads waiting for a job */
static _Atomic apr_uint32_t pool_threads, pool_busy, pool_queued;
static _Atomic apr_uint64_t pool_done, pool_refused;

void vt_blockpool_configure(apr_uint32_t threads, apr_uint32_t queue)
{
    pthread_mutex_lock(&pool_lock);
    pool_max_threads = threads ? threads : VT_BLOCKPOOL_DEFAULT_THREADS;
    pool_max_queue = queue ? queue : VT_BLOCKPOOL_DEFAULT_QUEUE;
    pthread_mutex_unlock(&pool_lock);
}

static void *blockpool_main(void *unused)
{
    (void)unused;
    vt_thread_name("blocking", -1);
    pthread_mutex_lock(&pool_lock);
    for (;;) {
        blockpool_job_t *job;
        while (!pool_head) {
            pool_idle++;
            pthread_cond_wait(&pool_cond, &pool_lock);
            pool_idle--;
        }
        job = pool_head;
        pool_head = job->next;
        if (!pool_head) {
            pool_tail = NULL;
        }
        atomic_fetch_sub(&pool_queued, 1);
        atomic_fetch_add(&pool_busy, 1);
        pthread_mutex_unlock(&pool_lock);

        job->fn(job->arg);
        atomic_fetch_sub(&pool_busy, 1);
        atomic_fetch_add(&pool_done, 1);
        /* The job lives on the parked fiber's stack: it may be gone as
         * soon as the fiber runs, so touch it no more after this. */
        if (vt_waitq_claim(&job->w, APR_SUCCESS)) {
            vt_wait_resume(&job->w);
        }
        pthread_mutex_lock(&pool_lock);
    }
    return NULL;
}

/* Start one more thread (pool_lock held). @return 0 or an errno */
static int blockpool_grow(void)
{
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    int rv;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    /* Signals are for httpd's own threads, not this one. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rv = pthread_create(&t, &attr, blockpool_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rv == 0) {
        atomic_fetch_add(&pool_threads, 1);
    }
    return rv;
}

apr_status_t vt_blockpool_run(void (*fn)(void *), void *arg)
{
    blockpool_job_t job = { fn, arg, { 0 }, NULL };

    vt_wait_init(&job.w);
    pthread_mutex_lock(&pool_lock);
    if (atomic_load(&pool_queued) >= pool_max_queue
        || (pool_idle == 0 && atomic_load(&pool_threads) < pool_max_threads
            && blockpool_grow() != 0 && atomic_load(&pool_threads) == 0)) {
        pthread_mutex_unlock(&pool_lock);
        atomic_fetch_add(&pool_refused, 1);
        return APR_EAGAIN;
    }
    if (pool_tail) {
        pool_tail->next = &job;
    }
    else {
        pool_head = &job;
    }
    pool_tail = &job;
    atomic_fetch_add(&pool_queued, 1);
    pthread_cond_signal(&pool_cond);
    pthread_mutex_unlock(&pool_lock);
    /* Uncancellable: the job is on this stack until a thread is done. */
    vt_wait_park(&job.w, VT_PARK_IO, -1, VT_WAIT_UNCANCELLABLE);
    return APR_SUCCESS;
}

void vt_blockpool_stats(vt_blockpool_stats_t *out)
{
    out->threads = atomic_load(&pool_threads);
    out->busy = atomic_load(&pool_busy);
    out->queued = atomic_load(&pool_queued);
    out->done = atomic_load(&pool_done);
    out->refused = atomic_load(&pool_refused);
}
