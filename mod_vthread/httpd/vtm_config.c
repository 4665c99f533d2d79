/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * mod_vthread's directives: parsing, checking, merging.
 *
 * Server-wide values are checked one by one against the runtime's own
 * limits (vt_config_check) as they are read, so a bad value stops
 * the server at start-up (or `apache2ctl configtest`) with a message that
 * names the directive and what it accepts.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_main.h>

#include <errno.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "vtm_config.h"
#include "vtm_glue.h"

static const char *vtm_set_handler(cmd_parms *cmd, void *dirconf,
                                       int argc, char *const argv[]);
static const char *vtm_set_carriers(cmd_parms *cmd, void *dummy,
                                        const char *arg);
static const char *vtm_set_stack_size(cmd_parms *cmd, void *dummy,
                                          const char *arg);
static const char *vtm_set_max_fibers(cmd_parms *cmd, void *dummy,
                                          const char *arg);
static const char *vtm_set_overflow(cmd_parms *cmd, void *dummy,
                                        const char *arg);
static const char *vtm_set_pinned_warn(cmd_parms *cmd, void *dummy,
                                           const char *arg);
static const char *vtm_check_field(cmd_parms *cmd,
                                       const vtm_srv_conf_t *sc,
                                       const char *arg, const char *allowed);
static const char *vtm_set_transparent(cmd_parms *cmd, void *dirconf,
                                       int on);

/* A VThreadTransparent On was read somewhere in this configuration. */
static int vtm_config_transparent_said_on;

const command_rec vtm_cmds[] = {
    AP_INIT_TAKE_ARGV("VThreadHandler", vtm_set_handler, NULL,
                      OR_FILEINFO,
                      "On | Off | handler-name [handler-name] ...: run the "
                      "handler of this location on a fiber"),
    AP_INIT_TAKE1("VThreadCarriers", vtm_set_carriers, NULL, RSRC_CONF,
                  "carrier threads per child: a number, or 'auto' (one per "
                  "online CPU, the default)"),
    AP_INIT_TAKE1("VThreadStackSize", vtm_set_stack_size, NULL,
                  RSRC_CONF,
                  "stack per fiber in bytes, or with a K or M suffix "
                  "(default 256K)"),
    AP_INIT_TAKE1("VThreadMaxFibers", vtm_set_max_fibers, NULL,
                  RSRC_CONF,
                  "fibers alive at once per child; 0 means unlimited "
                  "(default 10000)"),
    AP_INIT_TAKE1("VThreadOverflow", vtm_set_overflow, NULL, RSRC_CONF,
                  "503 | inline: what a request gets when VThreadMaxFibers "
                  "is reached (default 503)"),
    AP_INIT_TAKE1("VThreadPinnedWarn", vtm_set_pinned_warn, NULL,
                  RSRC_CONF,
                  "log a fiber that holds its carrier this long, e.g. "
                  "100ms or 1s; 0 or Off disables (default 100ms)"),
    AP_INIT_FLAG("VThreadTransparent", vtm_set_transparent, NULL,
                 OR_FILEINFO,
                 "On | Off: blocking calls that unmodified modules make on "
                 "a fiber (sockets, poll, sleeps, locks, DNS) park the "
                 "fiber instead of its carrier (default On)"),
    { NULL }
};

void *vtm_config_create_dir(apr_pool_t *p, char *dir)
{
    vtm_dir_conf_t *dc = apr_pcalloc(p, sizeof(*dc));

    (void)dir;
    dc->mode = VTM_HANDLER_UNSET;
    dc->transparent = -1;
    return dc;
}

void *vtm_config_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    vtm_dir_conf_t *base = basev;
    vtm_dir_conf_t *add = addv;
    vtm_dir_conf_t *dc = apr_palloc(p, sizeof(*dc));

    *dc = (add->mode != VTM_HANDLER_UNSET) ? *add : *base;
    dc->transparent = add->transparent != -1 ? add->transparent
                                             : base->transparent;
    return dc;
}

void *vtm_config_create_srv(apr_pool_t *p, server_rec *s)
{
    vtm_srv_conf_t *sc = apr_pcalloc(p, sizeof(*sc));

    if (!s->is_virtual) {
        /* A new reading of the configuration (start, restart). */
        vtm_config_transparent_said_on = 0;
    }
    sc->carriers = 0;
    sc->stack_size = VT_STACK_DEFAULT_SIZE;
    sc->max_fibers = VTM_DEFAULT_MAX_FIBERS;
    sc->overflow = VTM_OVERFLOW_REJECT;
    sc->pinned_warn = VTM_DEFAULT_PINNED_WARN;
    return sc;
}

