/* SPDX-License-Identifier: Apache-2.0
 *
 * Maps and helpers shared by sock.bpf.c and tls.bpf.c (bcc dialect). Only pt_regs, BPF helpers,
 * tracepoint arguments and user-space ABI structs are touched: the kernel headers this is
 * compiled against may come from a different kernel build, so nothing here may depend on the
 * layout of a kernel-internal struct.
 */
#ifndef QF_COMMON_BPF_H
#define QF_COMMON_BPF_H
#include <uapi/linux/ptrace.h>
#include "events.h"

#define QF_AF_UNIX 1
#define QF_AF_INET 2
#define QF_AF_INET6 10
#define QF_SOCK_STREAM 1
#define QF_EINPROGRESS 115

/* qf_sock.flags */
#define QF_SOCK_SKIP 1   /* filtered out: never emit data for it */
#define QF_SOCK_TLS 2    /* bytes on it are TLS records: plaintext comes from the uprobes */
#define QF_SOCK_PLAIN 4  /* plaintext has been emitted: stop sniffing for TLS records */

/* socket() results, so connect() on a UDP socket is not tracked as a connection */
#define QF_SOCKTYPE_STREAM 1
#define QF_SOCKTYPE_OTHER 2

struct qf_sock {
    u64 id;
    u8 origin;
    u8 flags;
};

/* Arguments saved at sys_enter_* for the matching sys_exit_* (keyed by thread id). */
struct qf_sys_args {
    u64 buf;   /* data buffer, iovec array, user_msghdr or sockaddr */
    u64 aux;   /* iovec count, or the accept() addrlen pointer */
    s32 fd;
    u8 kind;   /* QF_SYS_* */
    u8 has_local;
    u16 lport;        /* connect(): our port, from sock:inet_sock_set_state (host order) */
    u16 lfamily;
    u64 skaddr;       /* connect(): the struct sock *, only ever used as a map key */
    u8 laddr[16];     /* connect(): our address, v4 in the first 4 bytes */
};

/* The local end of a connection the kernel just established for a listener, keyed by the
 * peer (v4 as ::ffff:a.b.c.d), so accept() can learn it from the peer address it returns. */
struct qf_peer_key {
    u8 addr[16];
    u16 port;
    u16 pad[3];
};
struct qf_local {
    u8 addr[16];
    u16 port;
    u16 pad[3];
};
#define QF_SYS_READ 1
#define QF_SYS_WRITE 2
#define QF_SYS_READV 3
#define QF_SYS_WRITEV 4
#define QF_SYS_RECVMSG 5
#define QF_SYS_SENDMSG 6
#define QF_SYS_CONNECT 7
#define QF_SYS_ACCEPT 8
#define QF_SYS_SOCKET 9

/* A TLS library call in progress on a thread. */
struct qf_tls_call {
    u64 ptr;    /* SSL * / gnutls_session_t */
    u64 buf;
    u64 outlen; /* size_t * of the _ex forms, 0 otherwise */
    s32 fd;     /* learned from a syscall made inside the call, -1 until then */
    u8 op;      /* QF_OP_* */
    u8 source;  /* QF_SRC_* */
};
#define QF_OP_READ 1
#define QF_OP_WRITE 2
#define QF_OP_OTHER 3  /* handshake/shutdown: syscalls inside carry TLS records, not data */

struct qf_ptr_key {
    u32 pid;
    u32 pad;
    u64 ptr;
};

#ifdef QF_USE_PERFBUF
BPF_PERF_OUTPUT(qf_events);
#else
BPF_RINGBUF_OUTPUT(qf_events, QF_RINGBUF_PAGES);
#endif

BPF_PERCPU_ARRAY(qf_scratch, struct qf_data_event, 1);
BPF_PERCPU_ARRAY(qf_counters, u64, QF_CNT_MAX);
BPF_ARRAY(qf_next_id, u64, 1);
/* Keyed by (pid << 32 | fd). LRU: a process that exits never calls close() on its fds. */
BPF_TABLE("lru_hash", u64, struct qf_sock, qf_socks, 65536);
BPF_TABLE("lru_hash", u64, u8, qf_socktype, 65536);
BPF_HASH(qf_sys, u32, struct qf_sys_args, 16384);
BPF_TABLE("lru_hash", struct qf_peer_key, struct qf_local, qf_peer_local, 16384);
/* connect()ed sockets whose handshake had not finished when connect() returned (non-blocking,
 * or any non-loopback peer): struct sock * -> qf_sock.id, to report our port later. */
