/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * libFuzzer target: mod_vthread's directive parsers (vtm_config.c).
 *
 * The parsers are static functions of vtm_config.c, reached through
 * its directive table vtm_cmds[]; this file #includes that source
 * unchanged and calls each directive's function as httpd's config reader
 * would, with a cmd_parms for the main server. What httpd itself would
 * provide (the binary's ap_check_cmd_context, ap_str_tolower,
 * ap_timeout_parameter_parse, ap_server_conf; vthread_module from
 * mod_vthread.c) is in fuzz_httpd_stubs.c; ap_timeout_parameter_parse has
 * the semantics of httpd 2.4.71's (negative and overflowing values
 * refused).
 * The fiber runtime (vt_config_check) is linked from the sources.
 *
 * Input: first byte picks the directive, the rest (up to a NUL) is its
 * argument line; VThreadHandler's is split on blanks into arguments.
 *
 * Besides crashes and sanitizer reports, every result is checked against
 * a reference parser written here from docs/directives.md: a value is
 * accepted exactly when the reference accepts it, and then stored as the
 * reference computes it; an accepted configuration always passes the
 * runtime's own check; a refusal always names the directive.
 */
#include "../../mod_vthread/httpd/vtm_config.c"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_httpd_stubs.c"

/* -------------------------------------------------- reference parsers */

#define FAIL(...)                                                      \
    do {                                                               \
        fprintf(stderr, "fuzz_config: " __VA_ARGS__);                  \
        fprintf(stderr, "\n");                                         \
        abort();                                                       \
    } while (0)

/* Whole decimal number, digits only; 0 if not one or over 2^63-1. */
static int ref_number(const char *s, size_t n, __int128 *out)
{
    __int128 v = 0;
    size_t i;

    if (n == 0) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
        if (v > (__int128)APR_INT64_MAX) {
            return 0;
        }
    }
    *out = v;
    return 1;
}

static size_t digits_prefix(const char *s)
{
    size_t n = 0;

    while (s[n] >= '0' && s[n] <= '9') {
        n++;
    }
    return n;
}

/* VThreadCarriers: auto, or 1..256. @return 1 accepted (*v set). */
static int ref_carriers(const char *a, int *v)
{
    __int128 n;

    if (!strcasecmp(a, "auto")) {
        *v = 0;
        return 1;
    }
    if (!ref_number(a, strlen(a), &n) || n < 1 || n > VT_MAX_CARRIERS) {
        return 0;
    }
    *v = (int)n;
    return 1;
}

/* VThreadStackSize: digits, optional K/KB/M/MB, 16K..64M in all. */
static int ref_stack(const char *a, apr_size_t *v)
{
    size_t nd = digits_prefix(a);
    const char *unit = a + nd;
    __int128 n, scale;

    if (!ref_number(a, nd, &n)) {
        return 0;
    }
    if (!*unit) {
        scale = 1;
    }
    else if (!strcasecmp(unit, "K") || !strcasecmp(unit, "KB")) {
        scale = 1024;
    }
    else if (!strcasecmp(unit, "M") || !strcasecmp(unit, "MB")) {
        scale = 1024 * 1024;
    }
    else {
        return 0;
    }
    n *= scale;
    if (n < VT_STACK_MIN_SIZE || n > VT_STACK_MAX_SIZE) {
        return 0;
    }
    *v = (apr_size_t)n;
    return 1;
}

/* VThreadMaxFibers: 0..2^32-1. */
static int ref_max_fibers(const char *a, apr_uint32_t *v)
{
    __int128 n;

    if (!ref_number(a, strlen(a), &n) || n > APR_UINT32_MAX) {
        return 0;
    }
    *v = (apr_uint32_t)n;
    return 1;
}

/* VThreadOverflow: 503 or inline (any case). */
static int ref_overflow(const char *a, int *v)
{
    if (!strcmp(a, "503")) {
        *v = VTM_OVERFLOW_REJECT;
        return 1;
    }
    if (!strcasecmp(a, "inline")) {
        *v = VTM_OVERFLOW_INLINE;
        return 1;
    }
    return 0;
}

/* VThreadPinnedWarn: Off, or digits with httpd's units (ms default; only
 * the unit's first letters count, as httpd's parser does). */
