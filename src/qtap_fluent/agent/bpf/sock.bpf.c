/* SPDX-License-Identifier: Apache-2.0
 *
 * Syscall and scheduler tracepoints: which fds are TCP connections (connect/accept), plaintext
 * bytes on them (read/write/readv/writev/sendto/recvfrom/sendmsg/recvmsg), their end (close),
 * and process identity (exec/exit). Tracepoints only: on the kernels this runs on kprobes and
 * fentry are unavailable, and tracepoint arguments are a stable ABI.
 */
#include "common.bpf.h"

static __always_inline void qf_save(u32 tid, u64 buf, u64 aux, s32 fd, u8 kind)
{
    struct qf_sys_args a = {};
    a.buf = buf;
    a.aux = aux;
    a.fd = fd;
    a.kind = kind;
    qf_sys.update(&tid, &a);
}

/* ---- which fds are TCP connections ------------------------------------------------------ */

TRACEPOINT_PROBE(syscalls, sys_enter_socket)
{
    u64 pt = bpf_get_current_pid_tgid();
    if (qf_skipped_pid(pt >> 32))
        return 0;
    qf_save((u32)pt, args->family, args->type, -1, QF_SYS_SOCKET);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_socket)
{
    u64 pt = bpf_get_current_pid_tgid();
    u32 tid = pt;
    struct qf_sys_args *a = qf_sys.lookup(&tid);
    if (!a)
        return 0;
    u64 family = a->buf, type = a->aux;
    u8 kind = a->kind;
    qf_sys.delete(&tid);
    if (kind != QF_SYS_SOCKET || args->ret < 0)
        return 0;
    u8 t = ((family == QF_AF_INET || family == QF_AF_INET6) && (type & 0xf) == QF_SOCK_STREAM)
               ? QF_SOCKTYPE_STREAM : QF_SOCKTYPE_OTHER;
    u64 key = qf_key(pt >> 32, (s32)args->ret);
    qf_socktype.update(&key, &t);
    return 0;
}

static __always_inline int qf_is_loopback(u16 family, const u8 *addr)
{
    if (family == QF_AF_INET)
        return addr[0] == 127;
    if (family == QF_AF_INET6) {
        u64 hi = *(u64 *)addr, lo = *(u64 *)(addr + 8);
        if (hi == 0 && lo == 0x0100000000000000ULL)  /* ::1 in network order on LE */
            return 1;
        /* ::ffff:127.x.y.z */
        return hi == 0 && (u32)lo == 0xffff0000U && addr[12] == 127;
    }
    return 0;
}

/* sock:inet_sock_set_state carries both ends of a TCP socket as stable tracepoint fields. */
#define QF_TCP_ESTABLISHED 1
#define QF_TCP_SYN_SENT 2
#define QF_TCP_SYN_RECV 3
#define QF_IPPROTO_TCP 6

static __always_inline void qf_v6_key(u8 *dst, u16 family, const u8 *v4, const u8 *v6)
{
    if (family == QF_AF_INET) {
        dst[10] = 0xff;  /* ::ffff:a.b.c.d, RFC 4291 §2.5.5.2 */
        dst[11] = 0xff;
        __builtin_memcpy(dst + 12, v4, 4);
    } else {
        __builtin_memcpy(dst, v6, 16);
    }
}

TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
    if (args->protocol != QF_IPPROTO_TCP)
        return 0;
    if (args->newstate == QF_TCP_SYN_SENT) {
        /* Runs inside connect(), before the local port is chosen: remember the socket. */
        u32 tid = bpf_get_current_pid_tgid();
        struct qf_sys_args *a = qf_sys.lookup(&tid);
        if (a && a->kind == QF_SYS_CONNECT)
            a->skaddr = (u64)args->skaddr;
        return 0;
    }
    if (args->newstate == QF_TCP_ESTABLISHED && args->oldstate == QF_TCP_SYN_SENT) {
        /* Client side: both ends are final now. Still inside connect() (loopback, or a
         * blocking connect woken on this CPU), or after it returned (qf_sk_pending). */
        u64 sk = (u64)args->skaddr;
        u32 tid = bpf_get_current_pid_tgid();
        struct qf_sys_args *a = qf_sys.lookup(&tid);
        if (a && a->kind == QF_SYS_CONNECT && a->skaddr == sk) {
            a->has_local = 1;
            a->lport = args->sport;
            a->lfamily = args->family;
            if (args->family == QF_AF_INET)
                __builtin_memcpy(a->laddr, args->saddr, 4);
            else
                __builtin_memcpy(a->laddr, args->saddr_v6, 16);
            return 0;
        }
        u64 *id = qf_sk_pending.lookup(&sk);
        if (!id)
            return 0;
        struct qf_local_event ev = {};
        qf_fill_hdr(&ev.h, QF_EV_LOCAL, -1);
        ev.sock_id = *id;
        ev.family = args->family;
        ev.lport = args->sport;
        if (args->family == QF_AF_INET)
            __builtin_memcpy(ev.laddr, args->saddr, 4);
        else
            __builtin_memcpy(ev.laddr, args->saddr_v6, 16);
        qf_sk_pending.delete(&sk);
        qf_submit(args, &ev, sizeof(ev));
        return 0;
    }
    if (args->newstate == QF_TCP_ESTABLISHED && args->oldstate == QF_TCP_SYN_RECV) {
        /* Server side, often in softirq (no useful pid): key by the peer for accept(). */
        struct qf_peer_key k = {};
        struct qf_local l = {};
        qf_v6_key(k.addr, args->family, args->daddr, args->daddr_v6);
        k.port = args->dport;
        if (args->family == QF_AF_INET)
            __builtin_memcpy(l.addr, args->saddr, 4);
        else
            __builtin_memcpy(l.addr, args->saddr_v6, 16);
        l.port = args->sport;
        qf_peer_local.update(&k, &l);
    }
    return 0;
}

/* A connection was established on fd: remember it, apply the in-kernel filters, tell user
 * space who the peer is. `sa` is the user's sockaddr (may be 0 after accept(fd, NULL, NULL)).
 * `c` carries our end for connect(); for accept() it is looked up by the peer. */
static __always_inline void qf_track(void *ctx, u32 pid, s32 fd, u64 sa, u8 origin,
                                     struct qf_sys_args *c)
{
    struct qf_sock_event ev = {};
    if (sa) {
        __be16 port = 0;
        bpf_probe_read_user(&ev.family, sizeof(ev.family), (void *)sa);
        if (ev.family != QF_AF_INET && ev.family != QF_AF_INET6)
            return;  /* AF_UNIX, AF_NETLINK, ...: not HTTP over TCP/IP */
        bpf_probe_read_user(&port, sizeof(port), (void *)(sa + 2));
        ev.rport = bpf_ntohs(port);
        if (ev.family == QF_AF_INET)
            bpf_probe_read_user(ev.raddr, 4, (void *)(sa + 4));   /* sockaddr_in.sin_addr */
        else
            bpf_probe_read_user(ev.raddr, 16, (void *)(sa + 8));  /* sockaddr_in6.sin6_addr */
    }
    u64 key = qf_key(pid, fd);
    u8 *st = qf_socktype.lookup(&key);
    if (st && *st == QF_SOCKTYPE_OTHER)
        return;  /* connect() on a UDP socket */

    struct qf_sock s = {};
    s.origin = origin;
#ifdef QF_IGNORE_LOOPBACK
    if (qf_is_loopback(ev.family, ev.raddr))
        s.flags |= QF_SOCK_SKIP;
#endif
#if QF_DIRECTION == 1
    if (origin != QF_ORIGIN_CONNECT)
        s.flags |= QF_SOCK_SKIP;
#elif QF_DIRECTION == 2
    if (origin != QF_ORIGIN_ACCEPT)
        s.flags |= QF_SOCK_SKIP;
#endif
    u32 zero = 0;
    u64 *next = qf_next_id.lookup(&zero);
    if (!next)
        return;
    s.id = __sync_fetch_and_add(next, 1) + 1;
    qf_socks.update(&key, &s);
    if (s.flags & QF_SOCK_SKIP) {
        qf_count(QF_CNT_FILTERED);
        return;
    }
    if (origin == QF_ORIGIN_CONNECT && c->has_local) {
        ev.has_local = 1;
        ev.lport = c->lport;
        __builtin_memcpy(ev.laddr, c->laddr, 16);
    } else if (origin == QF_ORIGIN_CONNECT && c->skaddr) {
        u64 sk = c->skaddr;
        qf_sk_pending.update(&sk, &s.id);
    } else if (origin == QF_ORIGIN_ACCEPT && ev.family) {
        struct qf_peer_key k = {};
        qf_v6_key(k.addr, ev.family, ev.raddr, ev.raddr);
        k.port = ev.rport;
        struct qf_local *l = qf_peer_local.lookup(&k);
        if (l) {
            ev.has_local = 1;
            ev.lport = l->port;
            __builtin_memcpy(ev.laddr, l->addr, 16);
            qf_peer_local.delete(&k);
        }
    }
    qf_fill_hdr(&ev.h, QF_EV_SOCK, fd);
    ev.sock_id = s.id;
    ev.origin = origin;
    qf_submit(ctx, &ev, sizeof(ev));
}

