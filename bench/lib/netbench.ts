/**
 * Theory of operation: the bench's small TCP tools, in C so that the
 * measuring side costs far less than what it measures (a Node client would
 * add its own event-loop latency to every round trip). The source is kept
 * here as a string and built with `gcc -O2` into build/bench/netbench
 * (rebuilt when the source changes). HOST is an IPv4 or IPv6 literal.
 * One binary, seven modes:
 *
 *   netbench srv PORT             epoll server on [::]:PORT (IPv4 too): echoes whatever
 *                                 it reads, closes on EOF, holds idle sockets.
 *                                 A connection whose first byte is 'D' is a
 *                                 discard connection (its bytes are counted,
 *                                 not echoed); one whose first byte is 'S'
 *                                 gets the discarded-byte total as a decimal
 *                                 line and is closed
 *   netbench rr HOST PORT N       one connection, N round trips of 1 byte
 *                                 (TCP_NODELAY), after 200 warm-up trips;
 *                                 prints {"n","median_us","p99_us","mean_us"}
 *   netbench crr HOST PORT SECS   loop: connect, 1-byte echo, close (netperf's
 *                                 TCP_CRR); prints {"count","seconds","errors"}
 *   netbench hold HOST PORT N     opens N connections one after another, prints
 *                                 {"opened","failed","seconds"}, then holds them
 *                                 until stdin closes
 *   netbench xconn SOCK           unix stream listener that accepts two
 *                                 connections and splices their bytes both ways
 *                                 (two relays back to back: the relay baseline)
 *   netbench conc HOST PORT N SECS rr|bulk
 *                                 opens N connections (one after another), then
 *                                 for SECS drives all of them at once from one
 *                                 epoll loop: rr = each does 1-byte round trips
 *                                 back to back (every trip's time is a sample);
 *                                 bulk = each writes 64 KiB chunks into a
 *                                 discard connection, and the rate is the
 *                                 server's discarded-byte count over the run
 *                                 (what arrived, not what the guest buffered;
 *                                 the connections are reset at the end so
 *                                 their unsent bytes never arrive later);
 *                                 prints {"conns","seconds","trips","median_us",
 *                                 "p99_us","bytes","errors"}
 *   netbench dns PORT             UDP DNS responder on 0.0.0.0:PORT: answers
 *                                 every query for an A record with 192.0.2.1
 *                                 (TTL 0), anything else with NOTIMP; the
 *                                 local upstream of the DNS row
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT_DIR = join(ROOT, 'build', 'bench');

const SOURCE = String.raw`
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void raise_nofile(void) {
  struct rlimit r = {200000, 200000};
  if (setrlimit(RLIMIT_NOFILE, &r) < 0) {
    getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

static void set_timeouts(int fd, int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static int dial(const char *host, int port, int timeout_ms) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
  int v6 = inet_pton(AF_INET, host, &a.sin_addr) != 1;
  if (v6 && inet_pton(AF_INET6, host, &a6.sin6_addr) != 1) { fprintf(stderr, "bad address %s\n", host); exit(2); }
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  set_timeouts(fd, timeout_ms);
  int r = v6 ? connect(fd, (struct sockaddr *)&a6, sizeof a6) : connect(fd, (struct sockaddr *)&a, sizeof a);
  if (r < 0) { close(fd); return -1; }
  return fd;
}

static int one_trip(int fd) {
  char c = 'x';
  if (write(fd, &c, 1) != 1) return -1;
  for (;;) {
    ssize_t r = read(fd, &c, 1);
    if (r == 1) return 0;
    if (r < 0 && errno == EINTR) continue;
    return -1;
  }
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

#define MAX_FDS 262144
static unsigned char conn_mode[MAX_FDS]; /* 0 unknown, 1 echo, 2 discard */
static unsigned long long discarded;

static int srv(int port) {
  raise_nofile();
  /* [::]:PORT taking IPv4 too (IPv4-mapped), or 0.0.0.0 on a kernel without IPv6. */
  int l = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1, zero = 0, bound;
  if (l >= 0) {
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_ANY_INIT};
    bound = bind(l, (struct sockaddr *)&a6, sizeof a6);
  } else {
    l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    bound = bind(l, (struct sockaddr *)&a, sizeof a);
  }
  if (bound < 0 || listen(l, 4096) < 0) { perror("srv bind/listen"); return 1; }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
  epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
  printf("listening\n");
  fflush(stdout);
  static char buf[65536];
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 1; }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == l) {
        for (;;) {
          int c = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          if (c >= MAX_FDS) { close(c); continue; }
          conn_mode[c] = 0;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0 && conn_mode[fd] == 0) {
        if (buf[0] == 'S') {
          char line[32];
          int k = snprintf(line, sizeof line, "%llu\n", discarded);
          if (write(fd, line, k) < 0) { /* best effort */ }
          close(fd);
          continue;
        }
        conn_mode[fd] = buf[0] == 'D' ? 2 : 1;
      }
      if (r > 0 && conn_mode[fd] == 2) {
        discarded += (unsigned long long)r;
      } else if (r > 0) {
        if (write(fd, buf, r) < 0) { /* peer gone: EOF follows */ }
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(fd);
      }
    }
  }
}

