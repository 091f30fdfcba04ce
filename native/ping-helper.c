/*
 * vmnet-ping-helper: ICMP echo through Linux ping sockets, for vmnet's gateway.
 *
 * Theory of operation
 *
 * Node has no ICMP sockets, so the gateway spawns this helper once (at the
 * first guest ping to the outside) and talks to it over its stdin/stdout
 * pipes. The helper owns one unprivileged ICMP datagram socket ("ping
 * socket": socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), or AF_INET6 with
 * IPPROTO_ICMPV6) per flow the gateway opens, connected to the flow's
 * destination. The kernel allows such sockets only to the groups in
 * net.ipv4.ping_group_range (for both families); socket() fails with EACCES
 * otherwise, and the helper reports exactly that.
 *
 * What it can send: echo requests only. A ping socket lets nothing else out:
 * the kernel accepts only type 8 code 0 (ICMPv6: 128, 0), recomputes the
 * checksum, replaces the identifier with the socket's own number (its
 * "port") and builds the IP header itself; it delivers to the socket only
 * echo replies carrying that identifier, plus ICMP errors about the socket's
 * own requests (IP_RECVERR). The helper checks the type and code as well, and
 * opens no other kind of socket. It needs no privilege and keeps none.
 *
 * Protocol (all integers big-endian). Each message is
 *     u32 length (of what follows), u8 type, body
 * From the gateway:
 *     OPEN  1  u32 flow, u8 family (4|6), u8 ttl, addr[4|16]
 *     SEND  2  u32 flow, u8 ttl, ICMP message (echo request, >= 8 bytes)
 *     CLOSE 3  u32 flow
 * To the gateway:
 *     HELLO       0x80  u32 protocol version, u32 slots
 *     OPENED      0x81  u32 flow, u16 identifier the kernel gave the socket,
 *                       u8 family, addr[4|16] the local address it sends from
 *     OPEN_FAILED 0x82  u32 flow, u32 errno
 *     REPLY       0x83  u32 flow, u8 family, u8 ttl (0: unknown), addr[4|16]
 *                       source, ICMP message (the echo reply as received)
 *     ICMP_ERROR  0x84  u32 flow, u8 family, u8 origin (SO_EE_ORIGIN_*),
 *                       u8 type, u8 code, u32 info, addr[4|16] offender
 *                       (zeros: none), first bytes (<= 64) of the request it
 *                       is about, as the kernel sent it
 *     SEND_FAILED 0x85  u32 flow, u32 errno
 * A flow id is opaque to the helper except that its low 12 bits pick the
 * slot (so at most 4096 flows at once); the gateway adds a generation above
 * them, so a late message about a closed flow can never be taken for the
 * flow that reuses its slot. Messages are handled in order: the gateway may
 * SEND right after OPEN without waiting for OPENED.
 *
 * Bounds: 4096 sockets (the soft RLIMIT_NOFILE is raised to fit when the hard
 * limit allows; beyond it OPEN fails with EMFILE); a message is at most 65,600
 * bytes (a larger length prefix is a protocol error: the helper exits 2, as it
 * does for an unknown message type); at most 64 datagrams are read from one
 * socket per wake-up, so one busy flow cannot starve the others. Writes to
 * stdout block: while the gateway is not reading, replies wait in the
 * sockets' receive buffers, where the kernel bounds (and drops) them.
 *
 * Life: it exits 0 when stdin closes (the gateway is gone), and asks the
 * kernel for SIGKILL when its parent dies. Errors that concern one flow go
 * back as messages; only a broken pipe or protocol ends the process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <time.h> /* before linux/errqueue.h, which uses struct timespec */
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define PROTOCOL_VERSION 1
#define SLOT_BITS 12
#define MAX_SLOTS (1u << SLOT_BITS)
#define MAX_BODY (65536 + 64)
#define STDIN_TAG 0xffffffffu
#define READS_PER_WAKE 64
#define QUOTE_MAX 64

enum {
  M_OPEN = 1,
  M_SEND = 2,
  M_CLOSE = 3,
  M_HELLO = 0x80,
  M_OPENED = 0x81,
  M_OPEN_FAILED = 0x82,
  M_REPLY = 0x83,
  M_ICMP_ERROR = 0x84,
  M_SEND_FAILED = 0x85,
};

struct slot {
  int fd;      /* -1 when free */
  uint32_t id; /* the gateway's flow id */
  int family;  /* 4 or 6 */
  int ttl;     /* TTL / hop limit last set on the socket */
};

static struct slot slots[MAX_SLOTS];
static int ep;
static uint8_t inbuf[2 * (MAX_BODY + 4)];
static size_t inlen;
static uint8_t rxbuf[65536 + 64];

