/* vthread_sleep: a park that only its timer or a cancel ends.
 * (vthread_yield is a scheduler operation: vt_carrier.c.) */
#include "vt_carrier.h"
#include "vt_clock.h"
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
    vt_wait_init(&w);
    rv = vt_wait_park(&w, VT_PARK_TIMER, t, 0);
    return rv == APR_TIMEUP ? APR_SUCCESS : rv;
}
