#include "xferlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define XFERLOG_FLAGS (O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW)

/* A file ftpsd creates gets its documented mode 0640 whatever the umask (the shipped units
 * have UMask=0077); an existing one keeps the mode its admin gave it. */
/* A new file gets its directory's group, as the files logrotate creates there do (group adm in
 * /var/log/ftpsd): the monitor's own group (root) would keep the log's readers out of the
 * first file until its first rotation. */
static void take_dir_group(int fd, const char *path)
{
    char dir[4096];
    path_dir_of(path, dir, sizeof dir);
    struct stat st;
    if (stat(dir, &st) == 0)
        (void)!fchown(fd, (uid_t)-1, st.st_gid); /* rootless: EPERM, the file stays ours */
}

int xferlog_open(const char *path)
{
    for (int tries = 0; tries < 3; tries++) {
        int fd = open(path, XFERLOG_FLAGS);
        if (fd >= 0 || errno != ENOENT)
            return fd;
        fd = open(path, XFERLOG_FLAGS | O_CREAT | O_EXCL, 0640);
        if (fd >= 0) {
            (void)fchmod(fd, 0640);
            take_dir_group(fd, path);
            return fd;
        }
        if (errno != EEXIST) /* else another session created it just now: open that */
            return -1;
    }
    return -1;
}

/* One field of the line from client text. The format is space-separated: a space would shift
 * the fields after it. */
static void field(char *out, size_t cap, const char *text)
{
    snprintf(out, cap, "%s", text);
    text_sanitize(out, '_');
    for (char *p = out; *p; p++)
        if (*p == ' ')
            *p = '_';
}

void xferlog_format(char *buf, size_t len, const struct xferlog_entry *e)
{
    char when[64];
    struct tm tm;
    localtime_r(&e->end, &tm);
    /* ctime(3) layout, "Fri Nov 27 03:00:00 2026", without its newline. */
    strftime(when, sizeof when, "%a %b %e %H:%M:%S %Y", &tm);
    char name[4096], user[256];
    field(name, sizeof name, e->path);
    field(user, sizeof user, e->user[0] ? e->user : "*");
    /* transfer-time host size file type action direction access-mode user service
     * auth-method auth-user-id status */
    char mode = e->anonymous ? 'a' : e->guest ? 'g' : 'r';
    snprintf(buf, len, "%s %u %s %llu %s %c _ %c %c %s ftp 0 * %c\n", when,
             e->seconds ? e->seconds : 1, e->host, (unsigned long long)e->bytes, name, e->type,
             e->direction, mode, user, e->complete ? 'c' : 'i');
}

int xferlog_write(int fd, const struct xferlog_entry *e)
{
    char line[4600];
    xferlog_format(line, sizeof line, e);
    size_t n = strlen(line);
    return write(fd, line, n) == (ssize_t)n ? 0 : -1;
}