TRACEPOINT_PROBE(syscalls, sys_enter_connect)
{
    u64 pt = bpf_get_current_pid_tgid();
    if (qf_skipped_pid(pt >> 32))
        return 0;
    qf_save((u32)pt, (u64)args->uservaddr, 0, args->fd, QF_SYS_CONNECT);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_connect)
{
    u64 pt = bpf_get_current_pid_tgid();
    u32 tid = pt;
    struct qf_sys_args *a = qf_sys.lookup(&tid);
    if (!a)
        return 0;
    struct qf_sys_args c = *a;
    qf_sys.delete(&tid);
    /* A non-blocking connect() reports -EINPROGRESS and completes later. */
    if (c.kind == QF_SYS_CONNECT && (args->ret == 0 || args->ret == -QF_EINPROGRESS))
        qf_track(args, pt >> 32, c.fd, c.buf, QF_ORIGIN_CONNECT, &c);
    return 0;
}

static __always_inline int qf_accept_enter(s32 fd, u64 sa)
{
    u64 pt = bpf_get_current_pid_tgid();
    if (qf_skipped_pid(pt >> 32))
        return 0;
    u64 key = qf_key(pt >> 32, fd);
    u8 *st = qf_socktype.lookup(&key);
    if (st && *st == QF_SOCKTYPE_OTHER)
        return 0;  /* a unix-socket listener */
    qf_save((u32)pt, sa, 0, fd, QF_SYS_ACCEPT);
    return 0;
}

static __always_inline int qf_accept_exit(void *ctx, long ret)
{
    u64 pt = bpf_get_current_pid_tgid();
    u32 tid = pt;
    struct qf_sys_args *a = qf_sys.lookup(&tid);
    if (!a)
        return 0;
    struct qf_sys_args c = *a;
    qf_sys.delete(&tid);
    if (c.kind == QF_SYS_ACCEPT && ret >= 0)
        qf_track(ctx, pt >> 32, (s32)ret, c.buf, QF_ORIGIN_ACCEPT, &c);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_accept)
{
    return qf_accept_enter(args->fd, (u64)args->upeer_sockaddr);
}

