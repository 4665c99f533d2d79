/* Unit tests for vt_config.c: the defaults (and that they pass the
 * check), and vt_config_check refusing carriers or stack sizes out of
 * bounds with a message that names the field, while the bounds themselves
 * are accepted. */
#include "vt_test_util.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Configuration. */

START_TEST(test_config_defaults)
{
    vt_config_t cfg;
    const char *why = "untouched";
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    memset(&cfg, 0x5a, sizeof(cfg));
    vt_config_default(&cfg);
    /* "online CPUs": either spelled 0 (one per CPU) or the count itself */
    ck_assert_msg(cfg.carriers == 0 || cfg.carriers == (int)cpus,
                  "default carriers %d", cfg.carriers);
    ck_assert_uint_eq(cfg.stack_size, VT_STACK_DEFAULT_SIZE);
    ck_assert_uint_eq(cfg.max_fibers, 0);
    ck_assert_int_eq(cfg.pinned_warn, VT_MS(100));
    ck_assert_ptr_null(cfg.log);
    ck_assert_ptr_null(cfg.log_baton);
    ck_assert_ptr_null(cfg.thread_create);
    ck_assert_int_eq(vt_config_check(&cfg, &why), APR_SUCCESS);
}
END_TEST

static void expect_rejected(const vt_config_t *cfg, const char *field,
                            const char *what)
{
    const char *why = NULL;
    apr_status_t rv = vt_config_check(cfg, &why);
    ck_assert_msg(rv == APR_EINVAL, "%s: check returned %d", what, rv);
    ck_assert_msg(why != NULL && *why, "%s: no message", what);
    ck_assert_msg(strcasestr(why, field) != NULL,
                  "%s: message \"%s\" does not name %s", what, why, field);
}

static void expect_accepted(const vt_config_t *cfg, const char *what)
{
    const char *why = NULL;
    apr_status_t rv = vt_config_check(cfg, &why);
    ck_assert_msg(rv == APR_SUCCESS, "%s: check returned %d (%s)", what, rv,
                  why ? why : "");
}

START_TEST(test_config_check)
{
    vt_config_t cfg;
    static const int bad_carriers[] = { -1, -1000, INT_MIN,
                                        VT_MAX_CARRIERS + 1, 100000,
                                        INT_MAX };
    static const apr_size_t bad_stacks[] = { 0, 1, VT_STACK_MIN_SIZE - 1,
                                             VT_STACK_MAX_SIZE + 1,
                                             (apr_size_t)-1 };
    for (size_t i = 0; i < sizeof(bad_carriers) / sizeof(*bad_carriers);
         i++) {
        char what[64];
        vt_config_default(&cfg);
        cfg.carriers = bad_carriers[i];
        snprintf(what, sizeof(what), "carriers %d", bad_carriers[i]);
        expect_rejected(&cfg, "carrier", what);
    }
    for (size_t i = 0; i < sizeof(bad_stacks) / sizeof(*bad_stacks); i++) {
        char what[64];
        vt_config_default(&cfg);
        cfg.stack_size = bad_stacks[i];
        snprintf(what, sizeof(what), "stack_size %zu", bad_stacks[i]);
        expect_rejected(&cfg, "stack", what);
    }
    /* the bounds themselves are fine; 0 carriers means one per CPU */
    vt_config_default(&cfg);
    cfg.carriers = 0;
    expect_accepted(&cfg, "carriers 0");
    cfg.carriers = 1;
    expect_accepted(&cfg, "carriers 1");
    cfg.carriers = VT_MAX_CARRIERS;
    expect_accepted(&cfg, "carriers max");
    cfg.carriers = 2;
    cfg.stack_size = VT_STACK_MIN_SIZE;
    expect_accepted(&cfg, "stack min");
    cfg.stack_size = VT_STACK_MAX_SIZE;
    expect_accepted(&cfg, "stack max");
    cfg.stack_size = VT_STACK_MIN_SIZE + 1;     /* rounded up, not refused */
    expect_accepted(&cfg, "stack min+1");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_config");
    vt_test_add(s, test_config_defaults);
    vt_test_add(s, test_config_check);
    return vt_test_main(s);
}
