/* Transparent hooks for the sleeps: nanosleep, usleep, clock_nanosleep.
 * On a fiber each parks on the carrier's timer heap for the time asked;
 * nothing but the timer ends the park, as only a signal (which a fiber
 * never receives on its own) ends the real sleep early. */
#include "vt_hook.h"
#include "vt_hook_calls.h"

#include "vt_wait.h"

/* Park @a f for @a usec microseconds (rounded up from nanoseconds). */
static void hook_sleep_park(vt_fiber_t *f, apr_interval_time_t usec)
{
    int saved = errno;
    vt_waiter_t w;

    vt_hook_count(f, VT_HOOK_SLEEP, usec > 0);
    if (usec > 0) {
        vt_wait_init(&w);
        vt_wait_park(&w, VT_PARK_TIMER, usec, VT_WAIT_UNCANCELLABLE);
    }
    errno = saved;
}

static int hook_timespec_valid(const struct timespec *t)
{
    return t->tv_sec >= 0 && t->tv_nsec >= 0 && t->tv_nsec < 1000000000L;
}

static apr_interval_time_t hook_timespec_usec(const struct timespec *t)
{
    return (apr_interval_time_t)t->tv_sec * APR_USEC_PER_SEC
           + (t->tv_nsec + 999) / 1000;
}

int vt_hook_nanosleep(const struct timespec *req, struct timespec *rem)
{
    vt_fiber_t *f = vt_hook_fiber();

    if (!f || !req || !hook_timespec_valid(req)) {
        return vt_hook_real.nanosleep(req, rem);  /* EFAULT, EINVAL */
    }
    hook_sleep_park(f, hook_timespec_usec(req));
    return 0;
}

int vt_hook_usleep(useconds_t usec)
{
    vt_fiber_t *f = vt_hook_fiber();

    if (!f) {
        return vt_hook_real.usleep(usec);
    }
    hook_sleep_park(f, usec);
    return 0;
}

int vt_hook_clock_nanosleep(clockid_t clock, int flags,
                            const struct timespec *req,
                            struct timespec *rem)
{
    vt_fiber_t *f = vt_hook_fiber();
    struct timespec now;
    apr_interval_time_t usec;

    if (!f || !req || !hook_timespec_valid(req)
        || (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC
            && clock != CLOCK_BOOTTIME)) {
        return vt_hook_real.clock_nanosleep(clock, flags, req, rem);
    }
    usec = hook_timespec_usec(req);
    if (flags & TIMER_ABSTIME) {
        clock_gettime(clock, &now);
        usec -= (apr_interval_time_t)now.tv_sec * APR_USEC_PER_SEC
                + now.tv_nsec / 1000;
    }
    hook_sleep_park(f, usec);
    return 0;
}
