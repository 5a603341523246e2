/* SPDX-License-Identifier: Apache-2.0
 *
 * Uprobes on TLS libraries: plaintext as the application hands it to / gets it from the
 * library. Entry probes remember the call per thread; return probes copy the bytes that were
 * really moved. Which symbol gets which program is the table in libs.py.
 *
 * OpenSSL 1.1/3.x and BoringSSL: SSL_write/SSL_read return int (bytes, or <= 0 on error), the
 * _ex forms return 1 and store the count through a size_t *. GnuTLS: gnutls_record_send/recv
 * return ssize_t. Return values are read as the C type they are: an int -1 is not 4294967295.
 */
#include "common.bpf.h"

static __always_inline int qf_tls_enter(u64 ptr, u64 buf, u64 outlen, u8 op, u8 source)
{
    u64 pt = bpf_get_current_pid_tgid();
    u32 tid = pt, pid = pt >> 32;
    if (qf_skipped_pid(pid))
        return 0;
    struct qf_tls_call *cur = qf_tls_active.lookup(&tid);
    if (cur)
        return 0;  /* nested (SSL_write doing an implicit handshake): the outer call owns it */
    struct qf_tls_call c = {};
    c.ptr = ptr;
    c.buf = buf;
    c.outlen = outlen;
    c.fd = -1;
    c.op = op;
    c.source = source;
    qf_tls_active.update(&tid, &c);
    return 0;
}

/* `moved` < 0 means the call failed and nothing is emitted. */
static __always_inline int qf_tls_exit(struct pt_regs *ctx, u8 op, long moved, int use_outlen)
{
    u64 pt = bpf_get_current_pid_tgid();
    u32 tid = pt, pid = pt >> 32;
    struct qf_tls_call *p = qf_tls_active.lookup(&tid);
    if (!p || p->op != op)
        return 0;  /* not ours: the return of a nested call */
    struct qf_tls_call c = *p;
    qf_tls_active.delete(&tid);
    if (op == QF_OP_OTHER)
        return 0;
    if (use_outlen) {
        if (moved != 1)
            return 0;
        u64 n = 0;
        if (bpf_probe_read_user(&n, sizeof(n), (void *)c.outlen) != 0)
            return 0;
        moved = n;
    }
    if (moved <= 0)
        return 0;
    s32 fd = c.fd;
    struct qf_ptr_key pk = {};
    pk.pid = pid;
    pk.ptr = c.ptr;
    if (fd < 0) {
        s32 *known = qf_tls_fd.lookup(&pk);
        if (known)
            fd = *known;
    }
    u64 sock_id = 0;
    if (fd >= 0) {
        u64 key = qf_key(pid, fd);
        struct qf_sock *s = qf_socks.lookup(&key);
        if (s) {
            if (s->flags & QF_SOCK_SKIP)
                return 0;
            s->flags |= QF_SOCK_TLS;
            sock_id = s->id;
        }
    } else {
        qf_count(QF_CNT_TLS_NO_FD);
    }
    qf_emit_data(ctx, fd, sock_id, c.ptr, c.buf, moved,
                 op == QF_OP_WRITE ? QF_DIR_OUT : QF_DIR_IN, c.source, QF_MAX_CHUNKS);
    return 0;
}

/* ---- OpenSSL / BoringSSL ---------------------------------------------------------------- */

int qf_ossl_write_enter(struct pt_regs *ctx)
{
    return qf_tls_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, QF_OP_WRITE, QF_SRC_OPENSSL);
}
int qf_ossl_write_return(struct pt_regs *ctx)
{
    return qf_tls_exit(ctx, QF_OP_WRITE, (int)PT_REGS_RC(ctx), 0);
}

int qf_ossl_read_enter(struct pt_regs *ctx)
{
    return qf_tls_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, QF_OP_READ, QF_SRC_OPENSSL);
}
int qf_ossl_read_return(struct pt_regs *ctx)
{
    return qf_tls_exit(ctx, QF_OP_READ, (int)PT_REGS_RC(ctx), 0);
}

/* int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written) */
int qf_ossl_write_ex_enter(struct pt_regs *ctx)
{
    return qf_tls_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx), QF_OP_WRITE,
                        QF_SRC_OPENSSL);
}
int qf_ossl_write_ex_return(struct pt_regs *ctx)
{
    return qf_tls_exit(ctx, QF_OP_WRITE, (int)PT_REGS_RC(ctx), 1);
}

/* int SSL_read_ex(SSL *s, void *buf, size_t num, size_t *readbytes) */
int qf_ossl_read_ex_enter(struct pt_regs *ctx)
{
    return qf_tls_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx), QF_OP_READ,
                        QF_SRC_OPENSSL);
}
int qf_ossl_read_ex_return(struct pt_regs *ctx)
{
    return qf_tls_exit(ctx, QF_OP_READ, (int)PT_REGS_RC(ctx), 1);
}

/* SSL_do_handshake / SSL_shutdown: the socket's bytes during these are TLS records. */
int qf_ossl_other_enter(struct pt_regs *ctx)
{
    return qf_tls_enter(PT_REGS_PARM1(ctx), 0, 0, QF_OP_OTHER, QF_SRC_OPENSSL);
}
int qf_ossl_other_return(struct pt_regs *ctx)
{
    return qf_tls_exit(ctx, QF_OP_OTHER, 0, 0);
}

