/* CPU features that decide the TLS cipher order (tls.c). Read with cpuid / the auxiliary
 * vector: no system call, so it also works inside the sandbox. */
#include "cpuaes.h"

#include <stdlib.h>
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

bool cpu_has_aes(void)
{
#ifdef FTPSD_TEST_HOOKS
    /* The tests see, on their AES-capable machine, the order for a CPU without it. */
    if (getenv("FTPSD_TEST_NO_AES"))
        return false;
#endif
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
#elif defined(__aarch64__)
    unsigned long hw = getauxval(AT_HWCAP);
    return (hw & HWCAP_AES) && (hw & HWCAP_PMULL);
#else
    return true;
#endif
}
