/* Requests the front sends to the user process (MSG_REQ op field). */
#ifndef FTPSD_UOPS_H
#define FTPSD_UOPS_H

enum uop {
    UOP_PWD = 1,
    UOP_CWD,
    UOP_CDUP,
    UOP_MKD,
    UOP_RMD,
    UOP_DELE,
    UOP_RNFR,
    UOP_RNTO, /* arg: new name, arg2: canonical old name from RNFR */
    UOP_SIZE,
    UOP_MDTM,
    UOP_MLST,
    UOP_OPEN_READ,  /* offset: REST */
    UOP_OPEN_WRITE, /* flags: UW_*; offset: REST */
    UOP_LIST,
    UOP_NLST,
    UOP_MLSD,
    UOP_COMMIT,    /* the pending upload succeeded */
    UOP_ABORT,     /* the pending upload failed: remove the temporary file */
    UOP_STAT,      /* STAT path: a listing on the control connection */
    UOP_CHMOD,     /* SITE CHMOD: offset = mode */
    UOP_UMASK,     /* SITE UMASK: arg = octal mask, or empty to show it */
    UOP_SETTIME,   /* MFMT / MDTM with a time: offset = seconds since the epoch */
    UOP_TEST_OPEN, /* test builds only (FTPSD_TEST_HOOKS): a plain open(2) of arg */
    UOP_MAX
};

/* flags of UOP_OPEN_WRITE */
#define UW_APPEND 1u
#define UW_UNIQUE 2u /* STOU: a new name, announced as "150 FILE: name" */

/* flags of every request: the transfer TYPE, so SIZE can refuse ASCII mode */
#define UF_ASCII 0x100u

#endif
