/* The runtime's monotonic clock and deadlines: see vt_clock.h. */
#include "vt_clock.h"

#include <time.h>

apr_time_t vt_clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_time_t)ts.tv_sec * APR_USEC_PER_SEC + ts.tv_nsec / 1000;
}

void vt_clock_deadline_start(vt_clock_deadline_t *d,
                             apr_interval_time_t timeout)
{
    d->forever = timeout < 0;
    d->at = d->forever ? 0 : vt_clock_now() + timeout;
}

apr_interval_time_t vt_clock_deadline_left(const vt_clock_deadline_t *d)
{
    if (d->forever) {
        return -1;
    }
    apr_time_t now = vt_clock_now();
    return d->at > now ? d->at - now : 0;
}
