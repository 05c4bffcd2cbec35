/* Whether the CPU runs AES-GCM in hardware, for the order of the TLS ciphers. */
#ifndef FTPSD_CPUAES_H
#define FTPSD_CPUAES_H

#include <stdbool.h>

/* AES and carry-less multiply instructions (x86: AES-NI and PCLMULQDQ; arm64: AES and PMULL).
 * On other architectures: true, so that the configured order stays as it is. */
bool cpu_has_aes(void);

#endif
