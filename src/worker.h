/*
 * The data worker: one process per data connection, forked by the front at accept time. It
 * runs the TLS handshake on the data socket (binding it to the control session), then moves
 * the bytes between the socket and the file descriptor the user process opened. It opens
 * nothing itself.
 */
#ifndef FTPSD_WORKER_H
#define FTPSD_WORKER_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

enum job_dir { JOB_SEND = 1, JOB_RECV = 2 };

enum job_status {
    WR_OK = 0,
    WR_CONN_LOST,       /* peer closed or reset the data connection: 426 */
    WR_TLS_FAILED,      /* handshake failed or session not bound to the control one: 522 */
    WR_LOCAL_ERROR,     /* reading or writing the file failed: 451 */
    WR_NO_SPACE,        /* ENOSPC: 452 */
    WR_QUOTA,           /* EDQUOT/EFBIG: 552 */
    WR_NO_CLOSE_NOTIFY, /* upload ended by TCP FIN without close_notify: 426 */
    WR_TIMEOUT,         /* no progress within data_timeout: 426 */
    WR_PROT_CHANGED,    /* data connection opened under another PROT level: 425 */
    WR_SANDBOX,         /* seccomp refused a system call (its number is in bytes): 451 */
};

struct worker_args {
    int data_fd;
    int chan_fd;
    int pipe_r, pipe_w; /* for splice(2) in clear-text uploads, or -1 */
    SSL_CTX *ctx;       /* the control connection's session context (cache, ticket keys) */
    SSL_CTX *cert_ctx;  /* the certificate the control connection uses (its vhost's) */
    const unsigned char *sid_ctx;
    X509 *ctl_peer; /* the control connection's client certificate, or NULL */
    bool tls_now;   /* PROT P when the connection was accepted: handshake at once */
    bool require_reuse;
    bool require_close_notify;
    bool ktls;         /* try kernel TLS (tls_ktls and the kernel offers it) */
    int timeout_ms;    /* data_timeout: the whole TLS handshake, and each wait for progress */
    int close_ms;      /* data_close_timeout: a download's wait for the client's close */
    int drain_ms;      /* upload_drain_timeout: reading a refused upload's rest */
    uint64_t max_rate; /* bytes per second, 0 for no limit (max_rate, anon_max_rate) */
    /* File bytes moved so far, in memory shared with the front: it can log what a transfer
     * moved even when the worker is killed or the client leaves before the result. */
    uint64_t *progress;
};

_Noreturn void worker_main(const struct worker_args *a);

#endif