/* int SSL_set_fd(SSL *s, int fd): the cheapest way to learn the socket of an SSL. */
int qf_ossl_set_fd_enter(struct pt_regs *ctx)
{
    u64 pt = bpf_get_current_pid_tgid();
    struct qf_ptr_key pk = {};
    pk.pid = pt >> 32;
    pk.ptr = PT_REGS_PARM1(ctx);
    s32 fd = (int)PT_REGS_PARM2(ctx);
    qf_tls_fd.update(&pk, &fd);
    u64 key = qf_key(pk.pid, fd);
    struct qf_sock *s = qf_socks.lookup(&key);
    if (s)
        s->flags |= QF_SOCK_TLS;
    return 0;
}

/* ---- server name (SNI, RFC 6066 §3): set once per connection, before its handshake ------- */

#define QF_SSL_CTRL_SET_TLSEXT_HOSTNAME 55  /* OpenSSL ssl.h */
#define QF_TLSEXT_NAMETYPE_host_name 0
#define QF_GNUTLS_NAME_DNS 1

/* Copy the name at `name` (NUL-terminated, or `len` bytes when len > 0) into an SNI record.
 * Built in the per-CPU scratch record: it is too big for the 512-byte BPF stack budget. */
static __always_inline int qf_emit_sni(struct pt_regs *ctx, u64 ptr, u64 name, u64 len)
{
    u64 pt = bpf_get_current_pid_tgid();
    if (!name || qf_skipped_pid(pt >> 32))
        return 0;
    u32 zero = 0;
    struct qf_sni_event *e = (struct qf_sni_event *)qf_scratch.lookup(&zero);
    if (!e)
        return 0;
    qf_fill_hdr(&e->h, QF_EV_SNI, -1);
    e->tls_ptr = ptr;
    if (len) {
        if (len > QF_SNI_LEN - 1)
            len = QF_SNI_LEN - 1;
        asm volatile("" : "+r"(len));  /* keep the bound visible to the verifier */
        len &= QF_SNI_LEN - 1;
        if (bpf_probe_read_user(e->name, len, (void *)name) != 0)
            return 0;
        e->name[len] = 0;
    } else if (bpf_probe_read_user_str(e->name, QF_SNI_LEN, (void *)name) <= 0) {
        return 0;
    }
    qf_submit(ctx, e, sizeof(*e));
    return 0;
}

/* long SSL_ctrl(SSL *s, int cmd, long larg, void *parg): OpenSSL's SSL_set_tlsext_host_name
 * is a macro for SSL_ctrl(s, 55, TLSEXT_NAMETYPE_host_name, name). SSL_ctrl serves many other
 * commands too, so the command is the first thing looked at. */
int qf_ossl_ctrl_enter(struct pt_regs *ctx)
{
    if ((int)PT_REGS_PARM2(ctx) != QF_SSL_CTRL_SET_TLSEXT_HOSTNAME ||
        PT_REGS_PARM3(ctx) != QF_TLSEXT_NAMETYPE_host_name)
        return 0;
    return qf_emit_sni(ctx, PT_REGS_PARM1(ctx), PT_REGS_PARM4(ctx), 0);
}

/* int SSL_set_tlsext_host_name(SSL *ssl, const char *name): a function in BoringSSL. */
int qf_ossl_set_sni_enter(struct pt_regs *ctx)
{
    return qf_emit_sni(ctx, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0);
}

/* int gnutls_server_name_set(gnutls_session_t session, gnutls_server_name_type_t type,
 *                            const void *name, size_t name_length): not NUL-terminated. */
int qf_gnutls_sni_enter(struct pt_regs *ctx)
{
    u64 len = PT_REGS_PARM4(ctx);
    if ((int)PT_REGS_PARM2(ctx) != QF_GNUTLS_NAME_DNS || len == 0)
        return 0;
    return qf_emit_sni(ctx, PT_REGS_PARM1(ctx), PT_REGS_PARM3(ctx), len);
}

/* ---- GnuTLS ----------------------------------------------------------------------------- */

/* ssize_t gnutls_record_send(gnutls_session_t session, const void *data, size_t data_size) */
int qf_gnutls_send_enter(struct pt_regs *ctx)
{
    return qf_tls_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, QF_OP_WRITE, QF_SRC_GNUTLS);
}
int qf_gnutls_send_return(struct pt_regs *ctx)
{
    return qf_tls_exit(ctx, QF_OP_WRITE, (long)PT_REGS_RC(ctx), 0);
}

int qf_gnutls_recv_enter(struct pt_regs *ctx)
{
    return qf_tls_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, QF_OP_READ, QF_SRC_GNUTLS);
}
int qf_gnutls_recv_return(struct pt_regs *ctx)
{
    return qf_tls_exit(ctx, QF_OP_READ, (long)PT_REGS_RC(ctx), 0);
}

/* gnutls_handshake / gnutls_bye */
int qf_gnutls_other_enter(struct pt_regs *ctx)
{
    return qf_tls_enter(PT_REGS_PARM1(ctx), 0, 0, QF_OP_OTHER, QF_SRC_GNUTLS);
}
int qf_gnutls_other_return(struct pt_regs *ctx)
{
    return qf_tls_exit(ctx, QF_OP_OTHER, 0, 0);
}