static void die(const char *what) {
  fprintf(stderr, "vmnet-ping-helper: %s\n", what);
  exit(2);
}

static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

/* Writes a whole message: 4-byte length, the head (type and fixed fields), then data. */
static void emit(const uint8_t *head, size_t headlen, const uint8_t *data, size_t datalen) {
  uint8_t len[4];
  put32(len, (uint32_t)(headlen + datalen));
  struct iovec iov[3] = {{len, 4}, {(void *)head, headlen}, {(void *)data, datalen}};
  int n = datalen > 0 ? 3 : 2;
  struct iovec *v = iov;
  while (n > 0) {
    ssize_t w = writev(1, v, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      exit(0); /* the gateway is gone */
    }
    while (n > 0 && (size_t)w >= v->iov_len) {
      w -= v->iov_len;
      v++;
      n--;
    }
    if (n > 0) {
      v->iov_base = (uint8_t *)v->iov_base + w;
      v->iov_len -= w;
    }
  }
}

static void reply_errno(int type, uint32_t id, int err) {
  uint8_t m[9];
  m[0] = type;
  put32(m + 1, id);
  put32(m + 5, (uint32_t)err);
  emit(m, sizeof m, NULL, 0);
}

static struct slot *slot_of(uint32_t id) {
  struct slot *s = &slots[id & (MAX_SLOTS - 1)];
  return s->fd >= 0 && s->id == id ? s : NULL;
}

static int set_ttl(struct slot *s, int ttl) {
  if (ttl < 1 || ttl > 255) ttl = 64;
  if (ttl == s->ttl) return 0;
  int r = s->family == 4 ? setsockopt(s->fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl)
                         : setsockopt(s->fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl);
  if (r == 0) s->ttl = ttl;
  return r;
}

static void do_open(const uint8_t *b, size_t n) {
  if (n < 6) die("short OPEN");
  uint32_t id = get32(b);
  int family = b[4], ttl = b[5];
  size_t alen = family == 4 ? 4 : family == 6 ? 16 : 0;
  if (alen == 0 || n != 6 + alen) return reply_errno(M_OPEN_FAILED, id, EINVAL);
  struct slot *s = &slots[id & (MAX_SLOTS - 1)];
  if (s->fd >= 0) return reply_errno(M_OPEN_FAILED, id, EBUSY);
  int fd = family == 4 ? socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP)
                       : socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6);
  if (fd < 0) return reply_errno(M_OPEN_FAILED, id, errno);
  int one = 1, r;
  struct sockaddr_storage ss;
  socklen_t sl;
  memset(&ss, 0, sizeof ss);
  if (family == 4) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    memcpy(&a->sin_addr, b + 6, 4);
    sl = sizeof *a;
    r = setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one) | setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof one);
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    memcpy(&a->sin6_addr, b + 6, 16);
    sl = sizeof *a;
    r = setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one) | setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one);
  }
  s->fd = fd;
  s->id = id;
  s->family = family;
  s->ttl = -1;
  if (r != 0 || set_ttl(s, ttl) != 0 || connect(fd, (struct sockaddr *)&ss, sl) != 0) goto fail;
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = id & (MAX_SLOTS - 1)};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) goto fail;
  sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) goto fail;
  uint16_t ident = family == 4 ? ntohs(((struct sockaddr_in *)&ss)->sin_port) : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  uint8_t m[8 + 16];
  m[0] = M_OPENED;
  put32(m + 1, id);
  m[5] = ident >> 8;
  m[6] = ident & 0xff;
  m[7] = family;
  if (family == 4) memcpy(m + 8, &((struct sockaddr_in *)&ss)->sin_addr, 4);
  else memcpy(m + 8, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
  emit(m, 8 + alen, NULL, 0);
  return;
fail:;
  int err = errno;
  close(fd);
  s->fd = -1;
  reply_errno(M_OPEN_FAILED, id, err);
}

static void do_send(const uint8_t *b, size_t n) {
  if (n < 5) die("short SEND");
  uint32_t id = get32(b);
  struct slot *s = slot_of(id);
  if (!s) return reply_errno(M_SEND_FAILED, id, EBADF);
  const uint8_t *msg = b + 5;
  size_t len = n - 5;
  uint8_t echo = s->family == 4 ? 8 : 128;
  if (len < 8 || msg[0] != echo || msg[1] != 0) return reply_errno(M_SEND_FAILED, id, EINVAL);
  if (set_ttl(s, b[4]) != 0) return reply_errno(M_SEND_FAILED, id, errno);
  if (send(s->fd, msg, len, 0) < 0) reply_errno(M_SEND_FAILED, id, errno);
}