static int ref_pinned(const char *a, apr_interval_time_t *v)
{
    size_t nd = digits_prefix(a);
    const char *u = a[nd] ? a + nd : "ms";
    __int128 n, t;

    if (!strcasecmp(a, "off")) {
        *v = 0;
        return 1;
    }
    if (!ref_number(a, nd, &n)) {
        return 0;
    }
    if (u[0] == 's') {
        t = n * 1000000;
    }
    else if (u[0] == 'h') {
        t = n * 3600 * (__int128)1000000;
    }
    else if (u[0] == 'm' && u[1] == 's') {
        t = n * 1000;
    }
    else if (u[0] == 'm' && u[1] == 'i') {
        t = n * 60 * 1000000;
    }
    else {
        return 0;
    }
    if (t > (__int128)APR_INT64_MAX) {
        return 0;
    }
    *v = (apr_interval_time_t)t;
    return 1;
}

/* ------------------------------------------------------------- target */

static apr_pool_t *fuzz_root;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    atexit(apr_terminate);
    vthread_module.module_index = 0;    /* httpd sets it at load time */
    if (apr_pool_create(&fuzz_root, NULL) != APR_SUCCESS) {
        abort();
    }
    return 0;
}

static const command_rec *find_cmd(const char *name)
{
    const command_rec *c;

    for (c = vtm_cmds; c->name; c++) {
        if (!strcmp(c->name, name)) {
            return c;
        }
    }
    FAIL("no directive %s", name);
    return NULL;
}

static void check_refusal(const char *err, const char *name,
                          const char *arg)
{
    if (!strstr(err, name)) {
        FAIL("%s '%s': refusal does not name the directive: %s", name, arg,
             err);
    }
}

