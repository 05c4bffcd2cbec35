/*
 * Fixed-format messages between the processes of a session, over SOCK_SEQPACKET socketpairs,
 * with at most one descriptor attached (SCM_RIGHTS). Every field is length-checked on receipt:
 * a malformed message is treated as a broken peer, never trusted.
 */
#ifndef FTPSD_PRIVSEP_H
#define FTPSD_PRIVSEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MSG_MAX (96 * 1024)

enum msg_type {
    /* front -> monitor */
    MSG_LOGIN = 1, /* u32 vhost, str user, u32 has_password, str password, u32 ncerts,
                      blob cert... (the client's chain, DER, when certificate login is on) */
    /* monitor -> front */
    MSG_LOGIN_RESULT,  /* u32 ok, u32 code, u32 close, str lines, u64 PAM fsize limit, str
                          account, u32 write_enable, u64 max_rate; fd on success */
    MSG_LOGOUT,        /* front -> monitor, REIN: no fields */
    MSG_LOGOUT_DONE,   /* monitor -> front: the PAM session is closed */
    MSG_CLEANUP,       /* front -> monitor: str path of an upload's temporary file, left by a
                          user process that died before finishing it, str the name STOU
                          reserved (or empty) */
    MSG_PEER,          /* front -> monitor: u32 family, blob address (4 or 16 bytes), u32
                          port: the client named by a PROXY header from a trusted balancer */
    MSG_XFERLOG,       /* front -> monitor: u64 bytes, u32 msecs, u32 direction ('o'/'i'),
                          u32 type ('a'/'b'), u32 complete, str path: one xferlog line */
    MSG_WORKER_KILLED, /* front -> monitor: u32 pid of a worker that died of SIGSYS, u64 wall
                          clock ms before its fork (the monitor, as root, names the call from
                          the kernel log) */

    /* front -> user process: one request per FTP command, answered by MSG_REPLY */
    MSG_REQ = 20, /* u32 op, u32 flags (UF_ASCII, ...), u32 facts, u64 offset, str arg, str arg2 */
    MSG_REPLY,    /* u32 code, str text (CRLF-free lines separated by LF),
                     u64 value, str name; optional fd */

    /* front <-> data worker */
    MSG_JOB = 40, /* u32 dir, u32 type, u32 prot, u32 test hook, u64 TYPE A skip; fd = file */
    MSG_RESULT,   /* u32 status, u64 bytes, str text, str TLS version/cipher */

    /* certificate checker -> monitor (certcheck.c) */
    MSG_CERT_CHECKED = 60, /* u32 ok, str why, str subject, str issuer, u32 issuer_trusted,
                              u32 n, str email..., u32 n, str upn... */
};

struct msg {
    uint32_t type;
    size_t len;  /* payload bytes */
    size_t rpos; /* read cursor */
    bool bad;    /* a get ran past the end or found a malformed field */
    int fd;      /* attached descriptor, or -1 */
    unsigned char data[MSG_MAX];
};

struct msg *msg_new(void);
void msg_free(struct msg *m);
void msg_init(struct msg *m, uint32_t type);
void msg_put_u32(struct msg *m, uint32_t v);
void msg_put_u64(struct msg *m, uint64_t v);
void msg_put_str(struct msg *m, const char *s);
void msg_put_bytes(struct msg *m, const void *p, size_t n);
/* A length-prefixed binary field (may hold NUL). */
void msg_put_blob(struct msg *m, const void *p, size_t n);

uint32_t msg_get_u32(struct msg *m);
uint64_t msg_get_u64(struct msg *m);
/* Copies a string field into out (cap bytes incl. NUL); sets bad if too long or it holds NUL. */
void msg_get_str(struct msg *m, char *out, size_t cap);
/* Points *p at a blob inside the message (valid until the next receive); returns its length,
 * 0 and bad set when it does not fit in max. */
size_t msg_get_blob(struct msg *m, const unsigned char **p, size_t max);
/* True when every field was read exactly and nothing was malformed. */
bool msg_ok_end(const struct msg *m);

/* Sends m (and m->fd when >= 0; the caller keeps its own copy). 0 or -1. */
int msg_send(int sock, const struct msg *m);
/* Receives one message; the attached fd (if any) lands in m->fd. 0, or -1 on EOF/error/garbage. */
int msg_recv(int sock, struct msg *m);

#endif
