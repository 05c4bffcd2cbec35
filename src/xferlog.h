/* The xferlog(5) transfer log, written by the monitor from the front's validated reports. */
#ifndef FTPSD_XFERLOG_H
#define FTPSD_XFERLOG_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct xferlog_entry {
    time_t end;       /* when the transfer ended */
    unsigned seconds; /* how long it took (at least 1, as wu-ftpd writes it) */
    const char *host; /* client address */
    uint64_t bytes;
    const char *path; /* real path of the file */
    char type;        /* 'a' ASCII or 'b' binary */
    char direction;   /* 'o' download, 'i' upload */
    const char *user; /* the account, or for anonymous FTP the identity (e-mail) given */
    bool anonymous;   /* access mode 'a' (else 'r', a real user) */
    bool guest;       /* 'g': a virtual user (guest_user), who runs as another account */
    bool complete;
};

/* Opens the log for appending (created 0640). -1 with errno on failure. */
int xferlog_open(const char *path);
/* Formats one xferlog(5) line; whitespace, control characters and invalid UTF-8 in the file
 * name and the user become '_' so that the fields stay splittable by tools. */
void xferlog_format(char *buf, size_t len, const struct xferlog_entry *e);
/* Appends one line with a single write (O_APPEND keeps concurrent sessions' lines whole).
 * 0, or -1 with errno (EFBIG past a file size limit, ENOSPC...). */
int xferlog_write(int fd, const struct xferlog_entry *e);

#endif
