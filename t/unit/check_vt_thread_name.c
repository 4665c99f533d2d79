/* Unit tests for vt_thread_name.c: the calling thread is named
 * "vt-<role>-<index>" or "vt-<role>", cut to the kernel's 15 characters,
 * as top -H, ps -L and gdb show it; another thread's name is untouched.
 * Each test names a thread of its own, so the test runner's stays. */
#include "vt_test_util.h"
#include "vt_thread_name.h"

#include <pthread.h>
#include <string.h>
#include <sys/prctl.h>

typedef struct {
    const char *role;
    int index;
    char got[16];
} naming_t;

static void *name_self(void *arg)
{
    naming_t *n = arg;
    vt_thread_name(n->role, n->index);
    prctl(PR_GET_NAME, n->got, 0, 0, 0);
    return NULL;
}

static void name_on_new_thread(naming_t *n, const char *role, int index)
{
    pthread_t th;
    memset(n, 0, sizeof(*n));
    n->role = role;
    n->index = index;
    ck_assert_int_eq(pthread_create(&th, NULL, name_self, n), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
}

START_TEST(test_role_and_index)
{
    naming_t n;
    name_on_new_thread(&n, "carrier", 3);
    ck_assert_str_eq(n.got, "vt-carrier-3");
    name_on_new_thread(&n, "watchdog", -1);
    ck_assert_str_eq(n.got, "vt-watchdog");
}
END_TEST

START_TEST(test_cut_to_15)
{
    naming_t n;
    name_on_new_thread(&n, "carrier", 12345);   /* vt-carrier-12345: 16 */
    ck_assert_str_eq(n.got, "vt-carrier-1234");
    name_on_new_thread(&n, "averyveryverylongrole", -1);
    ck_assert_uint_eq(strlen(n.got), 15);
    ck_assert_str_eq(n.got, "vt-averyveryver");
}
END_TEST

START_TEST(test_only_the_caller)
{
    char before[16] = "", after[16] = "";
    naming_t n;
    prctl(PR_GET_NAME, before, 0, 0, 0);
    name_on_new_thread(&n, "reaper", -1);
    prctl(PR_GET_NAME, after, 0, 0, 0);
    ck_assert_str_eq(n.got, "vt-reaper");
    ck_assert_str_eq(after, before);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_thread_name");
    vt_test_add(s, test_role_and_index);
    vt_test_add(s, test_cut_to_15);
    vt_test_add(s, test_only_the_caller);
    return vt_test_main(s);
}
