#include "wtmp.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <unistd.h>
#include <utmpx.h>

#include "log.h"

/* The fields need no terminating NUL: a name of their full size is kept whole. */
static void field(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    memcpy(dst, src, n < size ? n : size);
}

static void put(const char *file, const char *user, const struct session_info *si, short type)
{
    /* updwtmpx() says nothing of failure, and does not make a missing file: systems without
     * wtmp (containers, wtmpdb) are common, so that is only worth a debug line. */
    if (access(file, W_OK) < 0) {
        log_msg(LOG_DEBUG, "wtmp file %s: %s; session not recorded", file, strerror(errno));
        return;
    }
    struct utmpx ut;
    memset(&ut, 0, sizeof ut);
    ut.ut_type = type;
    ut.ut_pid = getpid();
    char line[sizeof ut.ut_line + 1];
    snprintf(line, sizeof line, "ftpd%d", (int)ut.ut_pid);
    field(ut.ut_line, sizeof ut.ut_line, line);
    field(ut.ut_user, sizeof ut.ut_user, user);
    field(ut.ut_host, sizeof ut.ut_host, si->peer_str);
    if (si->peer.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&si->peer;
        memcpy(ut.ut_addr_v6, &a->sin_addr, sizeof a->sin_addr);
    } else if (si->peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&si->peer;
        /* An IPv4 client on a dual-stack socket is recorded as IPv4, as its host is shown. */
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            memcpy(ut.ut_addr_v6, a->sin6_addr.s6_addr + 12, 4);
        else
            memcpy(ut.ut_addr_v6, &a->sin6_addr, sizeof a->sin6_addr);
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    ut.ut_tv.tv_sec = (int32_t)tv.tv_sec;
    ut.ut_tv.tv_usec = (int32_t)tv.tv_usec;
    updwtmpx(file, &ut);
}

void wtmp_login(const char *file, const char *user, const struct session_info *si)
{
    if (file[0])
        put(file, user, si, USER_PROCESS);
}

void wtmp_logout(const char *file, const struct session_info *si)
{
    if (file[0])
        put(file, "", si, DEAD_PROCESS);
}
