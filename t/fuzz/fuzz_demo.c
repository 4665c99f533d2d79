/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * libFuzzer target: the demo module's parsers of untrusted input (the
 * files of mod_vthread/demo/ that hold them, #included unchanged, so that
 * their static functions are reachable):
 *
 *   demo_fetch_parse   a backend's HTTP/1.x response (status line,
 *                      headers, body), as vthread-fetch and
 *                      vthread-fanout receive it (demo_fetch.c);
 *   demo_arg_int       integer query arguments (ms=, n=, kb=, ...)
 *                      (demo_request.c);
 *   demo_path_ok       paths put on the backend request line
 *                      (demo_fetch.c);
 *   demo_topic_ok      vthread-poll topic names (demo_poll.c).
 *
 * The rest of httpd's and mod_vthread's API that these files refer to is
 * not called by these functions; stubs_demo.c satisfies the linker with
 * functions that abort if called. The module record, which lives in
 * mod_vthread_demo.c (not included), is defined here, empty: nothing
 * fuzzed reads the server config.
 *
 * Input: first byte picks the parser, the rest is its input. Checked
 * besides sanitizer reports: a parsed response's body lies inside the
 * buffer, its status is 200..599 and the Content-Type to relay is
 * trimmed and free of control characters (httpd would answer 500); an
 * accepted integer is in range and equals the decimal value of its text;
 * an accepted path starts with '/' and holds only printable non-blank
 * ASCII, at most 2048 bytes.
 */
#include "../../mod_vthread/demo/demo_request.c"
#include "../../mod_vthread/demo/demo_fetch.c"
#include "../../mod_vthread/demo/demo_poll.c"

#include <stdint.h>
#include <stdio.h>

#define FAIL(...)                                                      \
    do {                                                               \
        fprintf(stderr, "fuzz_demo: " __VA_ARGS__);                    \
        fprintf(stderr, "\n");                                         \
        abort();                                                       \
    } while (0)

module AP_MODULE_DECLARE_DATA vthread_demo_module;

static apr_pool_t *fuzz_root;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    atexit(apr_terminate);
    if (apr_pool_create(&fuzz_root, NULL) != APR_SUCCESS) {
        abort();
    }
    return 0;
}

static void fuzz_fetch_parse(apr_pool_t *p, const uint8_t *d, size_t n)
{
    /* As demo_fetch() leaves it: the bytes read, then a NUL. Exactly
     * sized, so that ASan sees any read past the end. */
    char *buf = malloc(n + 1);
    demo_fetch_t out;

    memcpy(buf, d, n);
    buf[n] = '\0';
    memset(&out, 0, sizeof(out));
    demo_fetch_parse(p, buf, n, &out);
    if (out.why == NULL) {
        if (out.status < 200 || out.status > 599) {
            FAIL("status %d accepted", out.status);
        }
        if (out.body < buf || out.body > buf + n
            || out.body + out.len != buf + n) {
            FAIL("body %p+%zu outside %p+%zu", (void *)out.body,
                 (size_t)out.len, (void *)buf, n);
        }
        if (n < 12 || memcmp(d, "HTTP/1.", 7) != 0) {
            FAIL("accepted a response without an HTTP/1.x status line");
        }
        if (out.ctype && (!*out.ctype || apr_isspace(out.ctype[0])
                          || apr_isspace(out.ctype[strlen(out.ctype) - 1]))) {
            FAIL("Content-Type '%s' not trimmed", out.ctype);
        }
        /* What httpd would refuse to send (AH02430) is never relayed. */
        for (const char *c = out.ctype; c && *c; c++) {
            if (apr_iscntrl(*c) && *c != '\t') {
                FAIL("Content-Type with control byte 0x%02x relayed",
                     (unsigned char)*c);
            }
        }
    }
    else if (out.status != HTTP_BAD_GATEWAY
             && out.status != HTTP_GATEWAY_TIME_OUT) {
        FAIL("failure with status %d", out.status);
    }
    free(buf);
}

static void fuzz_arg_int(apr_pool_t *p, const char *s)
{
    apr_table_t *args = apr_table_make(p, 2);
    apr_int64_t v = -7, lo = 0, hi = DEMO_SLEEP_MAX_MS, ref = 0;
    size_t i, len = strlen(s);
    int rc, ok = len > 0;

    apr_table_set(args, "ms", s);
    rc = demo_arg_int(args, "ms", lo, hi, 100, &v);
    for (i = 0; i < len && ok; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 12) {
            ok = 0;
        }
        else {
            ref = ref * 10 + (s[i] - '0');
        }
    }
    ok = ok && ref >= lo && ref <= hi;
    if ((rc == 0) != ok) {
        FAIL("ms='%s': %s, reference %s", s, rc == 0 ? "accepted" :
             "refused", ok ? "accepts" : "refuses");
    }
    if (rc == 0 && v != ref) {
        FAIL("ms='%s' gave %lld", s, (long long)v);
    }
    /* Absent: the default. */
    rc = demo_arg_int(args, "other", lo, hi, 100, &v);
    if (rc != 0 || v != 100) {
        FAIL("absent argument");
    }
}

static void fuzz_path(const char *s)
{
    size_t i, len = strlen(s);
    int ok = demo_path_ok(s);

    if (!ok) {
        return;
    }
    if (s[0] != '/' || len > DEMO_PATH_MAX) {
        FAIL("path '%s' accepted", s);
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            FAIL("path with byte 0x%02x accepted", (unsigned char)s[i]);
        }
    }
}

static void fuzz_topic(const char *s)
{
    size_t i, len = strlen(s);

    if (!demo_topic_ok(s)) {
        return;
    }
    if (len == 0 || len > DEMO_TOPIC_NAME_MAX) {
        FAIL("topic of %zu bytes accepted", len);
    }
    for (i = 0; i < len; i++) {
        if (!apr_isalnum(s[i]) && s[i] != '_' && s[i] != '-') {
            FAIL("topic with byte 0x%02x accepted", (unsigned char)s[i]);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    char *s;

    if (size < 1) {
        return 0;
    }
    apr_pool_create(&p, fuzz_root);
    switch (data[0] % 4) {
    case 0:
        fuzz_fetch_parse(p, data + 1, size - 1);
        break;
    case 1:
        s = apr_pstrmemdup(p, (const char *)data + 1, size - 1);
        fuzz_arg_int(p, s);
        break;
    case 2:
        s = apr_pstrmemdup(p, (const char *)data + 1, size - 1);
        fuzz_path(s);
        break;
    default:
        s = apr_pstrmemdup(p, (const char *)data + 1, size - 1);
        fuzz_topic(s);
        break;
    }
    apr_pool_destroy(p);
    return 0;
}