static void fuzz_handler(apr_pool_t *p, cmd_parms *cmd, const char *line,
                         const char *probe)
{
    vtm_dir_conf_t *dc = vtm_config_create_dir(p, NULL);
    char *copy = apr_pstrdup(p, line), *tok, *state = NULL;
    char *argv[64];
    int argc = 0, i, on = 0, off = 0, bad = 0, want;
    const char *err;

    for (tok = apr_strtok(copy, " \t", &state); tok && argc < 64;
         tok = apr_strtok(NULL, " \t", &state)) {
        argv[argc++] = tok;
    }
    cmd->cmd = find_cmd("VThreadHandler");
    err = vtm_set_handler(cmd, dc, argc, argv);
    for (i = 0; i < argc; i++) {
        on += !strcasecmp(argv[i], "On");
        off += !strcasecmp(argv[i], "Off");
    }
    bad = argc == 0 || (argc > 1 && (on || off));
    if (!err != !bad) {
        FAIL("VThreadHandler '%s': %s, reference %s", line,
             err ? err : "accepted", bad ? "refuses" : "accepts");
    }
    if (err) {
        check_refusal(err, "VThreadHandler", line);
        return;
    }
    /* What vtm_config_wants() answers for a handler name. */
    want = on ? 1 : off ? 0 : -1;
    if (want < 0) {
        want = 0;
        for (i = 0; i < argc; i++) {
            want |= !strcasecmp(argv[i], probe);
        }
    }
    if (vtm_config_wants(dc, probe) != want) {
        FAIL("VThreadHandler '%s': wants('%s') = %d, reference %d", line,
             probe, vtm_config_wants(dc, probe), want);
    }
    /* Merging: a section that says something replaces the outer one. */
    {
        vtm_dir_conf_t *outer = vtm_config_create_dir(p, NULL);
        vtm_dir_conf_t *m = vtm_config_merge_dir(p, outer, dc);

        if (vtm_config_wants(m, probe) != want) {
            FAIL("VThreadHandler '%s': merged answer differs", line);
        }
        m = vtm_config_merge_dir(p, dc, outer);
        if (vtm_config_wants(m, probe) != want) {
            FAIL("VThreadHandler '%s': inherited answer differs", line);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    server_rec server;
    void *confs[1];
    cmd_parms cmd;
    vtm_srv_conf_t *sc;
    vt_config_t rc;
    const char *err = NULL, *why = NULL, *name;
    char *arg;
    int which, ok = 0;

    if (size < 1) {
        return 0;
    }
    which = data[0] % 7;
    fuzz_context = (data[0] / 7) % 8 == 7 ? 1 : 0;   /* some vhosts */
    apr_pool_create(&p, fuzz_root);
    /* A config line holds no NUL: the argument ends at the first. */
    arg = apr_pstrmemdup(p, (const char *)data + 1, size - 1);

    memset(&server, 0, sizeof(server));
    memset(&cmd, 0, sizeof(cmd));
    sc = vtm_config_create_srv(p, &server);
    confs[0] = sc;
    server.module_config = (ap_conf_vector_t *)confs;
    cmd.pool = p;
    cmd.temp_pool = p;
    cmd.server = &server;

    switch (which) {
    case 0: {
        int ref = 0;

        name = "VThreadCarriers";
        cmd.cmd = find_cmd(name);
        err = vtm_set_carriers(&cmd, NULL, arg);
        ok = ref_carriers(arg, &ref);
        if (!err && ok && sc->carriers != ref) {
            FAIL("%s '%s' stored %d, reference %d", name, arg, sc->carriers,
                 ref);
        }
        break;
    }
    case 1: {
        apr_size_t ref = 0;

        name = "VThreadStackSize";
        cmd.cmd = find_cmd(name);
        err = vtm_set_stack_size(&cmd, NULL, arg);
        ok = ref_stack(arg, &ref);
        if (!err && ok && sc->stack_size != ref) {
            FAIL("%s '%s' stored %zu, reference %zu", name, arg,
                 (size_t)sc->stack_size, (size_t)ref);
        }
        break;
    }
    case 2: {
        apr_uint32_t ref = 0;

        name = "VThreadMaxFibers";
        cmd.cmd = find_cmd(name);
        err = vtm_set_max_fibers(&cmd, NULL, arg);
        ok = ref_max_fibers(arg, &ref);
        if (!err && ok && sc->max_fibers != ref) {
            FAIL("%s '%s' stored %u, reference %u", name, arg,
                 sc->max_fibers, ref);
        }
        break;
    }
    case 3: {
        int ref = 0;

        name = "VThreadOverflow";
        cmd.cmd = find_cmd(name);
        err = vtm_set_overflow(&cmd, NULL, arg);
        ok = ref_overflow(arg, &ref);
        if (!err && ok && (int)sc->overflow != ref) {
            FAIL("%s '%s' stored %d, reference %d", name, arg,
                 (int)sc->overflow, ref);
        }
        break;
    }
    case 4: {
        apr_interval_time_t ref = 0;

        name = "VThreadPinnedWarn";
        cmd.cmd = find_cmd(name);
        err = vtm_set_pinned_warn(&cmd, NULL, arg);
        ok = ref_pinned(arg, &ref);
        if (!err && ok && sc->pinned_warn != ref) {
            FAIL("%s '%s' stored %lld, reference %lld", name, arg,
                 (long long)sc->pinned_warn, (long long)ref);
        }
        break;
    }
    default: {
        /* VThreadHandler: the line, then a handler name to ask about
         * after a '|' (or a fixed one). */
        char *bar = strchr(arg, '|');
        const char *probe = "vthread-sleep";

        if (bar) {
            *bar = '\0';
            probe = bar + 1;
        }
        fuzz_context = 0;
        fuzz_handler(p, &cmd, arg, probe);
        apr_pool_destroy(p);
        return 0;
    }
    }

    if (fuzz_context == 1) {
        /* Server-wide directives are refused in a <VirtualHost>. */
        if (!err || !strstr(err, "VirtualHost")) {
            FAIL("%s '%s' in a <VirtualHost>: %s", name, arg,
                 err ? err : "accepted");
        }
    }
    else if (!err != !!ok) {
        FAIL("%s '%s': %s, reference %s", name, arg,
             err ? err : "accepted", ok ? "accepts" : "refuses");
    }
    else if (err) {
        check_refusal(err, name, arg);
    }
    /* Whatever was stored passes the runtime's own check. */
    vtm_config_runtime(sc, &rc);
    if (vt_config_check(&rc, &why) != APR_SUCCESS && !err) {
        FAIL("%s '%s' accepted but the runtime refuses it: %s", name, arg,
             why);
    }
    apr_pool_destroy(p);
    return 0;
}
