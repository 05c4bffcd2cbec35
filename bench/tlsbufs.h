/* The data connection's OpenSSL buffering that ftpsd's worker uses (src/worker.c), shared by
 * the bench's sender/receiver (tlspump.c) and FTP client (ftpsload.c) so that both run the
 * same data path: read-ahead into a buf-sized buffer (one read(2) brings many records) and,
 * with write_buffer, writes through a buf-sized buffering BIO (the 16 KiB records of one
 * SSL_write leave in a few large write(2) calls instead of one each; flush it before
 * SSL_shutdown). Without write_buffer every record is its own write(2). */
#ifndef BENCH_TLSBUFS_H
#define BENCH_TLSBUFS_H

#include <openssl/bio.h>
#include <openssl/ssl.h>

static inline void tls_bufs(SSL *ssl, int fd, size_t buf, int write_buffer)
{
    SSL_set_read_ahead(ssl, 1);
    SSL_set_default_read_buffer_len(ssl, buf);
    if (!write_buffer) {
        SSL_set_fd(ssl, fd);
        return;
    }
    BIO *rb = BIO_new_socket(fd, BIO_NOCLOSE);
    BIO *wb = BIO_new(BIO_f_buffer());
    BIO_set_write_buffer_size(wb, (long)buf);
    BIO_push(wb, rb);
    BIO_up_ref(rb); /* the read side and the write chain both own it */
    SSL_set_bio(ssl, rb, wb);
}

#endif