TRACEPOINT_PROBE(syscalls, sys_exit_accept)
{
    return qf_accept_exit(args, args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_accept4)
{
    return qf_accept_enter(args->fd, (u64)args->upeer_sockaddr);
}

TRACEPOINT_PROBE(syscalls, sys_exit_accept4)
{
    return qf_accept_exit(args, args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_close)
{
    u64 pt = bpf_get_current_pid_tgid();
    u64 key = qf_key(pt >> 32, args->fd);
    struct qf_sock *s = qf_socks.lookup(&key);
    if (s) {
        if (!(s->flags & QF_SOCK_SKIP)) {
            struct qf_close_event ev = {};
            qf_fill_hdr(&ev.h, QF_EV_CLOSE, args->fd);
            ev.sock_id = s->id;
            qf_submit(args, &ev, sizeof(ev));
        }
        qf_socks.delete(&key);
    }
    qf_socktype.delete(&key);
    return 0;
}

/* ---- bytes on tracked connections ------------------------------------------------------- */

static __always_inline int qf_io_enter(s32 fd, u64 buf, u64 aux, u8 kind)
{
    u64 pt = bpf_get_current_pid_tgid();
    u32 tid = pt, pid = pt >> 32;
    u64 key = qf_key(pid, fd);
    struct qf_tls_call *call = qf_tls_active.lookup(&tid);
    if (call) {
        /* Inside SSL_read/SSL_write/handshake: on a TCP socket these bytes are TLS records;
         * the plaintext comes from the uprobe's return. Other fds (a handshake reading
         * /dev/urandom) are neither the connection nor data. */
        struct qf_sock *ts = qf_socks.lookup(&key);
        u8 *st = ts ? 0 : qf_socktype.lookup(&key);
        if (!ts && !(st && *st == QF_SOCKTYPE_STREAM))
            return 0;
        if (call->fd < 0) {
            call->fd = fd;
            struct qf_ptr_key pk = {};
            pk.pid = pid;
            pk.ptr = call->ptr;
            /* Every call on a keep-alive connection learns the same fd again: a lookup is
             * much cheaper than an LRU update (which takes the map's lock). */
            s32 *known = qf_tls_fd.lookup(&pk);
            if (!known || *known != fd)
                qf_tls_fd.update(&pk, &fd);
        }
        if (ts)
            ts->flags |= QF_SOCK_TLS;
        return 0;
    }
    struct qf_sock *s = qf_socks.lookup(&key);
    if (!s || (s->flags & (QF_SOCK_SKIP | QF_SOCK_TLS)))
        return 0;
    qf_save(tid, buf, aux, fd, kind);
    return 0;
}

/* First bytes of a connection that look like a TLS record (content type 20..24, major version
 * 3: RFC 8446 §5.1) mark it as TLS: a library we do not hook, or data before our probes. */
static __always_inline int qf_looks_tls(u64 buf)
{
    u8 b[2] = {};
    if (bpf_probe_read_user(b, sizeof(b), (void *)buf) != 0)
        return 0;
    return b[0] >= 20 && b[0] <= 24 && b[1] == 3;
}

static __always_inline void qf_emit_iov(void *ctx, s32 fd, u64 sock_id, u64 iov, u64 vlen,
                                        u64 total, u8 dir)
{
    u64 left = total;
    for (int i = 0; i < QF_MAX_IOV; i++) {
        if (i >= vlen || left == 0)
            break;
        u64 v[2] = {};  /* struct iovec { void *iov_base; size_t iov_len; } */
        if (bpf_probe_read_user(v, sizeof(v), (void *)(iov + 16 * i)) != 0)
            break;
        u64 n = v[1] < left ? v[1] : left;
        qf_emit_data(ctx, fd, sock_id, 0, v[0], n, dir, QF_SRC_SYSCALL, QF_MAX_IOV_CHUNKS);
        left -= n;
    }
    if (left > 0) {
        /* more iovecs than QF_MAX_IOV: say how many bytes were not seen */
        qf_count(QF_CNT_TRUNCATED);
        qf_emit_data(ctx, fd, sock_id, 0, 0, left, dir, QF_SRC_SYSCALL, 1);
    }
}

/* `vectored` is a constant at every call site, so each tracepoint program carries only the
 * path it needs: the kernel refuses programs over 4096 instructions here (not bpf_capable). */
static __always_inline int qf_io_exit(void *ctx, long ret, const int vectored)
{
    u64 pt = bpf_get_current_pid_tgid();
    u32 tid = pt;
    struct qf_sys_args *a = qf_sys.lookup(&tid);
    if (!a)
        return 0;
    struct qf_sys_args c = *a;
    qf_sys.delete(&tid);
    if (ret <= 0 || c.kind < QF_SYS_READ || c.kind > QF_SYS_SENDMSG)
        return 0;
    u64 key = qf_key(pt >> 32, c.fd);
    struct qf_sock *s = qf_socks.lookup(&key);
    if (!s)
        return 0;
    u64 sock_id = s->id;
    u8 dir = (c.kind & 1) ? QF_DIR_IN : QF_DIR_OUT;  /* odd QF_SYS_* are reads */
    u64 iov = c.buf, vlen = c.aux, first = c.buf;
    if (vectored) {
        if (c.kind == QF_SYS_RECVMSG || c.kind == QF_SYS_SENDMSG) {
            /* struct user_msghdr (x86-64): msg_iov at 16, msg_iovlen at 24 */
            u64 m[2] = {};
            if (bpf_probe_read_user(m, sizeof(m), (void *)(c.buf + 16)) != 0)
                return 0;
            iov = m[0];
            vlen = m[1];
        }
        if (bpf_probe_read_user(&first, sizeof(first), (void *)iov) != 0)
            return 0;
    }
    if (!(s->flags & QF_SOCK_PLAIN)) {
        if (qf_looks_tls(first)) {
            s->flags |= QF_SOCK_TLS;
            qf_count(QF_CNT_TLS_SKIPPED);
            return 0;
        }
        s->flags |= QF_SOCK_PLAIN;
    }
    if (vectored)
        qf_emit_iov(ctx, c.fd, sock_id, iov, vlen, ret, dir);
    else
        qf_emit_data(ctx, c.fd, sock_id, 0, c.buf, ret, dir, QF_SRC_SYSCALL, QF_MAX_CHUNKS);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_read)
{
    return qf_io_enter(args->fd, (u64)args->buf, 0, QF_SYS_READ);
}
TRACEPOINT_PROBE(syscalls, sys_exit_read) { return qf_io_exit(args, args->ret, 0); }

TRACEPOINT_PROBE(syscalls, sys_enter_write)
{
    return qf_io_enter(args->fd, (u64)args->buf, 0, QF_SYS_WRITE);
}
TRACEPOINT_PROBE(syscalls, sys_exit_write) { return qf_io_exit(args, args->ret, 0); }

TRACEPOINT_PROBE(syscalls, sys_enter_recvfrom)
{
    return qf_io_enter(args->fd, (u64)args->ubuf, 0, QF_SYS_READ);
}
TRACEPOINT_PROBE(syscalls, sys_exit_recvfrom) { return qf_io_exit(args, args->ret, 0); }

TRACEPOINT_PROBE(syscalls, sys_enter_sendto)
{
    return qf_io_enter(args->fd, (u64)args->buff, 0, QF_SYS_WRITE);
}
TRACEPOINT_PROBE(syscalls, sys_exit_sendto) { return qf_io_exit(args, args->ret, 0); }

TRACEPOINT_PROBE(syscalls, sys_enter_readv)
{
    return qf_io_enter(args->fd, (u64)args->vec, args->vlen, QF_SYS_READV);
}
TRACEPOINT_PROBE(syscalls, sys_exit_readv) { return qf_io_exit(args, args->ret, 1); }

TRACEPOINT_PROBE(syscalls, sys_enter_writev)
{
    return qf_io_enter(args->fd, (u64)args->vec, args->vlen, QF_SYS_WRITEV);
}
TRACEPOINT_PROBE(syscalls, sys_exit_writev) { return qf_io_exit(args, args->ret, 1); }

TRACEPOINT_PROBE(syscalls, sys_enter_recvmsg)
{
    return qf_io_enter(args->fd, (u64)args->msg, 0, QF_SYS_RECVMSG);
}
TRACEPOINT_PROBE(syscalls, sys_exit_recvmsg) { return qf_io_exit(args, args->ret, 1); }

TRACEPOINT_PROBE(syscalls, sys_enter_sendmsg)
{
    return qf_io_enter(args->fd, (u64)args->msg, 0, QF_SYS_SENDMSG);
}
TRACEPOINT_PROBE(syscalls, sys_exit_sendmsg) { return qf_io_exit(args, args->ret, 1); }

/* ---- process identity ------------------------------------------------------------------- */

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    struct qf_exec_event ev = {};
    qf_fill_hdr(&ev.h, QF_EV_EXEC, -1);
    /* /proc/PID/exe of a short-lived process may be gone when user space reads this. */
    TP_DATA_LOC_READ_STR(ev.filename, filename, sizeof(ev.filename));
    qf_submit(args, &ev, sizeof(ev));
    return 0;
}

#ifdef QF_ONLY_PIDS
TRACEPOINT_PROBE(sched, sched_process_fork)
{
    /* Runs in the parent. Its tgid, not args->parent_pid (the forking thread's id). A new
     * thread also passes here: its id is a harmless extra key in an LRU map. */
    u32 parent = bpf_get_current_pid_tgid() >> 32;
    if (!qf_only_pids.lookup(&parent) && !qf_only_kids.lookup(&parent))
        return 0;
    u32 child = args->child_pid;
    u8 one = 1;
    qf_only_kids.update(&child, &one);
    return 0;
}
#endif

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 pt = bpf_get_current_pid_tgid();
    if ((u32)pt != (u32)(pt >> 32))
        return 0;  /* a thread, not the whole process */
    struct qf_hdr ev = {};
    qf_fill_hdr(&ev, QF_EV_EXIT, -1);
    qf_submit(args, &ev, sizeof(ev));
    return 0;
}