BPF_TABLE("lru_hash", u64, u64, qf_sk_pending, 16384);
BPF_HASH(qf_tls_active, u32, struct qf_tls_call, 16384);
BPF_TABLE("lru_hash", struct qf_ptr_key, s32, qf_tls_fd, 65536);
/* Processes whose traffic is never looked at (the agent itself, Fluent Bit, policy). */
BPF_HASH(qf_skip_pids, u32, u8, 4096);
/* With -DQF_ONLY_PIDS: the only processes looked at (tests, benchmarks, --pid), and every
 * process they fork after capture started (sock.bpf.c, sched_process_fork). */
BPF_HASH(qf_only_pids, u32, u8, 4096);
BPF_TABLE("lru_hash", u32, u8, qf_only_kids, 65536);

/* Checked where a connection or a TLS call starts; later syscalls find no state and stop. */
static __always_inline int qf_skipped_pid(u32 pid)
{
#ifdef QF_ONLY_PIDS
    if (!qf_only_pids.lookup(&pid) && !qf_only_kids.lookup(&pid))
        return 1;
#endif
    return qf_skip_pids.lookup(&pid) != 0;
}

static __always_inline void qf_count(u32 idx)
{
    u64 *v = qf_counters.lookup(&idx);
    if (v)
        *v += 1;
}

static __always_inline u64 qf_key(u32 pid, s32 fd)
{
    return ((u64)pid << 32) | (u32)fd;
}

#ifndef QF_WAKEUP_EVERY
#define QF_WAKEUP_EVERY 64
#endif
#define QF_RB_NO_WAKEUP 1     /* BPF_RB_NO_WAKEUP */
#define QF_RB_FORCE_WAKEUP 2  /* BPF_RB_FORCE_WAKEUP */
BPF_PERCPU_ARRAY(qf_wakeup, u64, 1);

static __always_inline int qf_submit(void *ctx, void *ev, u64 size)
{
#ifdef QF_USE_PERFBUF
    if (qf_events.perf_submit(ctx, ev, size) != 0)
        qf_count(QF_CNT_RB_FULL);
#else
    /* Waking the reader for every record costs the traced thread an irq_work and a context
     * switch per call; wake it every QF_WAKEUP_EVERY records per CPU instead. The reader
     * also drains on its own poll timeout, so nothing waits longer than that. */
    u64 flags = QF_RB_NO_WAKEUP;
    u32 zero = 0;
    u64 *n = qf_wakeup.lookup(&zero);
    if (n) {
        *n += 1;
        if (*n % QF_WAKEUP_EVERY == 0)
            flags = QF_RB_FORCE_WAKEUP;
    }
    if (qf_events.ringbuf_output(ev, size, flags) != 0)
        qf_count(QF_CNT_RB_FULL);
#endif
    return 0;
}

static __always_inline void qf_fill_hdr(struct qf_hdr *h, u32 kind, s32 fd)
{
    u64 pt = bpf_get_current_pid_tgid();
    h->kind = kind;
    h->pid = pt >> 32;
    h->tid = (u32)pt;
    h->fd = fd;
    h->ts_ns = bpf_ktime_get_ns();
}

/* Copy `len` bytes at user address `buf` into up to `chunks` data records (a constant at every
 * call site: the loop is unrolled). The last record's real_len also counts every byte after
 * it, so truncation is explicit. buf == 0 emits one empty record that only counts `len`. */
static __always_inline void qf_emit_data(void *ctx, s32 fd, u64 sock_id, u64 tls_ptr,
                                         u64 buf, u64 len, u8 dir, u8 source, const int chunks)
{
    u32 zero = 0;
    struct qf_data_event *e = qf_scratch.lookup(&zero);
    if (!e)
        return;
    qf_fill_hdr(&e->h, QF_EV_DATA, fd);
    e->sock_id = sock_id;
    e->tls_ptr = tls_ptr;
    e->direction = dir;
    e->source = source;
#pragma unroll
    for (int i = 0; i < chunks; i++) {
        u64 off = (u64)i * QF_MAX_DATA;
        if (off >= len)
            break;
        u64 rest = len - off;
        u64 n = buf ? rest : 0;
        /* Bound n so the verifier sees it: clang would drop a second identical compare, so
         * hide the value from it first (the "bounded in a way clang cannot optimise away"). */
        asm volatile("" : "+r"(n));
        if (n > QF_MAX_DATA)
            n = QF_MAX_DATA;
        asm volatile("" : "+r"(n));
        n &= (QF_MAX_DATA << 1) - 1;
        if (n > QF_MAX_DATA)
            n = QF_MAX_DATA;
        if (n && bpf_probe_read_user(e->data, n, (void *)(buf + off)) != 0)
            n = 0;
        e->cap_len = n;
        e->real_len = (i == chunks - 1) ? rest : n;
        if (i == chunks - 1 && rest > n)
            qf_count(QF_CNT_TRUNCATED);
        qf_submit(ctx, e, offsetof(struct qf_data_event, data) + n);
    }
}

#endif /* QF_COMMON_BPF_H */