static int rr(const char *host, int port, int n) {
  int fd = dial(host, port, 3000);
  if (fd < 0) { perror("rr connect"); return 1; }
  for (int i = 0; i < 200; i++) if (one_trip(fd) < 0) { perror("rr warm-up"); return 1; }
  double *t = malloc(sizeof(double) * n), sum = 0;
  for (int i = 0; i < n; i++) {
    double t0 = now_us();
    if (one_trip(fd) < 0) { perror("rr"); return 1; }
    t[i] = now_us() - t0;
    sum += t[i];
  }
  qsort(t, n, sizeof(double), cmp);
  printf("{\"n\":%d,\"median_us\":%.1f,\"p99_us\":%.1f,\"mean_us\":%.1f}\n", n, t[n / 2], t[(int)(n * 0.99)], sum / n);
  close(fd);
  return 0;
}

static int crr(const char *host, int port, double secs) {
  double t0 = now_us(), end = t0 + secs * 1e6;
  long count = 0, errors = 0;
  while (now_us() < end) {
    int fd = dial(host, port, 2000);
    if (fd < 0) { if (++errors > 100) break; continue; }
    if (one_trip(fd) < 0) errors++; else count++;
    close(fd);
  }
  printf("{\"count\":%ld,\"seconds\":%.3f,\"errors\":%ld}\n", count, (now_us() - t0) / 1e6, errors);
  return 0;
}

static int hold(const char *host, int port, int n) {
  raise_nofile();
  int opened = 0, failed = 0;
  double t0 = now_us();
  for (int i = 0; i < n && failed < 50; i++) {
    if (dial(host, port, 5000) < 0) failed++; else opened++;
  }
  printf("{\"opened\":%d,\"failed\":%d,\"seconds\":%.3f}\n", opened, failed, (now_us() - t0) / 1e6);
  fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {}
  return 0;
}

struct pump { int from, to; };
static void *pump(void *p) {
  struct pump *x = p;
  size_t cap = 1 << 20;
  char *buf = malloc(cap);
  for (;;) {
    ssize_t r = read(x->from, buf, cap);
    if (r <= 0) break;
    for (ssize_t o = 0; o < r;) {
      ssize_t w = write(x->to, buf + o, r - o);
      if (w <= 0) exit(0);
      o += w;
    }
  }
  exit(0);
}

static int xconn(const char *path) {
  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  unlink(path);
  if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 2) < 0) { perror("xconn bind"); return 1; }
  printf("listening\n");
  fflush(stdout);
  int s1 = accept(l, NULL, NULL), s2 = accept(l, NULL, NULL);
  if (s1 < 0 || s2 < 0) { perror("xconn accept"); return 1; }
  int sz = 4 << 20;
  setsockopt(s1, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  setsockopt(s2, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  static struct pump a2b, b2a;
  a2b.from = s1; a2b.to = s2; b2a.from = s2; b2a.to = s1;
  pthread_t t;
  pthread_create(&t, NULL, pump, &a2b);
  pump(&b2a);
  return 0;
}

static long long srv_discarded(const char *host, int port) {
  int fd = -1;
  /* Through a saturated backend a new connection can take a while: try a few times. */
  for (int i = 0; i < 5 && fd < 0; i++) fd = dial(host, port, 10000);
  if (fd < 0) return -1;
  char line[32] = {0};
  size_t got = 0;
  if (write(fd, "S", 1) != 1) { close(fd); return -1; }
  for (;;) {
    ssize_t r = read(fd, line + got, sizeof line - 1 - got);
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  return got ? atoll(line) : -1;
}

static int conc(const char *host, int port, int n, double secs, int bulk) {
  raise_nofile();
  int *fds = malloc(sizeof(int) * n);
  double *sent_at = calloc(n, sizeof(double));
  size_t cap = 4000000, ns = 0;
  double *samples = malloc(sizeof(double) * cap);
  long errors = 0;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  static char chunk[65536];
  memset(chunk, 'd', sizeof chunk);
  for (int i = 0; i < n; i++) {
    fds[i] = dial(host, port, 5000);
    if (fds[i] < 0) { fprintf(stderr, "conc: connection %d of %d failed: %s\n", i + 1, n, strerror(errno)); return 1; }
    if (bulk && write(fds[i], "D", 1) != 1) { perror("conc: discard hello"); return 1; }
  }
  long long before = bulk ? srv_discarded(host, port) : 0;
  for (int i = 0; i < n; i++) {
    fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = bulk ? EPOLLOUT : EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
  }
  double t0 = now_us(), end = t0 + secs * 1e6;
  if (!bulk)
    for (int i = 0; i < n; i++) {
      sent_at[i] = now_us();
      if (write(fds[i], "x", 1) != 1) errors++;
    }
  long trips = 0;
  struct epoll_event evs[512];
  while (now_us() < end) {
    int k = epoll_wait(ep, evs, 512, 100);
    if (k < 0) { if (errno == EINTR) continue; perror("conc epoll_wait"); return 1; }
    for (int j = 0; j < k; j++) {
      int i = (int)evs[j].data.u32;
      if (bulk) {
        if (write(fds[i], chunk, sizeof chunk) < 0 && errno != EAGAIN) { errors++; epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL); }
        continue;
      }
      char c;
      ssize_t r = read(fds[i], &c, 1);
      if (r != 1) {
        /* A dead connection leaves the loop (it would stay readable forever). */
        if (r == 0 || errno != EAGAIN) { errors++; epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL); }
        continue;
      }
      double t = now_us();
      if (ns < cap) samples[ns++] = t - sent_at[i];
      trips++;
      sent_at[i] = t;
      if (write(fds[i], "x", 1) != 1) errors++;
    }
  }
  double elapsed = (now_us() - t0) / 1e6;
  long long bytes = 0;
  if (bulk) {
    long long after = srv_discarded(host, port);
    bytes = before < 0 || after < 0 ? -1 : after - before;
    /* Reset, not close: what the guest still buffers (up to a send buffer per
     * connection) must not drain into the next run's count. */
    struct linger lg = {1, 0};
    for (int i = 0; i < n; i++) {
      setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      close(fds[i]);
    }
  }
  double med = 0, p99 = 0;
  if (ns) {
    qsort(samples, ns, sizeof(double), cmp);
    med = samples[ns / 2];
    p99 = samples[(size_t)(ns * 0.99)];
  }
  printf("{\"conns\":%d,\"seconds\":%.3f,\"trips\":%ld,\"median_us\":%.1f,\"p99_us\":%.1f,\"bytes\":%lld,\"errors\":%ld}\n", n, elapsed, trips, med, p99, bytes, errors);
  return 0;
}

