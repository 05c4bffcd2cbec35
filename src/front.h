/*
 * The front: the only process that talks to the client. Unprivileged, chrooted to an empty
 * directory, it owns the control connection's TLS state and the server key, answers the
 * pre-login commands itself, and after login relays file commands to the user process.
 * Data connections are carried by workers it forks (worker.c), so they inherit its TLS context
 * and can resume the control session.
 */
#ifndef FTPSD_FRONT_H
#define FTPSD_FRONT_H

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "certid.h"
#include "ctlio.h"
#include "datachan.h"
#include "path.h"
#include "privsep.h"
#include "session_info.h"
#include "tls.h"
#include "util.h"

#define FRONT_QUEUE_MAX 32

/* DER certificates, the client's first (certificate login). */
struct certchain {
    unsigned char *der[CERTID_MAX_CHAIN];
    size_t len[CERTID_MAX_CHAIN];
    size_t n;
};

struct front {
    const struct session_info *si; /* points at si_own */
    struct session_info si_own;    /* the front's copy: PROXY may name the real client */
    struct cidr proxy_trusted[64];
    struct pasv_rule pasv_rules[PASV_RULES_MAX]; /* pasv_address, names resolved at start */
    struct in_addr pasv_addr[PASV_RULES_MAX];
    bool pasv_ok[PASV_RULES_MAX];
    int npasv;
    struct proxy_policy proxy;
    const struct config *cfg;
    struct ctlio ctl;
    SSL_CTX *ctx;     /* NULL when the certificate could not be loaded: AUTH answers 431 */
    SSL_CTX **vctx;   /* [host] sections with their own certificate: vctx[i-1], else NULL */
    unsigned vhost;   /* chosen by HOST or SNI: 0 the main configuration, i section i */
    bool host_given;  /* HOST chose vhost (the certificate follows it) */
    bool clnt_logged; /* CLNT's name is logged once per session */
    struct certchain cert_chain; /* the last verified client chain, for a resumed session */
    bool write_ok;               /* the login's write_enable, as the monitor settled it */
    uint64_t max_rate;           /* and its max_rate (anon_max_rate for anonymous FTP) */
    unsigned cert_vhost;         /* whose certificate the control connection uses */
    char sni[256];               /* server name the client sent, "" if none */
    int landlock_abi;
    char pending_temp[VPATH_MAX];     /* an upload's temporary file, until COMMIT/ABORT */
    char pending_reserved[VPATH_MAX]; /* and the empty file STOU made to hold its name */
    bool in_worker;       /* this copy runs in a data worker: the SNI callback must not switch */
    bool test_bad_worker; /* test builds: the next worker makes a forbidden system call */
    bool test_force_ktls; /* test builds: workers try kernel TLS whatever the kernel offers */
    char ctx_err[256];
    unsigned char sid_ctx[TLS_SID_CTX_LEN];
    int mon_fd;
    pid_t mon_pid;
    uint64_t *progress;       /* the running worker's byte count (see worker_args) */
    struct rlimit base_fsize; /* RLIMIT_FSIZE before any login (max_file_size) */
    int user_fd;

    bool tls;
    bool pbsz;
    bool prot_p;
    bool logged_in;
    bool have_user;
    bool anon; /* USER named the anonymous account and anonymous FTP is on */
    char user[256];
    char type; /* 'A' or 'I' */
    uint64_t rest;
    bool rnfr_ok;
    char rnfr[VPATH_MAX];
    unsigned mlst_facts;
    bool epsv_all;
    bool ccc_done;      /* CCC cleared TLS: PBSZ/PROT/AUTH are refused from now on */
    bool reuse_relaxed; /* after REIN, resumption is not required (RFC 4217 §13) */
    struct datachan dc;
    char **banners; /* banner_file texts, [0] main, [v] vhost v's; NULL: the banner line */

    int64_t login_deadline;
    int64_t last_command;
    struct msg *m;
    char *line;
    size_t line_cap;

    /* Commands read while a transfer runs, answered after it (ABOR and STAT are not queued). */
    char *queue[FRONT_QUEUE_MAX];
    size_t queue_len[FRONT_QUEUE_MAX];
    int queued;
};

_Noreturn void front_main(const struct session_info *si, int mon_fd);
/* The file size limit of the logged-in user's PAM session (pam_limits' fsize) binds the front
 * and its workers, which write the uploads: the lower of it and max_file_size. */
void front_user_fsize(struct front *f, uint64_t fsize);
/* After SIGTERM (a shutdown, or the monitor's death): 421, close_notify, exit. Called where
 * the front waits; returns if there was none. */
void front_check_term(struct front *f);
int front_wait(struct front *f, struct pollfd *p, nfds_t n, int timeout_ms);

/* The 220 greeting for vhost v: its banner_file's text, else its banner line. */
void front_greet(struct front *f, unsigned v);

/* Reply helpers: a failed write to the client ends the session. */
void front_reply(struct front *f, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void front_reply_multi(struct front *f, int code, const char *text);
void front_reply_dashed(struct front *f, int code, const char *text);
_Noreturn void front_exit(struct front *f, int status);

/* Runs one command line (verb and argument). */
void front_dispatch(struct front *f, char *line, size_t len);

/* A reply from the user process. */
struct ureply {
    int code;
    struct sbuf text;
    uint64_t value;
    char name[VPATH_MAX];
    int fd;
};
void ureply_init(struct ureply *r);
void ureply_free(struct ureply *r);
/* Sends one request to the user process and waits for its reply; ends the session if the user
 * process is gone. */
void front_user_request(struct front *f, uint32_t op, uint32_t flags, uint64_t offset,
                        const char *arg, const char *arg2, struct ureply *out);
/* Sends the user process's reply text to the client. */
void front_relay_reply(struct front *f, const struct ureply *r);
/* The address PASV announces to this client (pasv_address rules); false: the local one. */
bool front_pasv_address(const struct front *f, struct in_addr *out);
/* Puts the control TLS and the PROT level into the structured log fields. */
void front_set_prot_log(struct front *f);
/* The TLS context that serves vhost v (its own certificate, else the main one). */
SSL_CTX *front_ctx_for(const struct front *f, unsigned v);
/* A new SSL for the control connection, with this session's id context and vhost. */
SSL *front_new_ctl_ssl(struct front *f);

/* Transfers (xfer.c). */
enum xfer_kind { XK_RETR, XK_STOR, XK_APPE, XK_LIST, XK_NLST, XK_MLSD, XK_STOU };
void xfer_run(struct front *f, enum xfer_kind kind, const char *arg);
/* Accepts a pending data connection and starts its worker (called from the idle loop). */
void xfer_accept_ready(struct front *f);
/* The session must end mid-transfer (code, why): the transfer is recorded as it stands, with
 * the bytes moved so far (an incomplete xferlog entry). Nothing when none is under way. */
void xfer_interrupted(struct front *f, int code, const char *why);
/* Handles one line read while a transfer is running: 1 if it was ABOR. */
int xfer_handle_async_line(struct front *f, char *line, size_t len, const char *what);

#endif
