/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * What httpd would give vtm_config.c, for fuzz_config.c (which #includes
 * this after vtm_config.c): the module record, ap_server_conf, and the
 * httpd functions the parsers call. fuzz_context is set by the fuzzer.
 */
#include <errno.h>

module AP_MODULE_DECLARE_DATA vthread_module = {
    STANDARD20_MODULE_STUFF,
    NULL, NULL, NULL, NULL, NULL, NULL,
#ifdef AP_MODULE_FLAG_NONE
    AP_MODULE_FLAG_NONE
#endif
};

AP_DECLARE_DATA server_rec *ap_server_conf = NULL;

/* The fuzzer sets the context: 0 main server, 1 <VirtualHost>, 2 dir. */
static int fuzz_context;

AP_DECLARE(const char *) ap_check_cmd_context(cmd_parms *cmd,
                                              unsigned forbidden)
{
    if ((forbidden & NOT_IN_VIRTUALHOST) && fuzz_context == 1) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name,
                           " cannot occur within <VirtualHost> section",
                           NULL);
    }
    if ((forbidden & NOT_IN_DIR_CONTEXT) && fuzz_context == 2) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name,
                           " not allowed in <Location> context", NULL);
    }
    return NULL;
}

AP_DECLARE(void) ap_str_tolower(char *s)
{
    for (; *s; s++) {
        *s = (char)apr_tolower(*s);
    }
}

/* httpd 2.4.71's, with its range checks (from its object code). */
AP_DECLARE(apr_status_t) ap_timeout_parameter_parse(
    const char *timeout_parameter, apr_interval_time_t *timeout,
    const char *default_time_unit)
{
    char *endp;
    const char *time_str;
    apr_int64_t tout;

    errno = 0;
    tout = apr_strtoi64(timeout_parameter, &endp, 10);
    if (errno) {
        return errno;
    }
    time_str = (!endp || !*endp) ? default_time_unit : endp;
    if (tout < 0) {
        return APR_EGENERAL;
    }
    switch (*time_str) {
    case 's':
        if (tout > APR_INT64_MAX / APR_USEC_PER_SEC) {
            return APR_EGENERAL;
        }
        *timeout = apr_time_from_sec(tout);
        break;
    case 'h':
        if (tout > APR_INT64_MAX / APR_USEC_PER_SEC / 3600) {
            return APR_EGENERAL;
        }
        *timeout = apr_time_from_sec(tout * 3600);
        break;
    case 'm':
        switch (*(++time_str)) {
        case 's':
            if (tout > APR_INT64_MAX / 1000) {
                return APR_EGENERAL;
            }
            *timeout = (apr_interval_time_t)tout * 1000;
            break;
        case 'i':
            if (tout > APR_INT64_MAX / APR_USEC_PER_SEC / 60) {
                return APR_EGENERAL;
            }
            *timeout = apr_time_from_sec(tout * 60);
            break;
        default:
            return APR_EGENERAL;
        }
        break;
    default:
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}
