/* vthread_sleep and vthread_yield: a timer park and a trip round the run
 * queue. */
#include "vt_carrier.h"
#include "vt_fiber.h"
#include "vt_wait.h"

#include <stdatomic.h>

apr_status_t vthread_sleep(apr_interval_time_t t)
{
    vt_waiter_t w;
    apr_status_t rv;
    if (!vt_fiber_current()) {
        if (t > 0) {
            apr_sleep(t);
        }
        return APR_SUCCESS;
    }
    if (t <= 0) {
        return vthread_cancelled() ? APR_ECONNABORTED : APR_SUCCESS;
    }
    /* Nobody else can end this wait but the timer or a cancel. */
    vt_waiter_init(&w);
    rv = vt_waiter_wait(&w, VT_PARK_TIMER, t, 0);
    return rv == APR_TIMEUP ? APR_SUCCESS : rv;
}

apr_status_t vthread_yield(void)
{
    vt_fiber_t *f = vt_fiber_current();
    if (!f) {
        apr_thread_yield();
        return APR_SUCCESS;
    }
    if (atomic_load(&f->cancelled)) {
        return APR_ECONNABORTED;
    }
    vt_carrier_yield(f);
    return APR_SUCCESS;
}
