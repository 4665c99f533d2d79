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

/* Longer than any wait a server makes (about 31 years): past it the
 * conversion to microseconds would overflow. */
#define HOOK_SLEEP_MAX_SEC 1000000000L

static apr_interval_time_t hook_timespec_usec(const struct timespec *t)
{
    time_t sec = t->tv_sec > HOOK_SLEEP_MAX_SEC ? HOOK_SLEEP_MAX_SEC
                                                : t->tv_sec;
    return (apr_interval_time_t)sec * APR_USEC_PER_SEC
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
    if (flags & TIMER_ABSTIME) {
        /* What is left, before any conversion (the clamp is on that). */
        struct timespec left;
        clock_gettime(clock, &now);
        left.tv_sec = req->tv_sec - now.tv_sec;
        left.tv_nsec = req->tv_nsec - now.tv_nsec;
        if (left.tv_nsec < 0) {
            left.tv_nsec += 1000000000L;
            left.tv_sec--;
        }
        usec = left.tv_sec < 0 ? 0 : hook_timespec_usec(&left);
    }
    else {
        usec = hook_timespec_usec(req);
    }
    hook_sleep_park(f, usec);
    return 0;
}
