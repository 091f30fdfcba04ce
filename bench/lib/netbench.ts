/**
 * Theory of operation: the bench's small TCP tools, in C so that the
 * measuring side costs far less than what it measures (a Node client would
 * add its own event-loop latency to every round trip). The source is kept
 * here as a string and built with `gcc -O2` into build/bench/netbench
 * (rebuilt when the source changes). One binary, five modes:
 *
 *   netbench srv PORT             epoll server on 0.0.0.0:PORT: echoes whatever
 *                                 it reads, closes on EOF, holds idle sockets
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
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) { fprintf(stderr, "bad address %s\n", host); exit(2); }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  set_timeouts(fd, timeout_ms);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { close(fd); return -1; }
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

static int srv(int port) {
  raise_nofile();
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4096) < 0) { perror("srv bind/listen"); return 1; }
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
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0) {
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

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && !strcmp(argv[1], "srv")) return srv(atoi(argv[2]));
  if (argc == 5 && !strcmp(argv[1], "rr")) return rr(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (argc == 5 && !strcmp(argv[1], "crr")) return crr(argv[2], atoi(argv[3]), atof(argv[4]));
  if (argc == 5 && !strcmp(argv[1], "hold")) return hold(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (argc == 3 && !strcmp(argv[1], "xconn")) return xconn(argv[2]);
  fprintf(stderr, "usage: netbench srv PORT | rr HOST PORT N | crr HOST PORT SECS | hold HOST PORT N | xconn SOCK\n");
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
