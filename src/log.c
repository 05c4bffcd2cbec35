#include "log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

#define JOURNAL_SOCKET "/run/systemd/journal/socket"

static int g_max_level = LOG_INFO;
static int g_facility = LOG_FTP;
static char g_sid[32] = "-";
static char g_client[64] = "-";
static char g_user[64] = "";
static char g_attempt[64] = ""; /* the name a failed login gave: a journald field only */
static char g_tls[96] = "";
static char g_prot = 0;
static int g_stderr_ok = 1;
static int g_journal = -1;

/* journald's native protocol (a datagram of FIELD=value lines) carries the session's fields
 * as structured data; connected now, so it keeps working after chroot. */
static int journal_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", JOURNAL_SOCKET);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void log_open(int facility, int max_level)
{
    g_max_level = max_level;
    g_facility = facility;
    if (g_journal < 0)
        g_journal = journal_connect();
    /* syslog stays open too: the journal can go away, syslog is the fallback. */
    openlog("ftpsd", LOG_PID | LOG_NDELAY, facility);
}

int log_journal_fd(void)
{
    return g_journal;
}

void log_reconnect(void)
{
    closelog();
    openlog("ftpsd", LOG_PID | LOG_NDELAY, g_facility);
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

void log_set_attempted_user(const char *user)
{
    snprintf(g_attempt, sizeof g_attempt, "%s", user);
    text_sanitize(g_attempt, '?');
}

void log_set_tls(const char *tls, char prot)
{
    snprintf(g_tls, sizeof g_tls, "%s", tls ? tls : "");
    g_prot = prot;
}

static void field(struct sbuf *b, const char *name, const char *value)
{
    if (value && *value)
        sbuf_printf(b, "%s=%s\n", name, value);
}

static int journal_send(int prio, const char *line, const char *msg)
{
    struct sbuf b;
    sbuf_init(&b);
    char num[16];
    field(&b, "MESSAGE", line);
    snprintf(num, sizeof num, "%d", prio);
    field(&b, "PRIORITY", num);
    snprintf(num, sizeof num, "%d", g_facility >> 3);
    field(&b, "SYSLOG_FACILITY", num);
    field(&b, "SYSLOG_IDENTIFIER", "ftpsd");
    snprintf(num, sizeof num, "%d", (int)getpid());
    field(&b, "SYSLOG_PID", num);
    field(&b, "FTPSD_SESSION", g_sid);
    field(&b, "FTPSD_CLIENT", g_client);
    field(&b, "FTPSD_USER", g_user[0] ? g_user : g_attempt);
    field(&b, "FTPSD_TLS", g_tls);
    char prot[2] = {g_prot, 0};
    field(&b, "FTPSD_PROT", prot);
    field(&b, "FTPSD_EVENT", msg);
    ssize_t n = send(g_journal, b.data, b.len, MSG_NOSIGNAL);
    int ok = n == (ssize_t)b.len;
    sbuf_free(&b);
    return ok ? 0 : -1;
}

void log_quote(char *dst, size_t cap, const char *s)
{
    if (cap < 9) {
        dst[0] = '\0';
        return;
    }
    size_t n = 0, limit = cap < LOG_QUOTED_MAX + 8 ? cap - 8 : LOG_QUOTED_MAX;
    dst[n++] = '"';
    for (; *s && n < limit; s++) {
        if (*s == '"' || *s == '\\')
            dst[n++] = '\\';
        dst[n++] = *s;
    }
    if (*s)
        n += (size_t)snprintf(dst + n, cap - n, "...");
    dst[n++] = '"';
    dst[n] = '\0';
}

void log_msg(int prio, const char *fmt, ...)
{
    if (prio > g_max_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Client-supplied text (user names, paths) must not forge new log lines, nor drive the
     * terminal or reorder the text of whoever reads them. */
    text_sanitize(msg, '?');
    char line[2304];
    if (g_user[0])
        snprintf(line, sizeof line, "[%s] %s user=%s: %s", g_sid, g_client, g_user, msg);
    else
        snprintf(line, sizeof line, "[%s] %s: %s", g_sid, g_client, msg);
    if (g_journal >= 0 && journal_send(prio, line, msg) == 0)
        return;
    syslog(prio, "%s", line);
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
