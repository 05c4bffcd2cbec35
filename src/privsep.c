#include "privsep.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

struct hdr {
    uint32_t type;
    uint32_t len;
};

struct msg *msg_new(void)
{
    struct msg *m = xmalloc(sizeof *m);
    msg_init(m, 0);
    return m;
}

void msg_free(struct msg *m)
{
    if (m && m->fd >= 0)
        close(m->fd);
    free(m);
}

void msg_init(struct msg *m, uint32_t type)
{
    m->type = type;
    m->len = 0;
    m->rpos = 0;
    m->bad = false;
    m->fd = -1;
}

void msg_put_bytes(struct msg *m, const void *p, size_t n)
{
    if (m->len + n > MSG_MAX - sizeof(struct hdr)) {
        m->bad = true;
        return;
    }
    memcpy(m->data + m->len, p, n);
    m->len += n;
}

void msg_put_u32(struct msg *m, uint32_t v)
{
    msg_put_bytes(m, &v, sizeof v);
}

void msg_put_u64(struct msg *m, uint64_t v)
{
    msg_put_bytes(m, &v, sizeof v);
}

void msg_put_str(struct msg *m, const char *s)
{
    size_t n = strlen(s);
    if (n > UINT32_MAX) {
        m->bad = true;
        return;
    }
    msg_put_u32(m, (uint32_t)n);
    msg_put_bytes(m, s, n);
}

void msg_put_blob(struct msg *m, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        m->bad = true;
        return;
    }
    msg_put_u32(m, (uint32_t)n);
    msg_put_bytes(m, p, n);
}

static bool get_bytes(struct msg *m, void *out, size_t n)
{
    if (m->bad || m->len - m->rpos < n) {
        m->bad = true;
        return false;
    }
    memcpy(out, m->data + m->rpos, n);
    m->rpos += n;
    return true;
}

uint32_t msg_get_u32(struct msg *m)
{
    uint32_t v = 0;
    get_bytes(m, &v, sizeof v);
    return v;
}

uint64_t msg_get_u64(struct msg *m)
{
    uint64_t v = 0;
    get_bytes(m, &v, sizeof v);
    return v;
}

void msg_get_str(struct msg *m, char *out, size_t cap)
{
    out[0] = '\0';
    uint32_t n = msg_get_u32(m);
    if (m->bad)
        return;
    if (n >= cap || m->len - m->rpos < n || memchr(m->data + m->rpos, '\0', n)) {
        m->bad = true;
        return;
    }
    memcpy(out, m->data + m->rpos, n);
    out[n] = '\0';
    m->rpos += n;
}

size_t msg_get_blob(struct msg *m, const unsigned char **p, size_t max)
{
    uint32_t n = msg_get_u32(m);
    *p = NULL;
    if (m->bad || n > max || m->len - m->rpos < n) {
        m->bad = true;
        return 0;
    }
    *p = m->data + m->rpos;
    m->rpos += n;
    return n;
}

bool msg_ok_end(const struct msg *m)
{
    return !m->bad && m->rpos == m->len;
}

int msg_send(int sock, const struct msg *m)
{
    if (m->bad) {
        errno = EMSGSIZE;
        return -1;
    }
    struct hdr h = {m->type, (uint32_t)m->len};
    struct iovec iov[2] = {{&h, sizeof h}, {(void *)m->data, m->len}};
    union {
        struct cmsghdr c;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    if (m->fd >= 0) {
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof ctl.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &m->fd, sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)(sizeof h + m->len) ? 0 : -1;
}

int msg_recv(int sock, struct msg *m)
{
    struct hdr h;
    msg_init(m, 0);
    struct iovec iov[2] = {{&h, sizeof h}, {m->data, MSG_MAX - sizeof h}};
    union {
        struct cmsghdr c;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr mh = {
        .msg_iov = iov, .msg_iovlen = 2, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int fds[4];
            if (nfd > 4)
                nfd = 4;
            memcpy(fds, CMSG_DATA(c), nfd * sizeof(int));
            for (size_t i = 0; i < nfd; i++) {
                if (m->fd < 0)
                    m->fd = fds[i];
                else
                    close(fds[i]);
            }
        }
    }
    if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n < sizeof h ||
        h.len != (size_t)n - sizeof h) {
        if (m->fd >= 0)
            close(m->fd);
        m->fd = -1;
        errno = EPROTO;
        return -1;
    }
    m->type = h.type;
    m->len = h.len;
    return 0;
}