static int dns(int port) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int big = 4 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("dns bind"); return 1; }
  printf("listening\n");
  fflush(stdout);
  unsigned char q[512 + 16];
  for (;;) {
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t r = recvfrom(s, q, 512, 0, (struct sockaddr *)&from, &fl);
    if (r < 12 || (q[2] & 0x80)) continue; /* short, or a response */
    /* Walk the question name (labels only) to find QTYPE. */
    size_t o = 12;
    while (o < (size_t)r && q[o] != 0 && (q[o] & 0xc0) == 0) o += 1 + q[o];
    if (o + 5 > (size_t)r || q[o] != 0) continue;
    size_t qend = o + 5; /* zero label, QTYPE, QCLASS */
    int is_a = q[o + 1] == 0 && q[o + 2] == 1;
    q[2] = 0x84 | (q[2] & 0x01); /* QR, AA, keep RD */
    q[3] = is_a ? 0x00 : 0x04;   /* RCODE 0, or NOTIMP */
    q[4] = 0; q[5] = 1;          /* QDCOUNT 1 */
    q[6] = 0; q[7] = is_a ? 1 : 0;
    q[8] = q[9] = q[10] = q[11] = 0;
    size_t len = qend;
    if (is_a) {
      static const unsigned char ans[16] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 1};
      memcpy(q + len, ans, sizeof ans);
      len += sizeof ans;
    }
    sendto(s, q, len, 0, (struct sockaddr *)&from, fl);
  }
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && !strcmp(argv[1], "srv")) return srv(atoi(argv[2]));
  if (argc == 5 && !strcmp(argv[1], "rr")) return rr(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (argc == 5 && !strcmp(argv[1], "crr")) return crr(argv[2], atoi(argv[3]), atof(argv[4]));
  if (argc == 5 && !strcmp(argv[1], "hold")) return hold(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (argc == 3 && !strcmp(argv[1], "xconn")) return xconn(argv[2]);
  if (argc == 7 && !strcmp(argv[1], "conc") && (!strcmp(argv[6], "rr") || !strcmp(argv[6], "bulk")))
    return conc(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]), !strcmp(argv[6], "bulk"));
  if (argc == 3 && !strcmp(argv[1], "dns")) return dns(atoi(argv[2]));
  fprintf(stderr, "usage: netbench srv PORT | rr HOST PORT N | crr HOST PORT SECS | hold HOST PORT N | xconn SOCK | conc HOST PORT N SECS rr|bulk | dns PORT\n");
  return 2;
}
`;

let building: Promise<string> | undefined;

/** Builds netbench with gcc -O2 (cached by source hash) and returns its path. */
export function buildNetbench(): Promise<string> {
  building ??= (async () => {
    const hash = createHash('sha256').update(SOURCE).digest('hex');
    const bin = join(OUT_DIR, 'netbench');
    const stamp = `${bin}.sha256`;
    if (existsSync(bin) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === hash) return bin;
    mkdirSync(OUT_DIR, { recursive: true });
    const src = join(OUT_DIR, 'netbench.c');
    writeFileSync(src, SOURCE);
    const tmp = `${bin}.${process.pid}.tmp`;
    try {
      await execFileP('gcc', ['-O2', '-Wall', '-pthread', '-o', tmp, src]);
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`building netbench failed: ${err.stderr || err.message}`);
    }
    renameSync(tmp, bin);
    writeFileSync(stamp, `${hash}\n`);
    return bin;
  })();
  return building;
}
