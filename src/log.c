#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int g_max_level = LOG_INFO;
static char g_sid[32] = "-";
static char g_client[64] = "-";
static char g_user[64] = "";
static int g_stderr_ok = 1;

void log_open(int facility, int max_level)
{
    g_max_level = max_level;
    openlog("ftpsd", LOG_PID | LOG_NDELAY, facility);
}

void log_set_session(const char *sid, const char *client)
{
    snprintf(g_sid, sizeof g_sid, "%s", sid);
    snprintf(g_client, sizeof g_client, "%s", client);
}

void log_set_user(const char *user)
{
    snprintf(g_user, sizeof g_user, "%s", user);
}

const char *log_session_id(void)
{
    return g_sid;
}

void log_msg(int prio, const char *fmt, ...)
{
    if (prio > g_max_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Client-supplied text (user names, paths) must not forge new log lines. */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (g_user[0])
        syslog(prio, "[%s] %s user=%s: %s", g_sid, g_client, g_user, msg);
    else
        syslog(prio, "[%s] %s: %s", g_sid, g_client, msg);
}

void log_stderr_disable(void)
{
    g_stderr_ok = 0;
}

void log_stderr(const char *fmt, ...)
{
    if (!g_stderr_ok)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