const vtm_srv_conf_t *vtm_config_srv(server_rec *s)
{
    server_rec *main_server = ap_server_conf ? ap_server_conf : s;

    /* During configuration ap_server_conf may not be set yet; every
     * server-wide directive is GLOBAL_ONLY, so walk to the main server. */
    return ap_get_module_config(main_server->module_config,
                                &vthread_module);
}

int vtm_config_wants(const vtm_dir_conf_t *dc, const char *handler)
{
    int i;

    if (!dc) {
        return 0;
    }
    switch (dc->mode) {
    case VTM_HANDLER_ON:
        return 1;
    case VTM_HANDLER_LIST:
        if (!handler) {
            return 0;
        }
        for (i = 0; i < dc->names->nelts; i++) {
            if (!strcasecmp(APR_ARRAY_IDX(dc->names, i, const char *),
                            handler)) {
                return 1;
            }
        }
        return 0;
    default:
        return 0;
    }
}

int vtm_config_transparent(const vtm_dir_conf_t *dc)
{
    return !dc || dc->transparent != 0;
}

int vtm_config_transparent_anywhere(server_rec *s)
{
    const vtm_dir_conf_t *dc =
        ap_get_module_config(s->lookup_defaults, &vthread_module);

    return vtm_config_transparent_said_on || vtm_config_transparent(dc);
}

void vtm_config_runtime(const vtm_srv_conf_t *sc,
                            vt_config_t *rc)
{
    vt_config_default(rc);
    rc->carriers = sc->carriers;
    rc->stack_size = sc->stack_size;
    rc->max_fibers = sc->max_fibers;
    rc->pinned_warn = sc->pinned_warn;
}

/* ------------------------------------------------------------------ */

static const char *vtm_set_handler(cmd_parms *cmd, void *dirconf,
                                       int argc, char *const argv[])
{
    vtm_dir_conf_t *dc = dirconf;
    int i;

    if (argc < 1) {
        return "VThreadHandler needs On, Off, or one or more handler names";
    }
    if (argc == 1 && !strcasecmp(argv[0], "On")) {
        dc->mode = VTM_HANDLER_ON;
        dc->names = NULL;
        return NULL;
    }
    if (argc == 1 && !strcasecmp(argv[0], "Off")) {
        dc->mode = VTM_HANDLER_OFF;
        dc->names = NULL;
        return NULL;
    }
    dc->mode = VTM_HANDLER_LIST;
    dc->names = apr_array_make(cmd->pool, argc, sizeof(const char *));
    for (i = 0; i < argc; i++) {
        char *name;

        if (!strcasecmp(argv[i], "On") || !strcasecmp(argv[i], "Off")) {
            return apr_psprintf(cmd->pool,
                                "VThreadHandler: '%s' must stand alone; "
                                "allowed: On, Off, or handler names",
                                argv[i]);
        }
        /* SetHandler/AddHandler lower-case handler names too. */
        name = apr_pstrdup(cmd->pool, argv[i]);
        ap_str_tolower(name);
        APR_ARRAY_PUSH(dc->names, const char *) = name;
    }
    return NULL;
}

/* Parse a whole decimal number; @return 0 if @a arg is not one. */
static int vtm_parse_number(const char *arg, apr_int64_t *out,
                                const char **rest)
{
    char *end = NULL;

    if (!apr_isdigit(*arg)) {
        return 0;
    }
    errno = 0;
    *out = apr_strtoi64(arg, &end, 10);
    if (errno || end == arg) {
        return 0;
    }
    *rest = end;
    return 1;
}

static const char *vtm_set_carriers(cmd_parms *cmd, void *dummy,
                                        const char *arg)
{
    vtm_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config,
                                                  &vthread_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const char *rest;
    apr_int64_t n;

    (void)dummy;
    if (err) {
        return err;
    }
    if (!strcasecmp(arg, "auto")) {
        sc->carriers = 0;
        return NULL;
    }
    if (!vtm_parse_number(arg, &n, &rest) || *rest
        || n < 1 || n > VT_MAX_CARRIERS) {
        return apr_psprintf(cmd->pool,
                            "VThreadCarriers: '%s' is not allowed; allowed: "
                            "1 to %d, or auto (one per online CPU)",
                            arg, VT_MAX_CARRIERS);
    }
    sc->carriers = (int)n;
    return vtm_check_field(cmd, sc, arg, "1 to 256, or auto");
}

