/*
 * Kernel TLS: whether this kernel offers the "tls" upper-layer protocol, so that OpenSSL can hand
 * a data connection's keys to the kernel and SSL_sendfile() can send files without copying them
 * through user space.
 */
#include "ktls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * The kernel refuses the "tls" ULP on a socket that is not connected (ENOTCONN) only once it has
 * found it, loading the module on the way for a caller with CAP_NET_ADMIN (the monitor is root);
 * a kernel without it answers ENOENT. So an unconnected socket is enough to ask.
 */
bool ktls_probe(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    int r = setsockopt(s, SOL_TCP, TCP_ULP, "tls", sizeof "tls");
    int err = errno;
    close(s);
    return r == 0 || err == ENOTCONN;
}
