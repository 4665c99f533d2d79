/* Unit tests for vt_log.c: with a log callback, a message reaches it once,
 * with the config's baton, the level and message id given, and the printf
 * formatting done; a message longer than 511 bytes is cut to 511 and
 * NUL-terminated; with no config, or a config without a callback, it goes
 * to stderr as "mod_vthread: <message>\n" (cut the same way). */
#include "vt_test_util.h"

#include <stdio.h>
#include <string.h>

/* What the callback received. (vt_test_log_t keeps no baton and cuts at
 * 511 bytes itself, which would hide whether vt_log cut.) */
typedef struct {
    int calls;
    void *baton;
    int level;
    int msg_id;
    int terminated;         /* a NUL within the 512 bytes vt_log may pass */
    apr_size_t len;
    char msg[1024];
} rec_t;

static rec_t rec;

static void record(void *baton, int level, int msg_id, const char *msg)
{
    rec.calls++;
    rec.baton = baton;
    rec.level = level;
    rec.msg_id = msg_id;
    rec.terminated = memchr(msg, '\0', 512) != NULL;
    rec.len = rec.terminated ? strlen(msg) : 512;
    memcpy(rec.msg, msg, rec.len);
    rec.msg[rec.len] = '\0';
}

/* A config that logs into rec with @a baton. */
static void config_recording(vt_config_t *cfg, void *baton)
{
    memset(&rec, 0, sizeof(rec));
    vt_config_default(cfg);
    cfg->log = record;
    cfg->log_baton = baton;
}

/* @a len bytes of letters, NUL-terminated. */
static void letters(char *buf, apr_size_t len)
{
    for (apr_size_t i = 0; i < len; i++) {
        buf[i] = (char)('a' + i % 26);
    }
    buf[len] = '\0';
}

/* ------------------------------------------------------------------ */

START_TEST(test_log_callback)
{
    vt_config_t cfg;
    int baton;

    config_recording(&cfg, &baton);
    vt_log(&cfg, VT_LOG_WARNING, VT_MSG_PINNED,
           "fiber \"%s\" held carrier %d for %ld ms (%.1f%%, %#x)",
           "GET /x", 3, 250L, 12.5, 255u);
    ck_assert_int_eq(rec.calls, 1);
    ck_assert_ptr_eq(rec.baton, &baton);
    ck_assert_int_eq(rec.level, VT_LOG_WARNING);
    ck_assert_int_eq(rec.msg_id, VT_MSG_PINNED);
    ck_assert_str_eq(rec.msg,
                     "fiber \"GET /x\" held carrier 3 for 250 ms (12.5%, "
                     "0xff)");

    /* the next message has its own level and id, nothing of the first */
    vt_log(&cfg, VT_LOG_DEBUG, VT_MSG_MISUSE, "%s", "");
    ck_assert_int_eq(rec.calls, 2);
    ck_assert_ptr_eq(rec.baton, &baton);
    ck_assert_int_eq(rec.level, VT_LOG_DEBUG);
    ck_assert_int_eq(rec.msg_id, VT_MSG_MISUSE);
    ck_assert_str_eq(rec.msg, "");
}
END_TEST

START_TEST(test_log_cut_at_511)
{
    static const apr_size_t lens[] = { 1, 510, 511, 512, 600, 1000 };
    vt_config_t cfg;
    char buf[1001];

    for (size_t i = 0; i < sizeof(lens) / sizeof(*lens); i++) {
        apr_size_t want = lens[i] < 511 ? lens[i] : 511;
        config_recording(&cfg, NULL);
        letters(buf, lens[i]);
        vt_log(&cfg, VT_LOG_ERR, VT_MSG_STACK, "%s", buf);
        ck_assert_int_eq(rec.calls, 1);
        ck_assert_msg(rec.terminated, "%zu bytes: no NUL within 512",
                      lens[i]);
        ck_assert_msg(rec.len == want, "%zu bytes: passed %zu, not %zu",
                      lens[i], rec.len, want);
        ck_assert_int_eq(memcmp(rec.msg, buf, want), 0);
    }
    /* formatting first, then the cut */
    config_recording(&cfg, NULL);
    letters(buf, 600);
    vt_log(&cfg, VT_LOG_ERR, VT_MSG_STACK, "%d:%s", 42, buf);
    ck_assert_uint_eq(rec.len, 511);
    ck_assert_int_eq(memcmp(rec.msg, "42:", 3), 0);
    ck_assert_int_eq(memcmp(rec.msg + 3, buf, 508), 0);
}
END_TEST

START_TEST(test_log_stderr)
{
    vt_config_t cfg;
    vt_test_stderr_t cap;
    int baton;
    char longmsg[601], want[1024], got[2048];
    apr_size_t n;

    /* a baton without a callback: ignored */
    config_recording(&cfg, &baton);
    cfg.log = NULL;
    letters(longmsg, 600);
    snprintf(want, sizeof(want),
             "mod_vthread: no config: 1\n"
             "mod_vthread: no callback: two\n"
             "mod_vthread: %.511s\n", longmsg);

    vt_test_stderr_begin(&cap);
    vt_log(NULL, VT_LOG_ERR, VT_MSG_THREAD, "no config: %d", 1);
    vt_log(&cfg, VT_LOG_WARNING, VT_MSG_PINNED, "no callback: %s", "two");
    vt_log(NULL, VT_LOG_ERR, VT_MSG_STACK, "%s", longmsg);
    n = vt_test_stderr_end(&cap, got, sizeof(got));

    ck_assert_uint_eq(n, strlen(want));
    ck_assert_str_eq(got, want);
    ck_assert_int_eq(rec.calls, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_log");
    vt_test_add(s, test_log_callback);
    vt_test_add(s, test_log_cut_at_511);
    vt_test_add(s, test_log_stderr);
    return vt_test_main(s);
}
