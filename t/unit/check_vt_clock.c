/* Unit tests for vt_clock.c: the monotonic clock does not go back, and a
 * deadline is forever when negative, passed at 0, and counts down to 0,
 * never below (a negative "left" would read as forever). */
#include "vt_test_util.h"

/* ------------------------------------------------------------------ */
/* Deadlines */

START_TEST(test_deadline)
{
    vt_test_rt_t t;
    vt_clock_deadline_t d;
    apr_time_t a, b;
    vt_test_rt_start(&t, 1);

    /* the clock does not go back */
    a = vt_clock_now();
    b = vt_clock_now();
    ck_assert_int_ge(b, a);

    /* negative: forever, and stays so */
    vt_clock_deadline_start(&d, -1);
    ck_assert_int_eq(vt_clock_deadline_left(&d), -1);
    apr_sleep(VT_MS(5));
    ck_assert_int_eq(vt_clock_deadline_left(&d), -1);
    vt_clock_deadline_start(&d, -apr_time_from_sec(5));
    ck_assert_int_eq(vt_clock_deadline_left(&d), -1);

    /* zero: already passed */
    vt_clock_deadline_start(&d, 0);
    ck_assert_int_eq(vt_clock_deadline_left(&d), 0);

    /* counts down, never above the start, and ends at 0 (not negative,
     * which would read as forever) */
    vt_clock_deadline_start(&d, apr_time_from_sec(3600));
    ck_assert_int_le(vt_clock_deadline_left(&d), apr_time_from_sec(3600));
    ck_assert_int_gt(vt_clock_deadline_left(&d),
                     apr_time_from_sec(3600) - vt_test_soon());

    vt_clock_deadline_start(&d, VT_MS(20));
    ck_assert_int_le(vt_clock_deadline_left(&d), VT_MS(20));
    apr_sleep(VT_MS(30));
    for (int i = 0; i < 1000 && vt_clock_now() <= d.at; i++) {
        apr_sleep(VT_MS(1));
    }
    ck_assert_int_eq(vt_clock_deadline_left(&d), 0);
    vt_test_rt_stop(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_clock");
    vt_test_add(s, test_deadline);
    return vt_test_main(s);
}