static void do_close(const uint8_t *b, size_t n) {
  if (n != 4) die("bad CLOSE");
  struct slot *s = slot_of(get32(b));
  if (!s) return;
  close(s->fd);
  s->fd = -1;
}

static void handle(const uint8_t *m, size_t n) {
  switch (m[0]) {
  case M_OPEN: return do_open(m + 1, n - 1);
  case M_SEND: return do_send(m + 1, n - 1);
  case M_CLOSE: return do_close(m + 1, n - 1);
  default: die("unknown message type");
  }
}

static void read_stdin(void) {
  ssize_t r = read(0, inbuf + inlen, sizeof inbuf - inlen);
  if (r == 0) exit(0);
  if (r < 0) {
    if (errno == EINTR || errno == EAGAIN) return;
    exit(0);
  }
  inlen += (size_t)r;
  size_t off = 0;
  while (inlen - off >= 4) {
    uint32_t len = get32(inbuf + off);
    if (len == 0 || len > MAX_BODY) die("bad message length");
    if (inlen - off - 4 < len) break;
    handle(inbuf + off + 4, len);
    off += 4 + len;
  }
  memmove(inbuf, inbuf + off, inlen - off);
  inlen -= off;
}

/* Reads echo replies (and, on EPOLLERR, queued ICMP errors) from one socket. */
static void read_socket(struct slot *s, int errq) {
  size_t alen = s->family == 4 ? 4 : 16;
  for (int i = 0; i < READS_PER_WAKE; i++) {
    struct sockaddr_storage from;
    uint8_t ctl[512];
    struct iovec iov = {rxbuf, sizeof rxbuf};
    struct msghdr mh = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    ssize_t n = recvmsg(s->fd, &mh, errq ? MSG_ERRQUEUE : 0);
    if (n < 0) return; /* EAGAIN, or a pending socket error (reported through the error queue) */
    uint8_t head[6 + 8 + 16];
    put32(head + 1, s->id);
    head[5] = s->family;
    if (!errq) {
      int ttl = 0;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) || (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)) memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
      head[0] = M_REPLY;
      head[6] = ttl > 0 && ttl < 256 ? ttl : 0;
      if (s->family == 4) memcpy(head + 7, &((struct sockaddr_in *)&from)->sin_addr, 4);
      else memcpy(head + 7, &((struct sockaddr_in6 *)&from)->sin6_addr, 16);
      emit(head, 7 + alen, rxbuf, (size_t)n);
      continue;
    }
    struct sock_extended_err *ee = NULL;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
      if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) || (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR)) ee = (struct sock_extended_err *)CMSG_DATA(c);
    if (!ee) continue;
    head[0] = M_ICMP_ERROR;
    head[6] = ee->ee_origin;
    head[7] = ee->ee_type;
    head[8] = ee->ee_code;
    put32(head + 9, ee->ee_info);
    memset(head + 13, 0, alen);
    struct sockaddr *off = SO_EE_OFFENDER(ee);
    if (s->family == 4 && off->sa_family == AF_INET) memcpy(head + 13, &((struct sockaddr_in *)off)->sin_addr, 4);
    if (s->family == 6 && off->sa_family == AF_INET6) memcpy(head + 13, &((struct sockaddr_in6 *)off)->sin6_addr, 16);
    emit(head, 13 + alen, rxbuf, (size_t)n < QUOTE_MAX ? (size_t)n : QUOTE_MAX);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 0; /* the parent died before prctl */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < MAX_SLOTS + 16) {
    rl.rlim_cur = rl.rlim_max < MAX_SLOTS + 16 ? rl.rlim_max : MAX_SLOTS + 16;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  for (unsigned i = 0; i < MAX_SLOTS; i++) slots[i].fd = -1;
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1 failed");
  struct epoll_event in = {.events = EPOLLIN, .data.u32 = STDIN_TAG};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in) != 0) die("stdin cannot be polled");
  uint8_t hello[9];
  hello[0] = M_HELLO;
  put32(hello + 1, PROTOCOL_VERSION);
  put32(hello + 5, MAX_SLOTS);
  emit(hello, sizeof hello, NULL, 0);
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(ep, evs, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait failed");
    }
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u32 == STDIN_TAG) {
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_stdin();
        continue;
      }
      struct slot *s = &slots[evs[i].data.u32];
      if (s->fd < 0) continue; /* closed by an earlier message in this batch */
      if (evs[i].events & EPOLLERR) read_socket(s, 1);
      if (evs[i].events & EPOLLIN) read_socket(s, 0);
    }
  }
}
