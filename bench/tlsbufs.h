/* The data connection's OpenSSL buffering that ftpsd's worker uses (src/worker.c), shared by
 * the bench's sender/receiver (tlspump.c) and FTP client (ftpsload.c) so that both run the
 * same data path: read-ahead into a read_buf-sized buffer (one read(2) brings many records)
 * and, when write_buf is not 0, writes through a write_buf-sized buffering BIO (the 16 KiB
 * records of SSL_writes leave in large write(2) calls instead of one each; flush it before
 * SSL_shutdown). With write_buf 0 every record is its own write(2). */
#ifndef BENCH_TLSBUFS_H
#define BENCH_TLSBUFS_H

#include <openssl/bio.h>
#include <openssl/ssl.h>

/* ftpsd's worker's sizes (src/worker.c: BUF_SIZE, SEND_BIO_SIZE): blocks and read-ahead, and
 * the buffering BIO under TLS writes. */
#define TLS_BLOCK (256 * 1024)
#define TLS_SEND_BUF (1024 * 1024)
/* ...and what one sendfile(2) call of a PROT C download asks for (SENDFILE_CHUNK): the whole
 * file, up to 1 GiB. */
#define SENDFILE_CHUNK (1 << 30)

static inline void tls_bufs(SSL *ssl, int fd, size_t read_buf, size_t write_buf)
{
    SSL_set_read_ahead(ssl, 1);
    SSL_set_default_read_buffer_len(ssl, read_buf);
    if (!write_buf) {
        SSL_set_fd(ssl, fd);
        return;
    }
    BIO *rb = BIO_new_socket(fd, BIO_NOCLOSE);
    BIO *wb = BIO_new(BIO_f_buffer());
    BIO_set_write_buffer_size(wb, (long)write_buf);
    BIO_push(wb, rb);
    BIO_up_ref(rb); /* the read side and the write chain both own it */
    SSL_set_bio(ssl, rb, wb);
}

#endif
