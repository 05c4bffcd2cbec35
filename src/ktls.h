/* Kernel TLS (the "tls" upper-layer protocol) for PROT P data connections. */
#ifndef FTPSD_KTLS_H
#define FTPSD_KTLS_H

#include <stdbool.h>

/* Whether this kernel offers kernel TLS (loading its module if needed and allowed). */
bool ktls_probe(void);

#endif