static const char *vtm_set_stack_size(cmd_parms *cmd, void *dummy,
                                          const char *arg)
{
    vtm_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config,
                                                  &vthread_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const char *allowed = apr_psprintf(cmd->pool,
                                       "%dK to %dM, in bytes or with a K or "
                                       "M suffix (e.g. 256K)",
                                       VT_STACK_MIN_SIZE / 1024,
                                       VT_STACK_MAX_SIZE / (1024 * 1024));
    const char *rest;
    apr_int64_t n, scale = 1;

    (void)dummy;
    if (err) {
        return err;
    }
    if (!vtm_parse_number(arg, &n, &rest)) {
        return apr_psprintf(cmd->pool, "VThreadStackSize: '%s' is not a "
                            "size; allowed: %s", arg, allowed);
    }
    if (!strcasecmp(rest, "K") || !strcasecmp(rest, "KB")) {
        scale = 1024;
    }
    else if (!strcasecmp(rest, "M") || !strcasecmp(rest, "MB")) {
        scale = 1024 * 1024;
    }
    else if (*rest) {
        return apr_psprintf(cmd->pool, "VThreadStackSize: unknown unit "
                            "'%s'; allowed: %s", rest, allowed);
    }
    if (n > VT_STACK_MAX_SIZE / scale + 1) {
        n = VT_STACK_MAX_SIZE / scale + 1;  /* too big either way */
    }
    sc->stack_size = (apr_size_t)(n * scale);
    return vtm_check_field(cmd, sc, arg, allowed);
}

static const char *vtm_set_max_fibers(cmd_parms *cmd, void *dummy,
                                          const char *arg)
{
    vtm_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config,
                                                  &vthread_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const char *rest;
    apr_int64_t n;

    (void)dummy;
    if (err) {
        return err;
    }
    if (!vtm_parse_number(arg, &n, &rest) || *rest
        || n > (apr_int64_t)APR_UINT32_MAX) {
        return apr_psprintf(cmd->pool,
                            "VThreadMaxFibers: '%s' is not allowed; allowed: "
                            "a whole number from 1 to %u, or 0 for no limit",
                            arg, APR_UINT32_MAX);
    }
    sc->max_fibers = (apr_uint32_t)n;
    return vtm_check_field(cmd, sc, arg,
                               "a whole number, or 0 for no limit");
}

static const char *vtm_set_overflow(cmd_parms *cmd, void *dummy,
                                        const char *arg)
{
    vtm_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config,
                                                  &vthread_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dummy;
    if (err) {
        return err;
    }
    if (!strcmp(arg, "503")) {
        sc->overflow = VTM_OVERFLOW_REJECT;
    }
    else if (!strcasecmp(arg, "inline")) {
        sc->overflow = VTM_OVERFLOW_INLINE;
    }
    else {
        return apr_psprintf(cmd->pool, "VThreadOverflow: '%s' is not "
                            "allowed; allowed: 503 or inline", arg);
    }
    return NULL;
}

static const char *vtm_set_pinned_warn(cmd_parms *cmd, void *dummy,
                                           const char *arg)
{
    vtm_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config,
                                                  &vthread_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    apr_interval_time_t t;

    (void)dummy;
    if (err) {
        return err;
    }
    if (!strcasecmp(arg, "Off")) {
        sc->pinned_warn = 0;
        return NULL;
    }
    if (!apr_isdigit(*arg)
        || ap_timeout_parameter_parse(arg, &t, "ms") != APR_SUCCESS
        || t < 0) {
        return apr_psprintf(cmd->pool, "VThreadPinnedWarn: '%s' is not a "
                            "duration; allowed: a number of milliseconds, "
                            "or with a unit (e.g. 100ms, 2s), or Off", arg);
    }
    sc->pinned_warn = t;
    return vtm_check_field(cmd, sc, arg,
                               "a duration such as 100ms or 2s, or Off");
}

/* Ask the runtime whether it accepts the settings read so far. */
static const char *vtm_set_transparent(cmd_parms *cmd, void *dirconf,
                                       int on)
{
    vtm_dir_conf_t *dc = dirconf;

    (void)cmd;
    dc->transparent = on;
    if (on) {
        vtm_config_transparent_said_on = 1;
    }
    return NULL;
}

static const char *vtm_check_field(cmd_parms *cmd,
                                       const vtm_srv_conf_t *sc,
                                       const char *arg, const char *allowed)
{
    vt_config_t rc;
    const char *why = NULL;

    vtm_config_runtime(sc, &rc);
    if (vt_config_check(&rc, &why) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not allowed (%s); "
                            "allowed: %s", cmd->cmd->name, arg,
                            why ? why : "refused by the runtime", allowed);
    }
    return NULL;
}
