/* SPDX-License-Identifier: Apache-2.0
 *
 * The records the BPF programs put in the ring buffer: the one contract between the kernel side
 * (sock.bpf.c, tls.bpf.c) and decode.py, which mirrors every layout here with `struct`.
 * Change both together; tests/bpf/test_bpf_decode.py compiles this header with the host C
 * compiler and checks every size and offset decode.py assumes.
 *
 * All records start with struct qf_hdr. Integers are host order (x86-64: little-endian); ports
 * are host order too (converted from the sockaddr), addresses stay in network order.
 *
 * Compile-time options (passed with -D by options.py, never templated into the text):
 *   QF_MAX_DATA        bytes copied per data record (power of two; default 16384)
 *   QF_MAX_CHUNKS      records one call may produce before the rest is counted as truncated
 *   QF_MAX_IOV         iovec entries looked at per readv/writev/sendmsg/recvmsg
 *   QF_MAX_IOV_CHUNKS  records per iovec entry
 *   QF_WAKEUP_EVERY    ring-buffer records per CPU between reader wake-ups
 *   QF_USE_PERFBUF     use a perf buffer instead of the ring buffer (kernels before 5.8)
 *   QF_IGNORE_LOOPBACK do not track connections whose peer is 127.0.0.0/8 or ::1
 *   QF_DIRECTION       0 all, 1 egress only (connect), 2 ingress only (accept)
 *   QF_ONLY_PIDS       look only at the processes in the map qf_only_pids
 * The kernel here takes at most 4096 instructions per program (the loader is not bpf_capable
 * in the init namespace) and every chunk is unrolled: options.py bounds QF_MAX_CHUNKS and
 * QF_MAX_IOV * QF_MAX_IOV_CHUNKS by what was measured to load.
 */
#ifndef QF_EVENTS_H
#define QF_EVENTS_H

#ifndef QF_MAX_DATA
#define QF_MAX_DATA 16384
#endif
#ifndef QF_MAX_CHUNKS
#define QF_MAX_CHUNKS 16
#endif
#ifndef QF_MAX_IOV
#define QF_MAX_IOV 8
#endif
#ifndef QF_MAX_IOV_CHUNKS
#define QF_MAX_IOV_CHUNKS 2
#endif
#ifndef QF_DIRECTION
#define QF_DIRECTION 0
#endif

#define QF_EXE_LEN 256
#define QF_SNI_LEN 256 /* a DNS name is at most 253 characters (RFC 1035 §2.3.4) */

/* qf_hdr.kind */
#define QF_EV_DATA 1
#define QF_EV_SOCK 2  /* a connection was established (connect/accept) */
#define QF_EV_CLOSE 3
#define QF_EV_EXEC 4
#define QF_EV_EXIT 5
#define QF_EV_LOCAL 6 /* our end of a connect()ed socket, learned after connect() returned */
#define QF_EV_SNI 7   /* the server name a TLS client asked for (RFC 6066 §3) */

/* qf_data_event.direction */
#define QF_DIR_OUT 0
#define QF_DIR_IN 1

/* qf_data_event.source: which hook saw the bytes */
#define QF_SRC_SYSCALL 0
#define QF_SRC_OPENSSL 1
#define QF_SRC_GNUTLS 2

/* qf_sock_event.origin */
#define QF_ORIGIN_CONNECT 1
#define QF_ORIGIN_ACCEPT 2

/* Kernel-side counters (per-CPU array qf_counters, index) */
#define QF_CNT_RB_FULL 0       /* ring buffer had no room: record dropped */
#define QF_CNT_FILTERED 1      /* connection not tracked because of a filter */
#define QF_CNT_TRUNCATED 2     /* calls larger than QF_MAX_DATA * QF_MAX_CHUNKS */
#define QF_CNT_TLS_NO_FD 3     /* TLS data whose socket fd was never learned */
#define QF_CNT_TLS_SKIPPED 4   /* syscall data skipped because it was TLS records */
#define QF_CNT_MAX 5

struct qf_hdr {
    __u32 kind;
    __u32 pid;   /* thread group id: what user space calls the pid */
    __u32 tid;
    __s32 fd;    /* -1 when unknown */
    __u64 ts_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
};                                   /* 24 bytes */

struct qf_data_event {
    struct qf_hdr h;
    __u64 sock_id;  /* qf_sock.id of the connection, 0 when the fd is not tracked */
    __u64 tls_ptr;  /* SSL * or gnutls_session_t; 0 for plaintext syscalls */
    __u32 real_len; /* bytes the call moved that this record accounts for */
    __u32 cap_len;  /* bytes present in data[] (<= real_len) */
    __u8 direction;
    __u8 source;
    __u8 pad[6];
    __u8 data[QF_MAX_DATA];
};                                   /* 56 + QF_MAX_DATA bytes */

struct qf_sock_event {
    struct qf_hdr h;
    __u64 sock_id;
    __u16 family;  /* AF_INET, AF_INET6, or 0 when accept() did not ask for the address */
    __u16 rport;   /* the peer's port, host order */
    __u16 lport;   /* our port, host order; 0 when unknown */
    __u8 origin;
    __u8 has_local;
    __u8 raddr[16]; /* the peer: 4 bytes for AF_INET, 16 for AF_INET6 */
    __u8 laddr[16]; /* ours, same family; from sock:inet_sock_set_state */
};                                   /* 72 bytes */

struct qf_close_event {
    struct qf_hdr h;
    __u64 sock_id;
};                                   /* 32 bytes */

struct qf_exec_event {
    struct qf_hdr h;
    char filename[QF_EXE_LEN];       /* as passed to execve() */
};                                   /* 280 bytes */

struct qf_local_event {
    struct qf_hdr h;
    __u64 sock_id;
    __u16 family;
    __u16 lport;   /* host order */
    __u8 pad[4];
    __u8 laddr[16];
};                                   /* 56 bytes */

/* SSL_set_tlsext_host_name (OpenSSL: SSL_ctrl cmd 55), gnutls_server_name_set. */
struct qf_sni_event {
    struct qf_hdr h;
    __u64 tls_ptr;                   /* the SSL * / gnutls_session_t it was set on */
    char name[QF_SNI_LEN];           /* NUL-terminated */
};                                   /* 288 bytes */

/* QF_EV_EXIT is a bare struct qf_hdr. */

#endif /* QF_EVENTS_H */
