/*
 * tap-relay TAPNAME SOCKPATH [-l LOSS%] [-r REORDER%] [-s SEED] [-d DIR] [-1] [-q]
 *
 * Relays Ethernet frames between a Linux TAP device (IFF_TAP | IFF_NO_PI;
 * attaches to an existing persistent tap of that name, or creates a
 * transient one) and a unix stream socket speaking QEMU's `-netdev stream`
 * framing: each frame is preceded by its length as a 4-byte big-endian
 * integer. One poll() loop over both fds, no per-frame allocation: the
 * socket side is read in large chunks (4 MiB buffer) and split into frames,
 * one write() per frame to the tap (a tap takes one frame per write); a
 * partial frame left at the end of the buffer is moved to its front. Frames
 * from the tap are read straight into a 1 MiB batch buffer behind room for
 * their prefix, and each poll round's batch goes to the socket in one
 * write. With -1, each frame goes to the socket in a write of its own, as
 * QEMU's stream netdev sends it (one writev of prefix and frame): a peer
 * that assumes reads end on frame boundaries (passt 2023-03 drops a split
 * length prefix, and reads the rest of a split frame with a single blocking
 * recv(), losing sync when it comes back short) then sees the stream it was
 * written for. Exits 0 when either side closes, 1 on errors.
 *
 * Optional impairment, for tests on kernels without sch_netem (off by
 * default, costs nothing when off), applied independently to each direction:
 *   -l P  drop each frame with probability P percent
 *   -r P  with probability P percent, hold a frame back and send it after
 *         the next frame of the same direction (or after 1 ms if none
 *         comes): adjacent reordering, like netem's "reorder" with a
 *         small delay.
 *   -s N  seed of the pseudo-random generator (default 1)
 *   -d DIR  impair only one direction: "to-tap" (gateway -> tap) or
 *         "to-sock" (tap -> gateway); default both
 * On exit it prints one line of counters to stderr (unless -q).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME (65535 + 14)
#define SOCK_BUF (4 * 1024 * 1024) /* socket -> tap reassembly buffer */

static uint64_t rng_state = 1;
static uint32_t rnd(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}
static uint32_t loss_thr, reorder_thr; /* out of 2^32 */
static int frame_writes; /* -1: one socket write per frame */
static int impair_to_tap, impair_to_sock;
static volatile sig_atomic_t stop_flag;

struct stats {
  uint64_t frames, bytes, dropped, reordered;
};
static struct stats to_sock, to_tap;

/* A frame held back for reordering, per direction. */
struct held {
  int has;
  uint64_t since_us; /* when it was held back */
  size_t len;
  unsigned char buf[4 + MAX_FRAME];
};
static struct held held_to_sock, held_to_tap;

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *what) {
  fprintf(stderr, "tap-relay: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int write_all(int fd, const void *p, size_t n) {
  const unsigned char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        poll(&pf, 1, 1000);
        continue;
      }
      return -1;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Writes one frame to the tap (one write() = one frame). A full tx queue
 * (ENOBUFS) or a frame the device refuses is dropped like a wire would. */
static int tap_write(int tap, const unsigned char *f, size_t len) {
  for (;;) {
    ssize_t w = write(tap, f, len);
    if (w >= 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      struct pollfd pf = {.fd = tap, .events = POLLOUT};
      poll(&pf, 1, 1000);
      continue;
    }
    if (errno == EINVAL || errno == ENOBUFS || errno == EMSGSIZE || errno == EIO) return 0;
    return -1;
  }
}

/* Decides a frame's fate: 0 send now, 1 drop, 2 hold back (reorder). */
static int fate(int on) {
  if (!on) return 0;
  if (loss_thr && rnd() < loss_thr) return 1;
  if (reorder_thr && rnd() < reorder_thr) return 2;
  return 0;
}

/* tap -> socket output batch: frames are read from the tap straight into
 * obuf (after room for their prefix) and written to the socket together. */
#define OBUF (1024 * 1024)
static unsigned char obuf[OBUF];
static size_t olen;

static int sock_flush(int sock) {
  if (olen == 0) return 0;
  int r = write_all(sock, obuf, olen);
  olen = 0;
  return r;
}

/* Appends prefix+frame (4 + len bytes at pf) to the batch. */
static int sock_put(int sock, const unsigned char *pf, size_t len) {
  if (olen + 4 + len > OBUF && sock_flush(sock) < 0) return -1;
  memcpy(obuf + olen, pf, 4 + len);
  olen += 4 + len;
  to_sock.frames++;
  to_sock.bytes += len;
  return 0;
}

/* The frame just read sits at obuf + olen (prefix filled in, len bytes of
 * frame after it): commit it to the batch, drop it, or hold it back. */
static int commit_to_sock(int sock, size_t len) {
  int f = fate(impair_to_sock);
  if (f == 1) { to_sock.dropped++; return 0; }
  if (f == 2 && !held_to_sock.has) {
    memcpy(held_to_sock.buf, obuf + olen, 4 + len);
    held_to_sock.len = len;
    held_to_sock.has = 1;
    held_to_sock.since_us = now_us();
    to_sock.reordered++;
    return 0;
  }
  olen += 4 + len;
  to_sock.frames++;
  to_sock.bytes += len;
  if (held_to_sock.has) {
    held_to_sock.has = 0;
    if (sock_put(sock, held_to_sock.buf, held_to_sock.len) < 0) return -1;
  }
  return 0;
}

static int send_to_tap(int tap, const unsigned char *f, size_t len) {
  int x = fate(impair_to_tap);
  if (x == 1) { to_tap.dropped++; return 0; }
  if (x == 2 && !held_to_tap.has) {
    memcpy(held_to_tap.buf, f, len);
    held_to_tap.len = len;
    held_to_tap.has = 1;
    held_to_tap.since_us = now_us();
    to_tap.reordered++;
    return 0;
  }
  if (tap_write(tap, f, len) < 0) return -1;
  to_tap.frames++;
  to_tap.bytes += len;
  if (held_to_tap.has) {
    held_to_tap.has = 0;
    if (tap_write(tap, held_to_tap.buf, held_to_tap.len) < 0) return -1;
    to_tap.frames++;
    to_tap.bytes += held_to_tap.len;
  }
  return 0;
}

/* Sends held frames older than max_age_us (0: all). */
static int flush_held(int tap, int sock, uint64_t max_age_us) {
  uint64_t t = max_age_us ? now_us() : 0;
  if (held_to_sock.has && (!max_age_us || t - held_to_sock.since_us >= max_age_us)) {
    held_to_sock.has = 0;
    if (sock_put(sock, held_to_sock.buf, held_to_sock.len) < 0 || sock_flush(sock) < 0) return -1;
  }
  if (held_to_tap.has && (!max_age_us || t - held_to_tap.since_us >= max_age_us)) {
    held_to_tap.has = 0;
    if (tap_write(tap, held_to_tap.buf, held_to_tap.len) < 0) return -1;
    to_tap.frames++;
    to_tap.bytes += held_to_tap.len;
  }
  return 0;
}

static void on_signal(int s) { (void)s; stop_flag = 1; }

static void usage(void) {
  fprintf(stderr, "usage: tap-relay TAPNAME SOCKPATH [-l LOSS%%] [-r REORDER%%] [-s SEED] [-d to-tap|to-sock|both] [-1] [-q]\n");
  exit(2);
}

static uint32_t pct_thr(const char *s) {
  char *end;
  double p = strtod(s, &end);
  if (*end == '%') end++;
  if (*end || p < 0 || p > 100) usage();
  return (uint32_t)(p / 100.0 * 4294967295.0);
}

int main(int argc, char **argv) {
  if (argc < 3) usage();
  const char *tapname = argv[1], *path = argv[2];
  int quiet = 0;
  const char *dir = "both";
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "-q")) { quiet = 1; continue; }
    if (!strcmp(argv[i], "-1")) { frame_writes = 1; continue; }
    if (i + 1 >= argc) usage();
    if (!strcmp(argv[i], "-l")) loss_thr = pct_thr(argv[++i]);
    else if (!strcmp(argv[i], "-r")) reorder_thr = pct_thr(argv[++i]);
    else if (!strcmp(argv[i], "-s")) rng_state = strtoull(argv[++i], NULL, 0) | 1;
    else if (!strcmp(argv[i], "-d")) dir = argv[++i];
    else usage();
  }
  int any = loss_thr || reorder_thr;
  if (!strcmp(dir, "both")) impair_to_tap = impair_to_sock = any;
  else if (!strcmp(dir, "to-tap")) impair_to_tap = any;
  else if (!strcmp(dir, "to-sock")) impair_to_sock = any;
  else usage();
  if (strlen(tapname) >= IFNAMSIZ) usage();

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int tap = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (tap < 0) die("open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  strncpy(ifr.ifr_name, tapname, IFNAMSIZ - 1);
  if (ioctl(tap, TUNSETIFF, &ifr) < 0) die("TUNSETIFF");
  int fl = fcntl(tap, F_GETFL);
  fcntl(tap, F_SETFL, fl | O_NONBLOCK);

  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) die("socket");
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sun.sun_path) { errno = ENAMETOOLONG; die("socket path"); }
  strcpy(sun.sun_path, path);
  if (connect(sock, (struct sockaddr *)&sun, sizeof sun) < 0) die("connect");
  int bufsz = 4 * 1024 * 1024;
  setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
  setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
  fl = fcntl(sock, F_GETFL);
  fcntl(sock, F_SETFL, fl | O_NONBLOCK);

  /* socket -> tap: large linear buffer; [rd, wr) holds unparsed bytes. */
  unsigned char *sbuf = malloc(SOCK_BUF);
  if (!sbuf) die("malloc");
  size_t rd = 0, wr = 0;

  struct pollfd pfd[2] = {{.fd = tap, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
  int rc = 0;
  while (!stop_flag) {
    int timeout = (held_to_sock.has || held_to_tap.has) ? 1 : -1;
    int n = poll(pfd, 2, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    /* A held frame goes out once the next frame of its direction passed it,
     * or after 1 ms at most (even while the other direction keeps poll busy). */
    if ((held_to_sock.has || held_to_tap.has) && flush_held(tap, sock, n == 0 ? 0 : 1000) < 0) { rc = 1; break; }
    if (n == 0) continue;
    if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) break;
    if (pfd[1].revents & (POLLERR | POLLNVAL)) break;

    /* tap -> socket: drain up to a batch of frames into obuf, one socket write. */
    if (pfd[0].revents & POLLIN) {
      for (int k = 0; k < 256; k++) {
        if (OBUF - olen < 4 + MAX_FRAME && sock_flush(sock) < 0) goto done; /* peer closed */
        unsigned char *p = obuf + olen;
        ssize_t r = read(tap, p + 4, MAX_FRAME);
        if (r < 0) {
          if (errno == EAGAIN || errno == EINTR) break;
          if (errno == EIO) goto done; /* device went away */
          die("read tap");
        }
        if (r == 0) goto done;
        uint32_t len = (uint32_t)r;
        p[0] = len >> 24; p[1] = len >> 16; p[2] = len >> 8; p[3] = len;
        if (commit_to_sock(sock, len) < 0) goto done;
        if (frame_writes && sock_flush(sock) < 0) goto done;
      }
      if (sock_flush(sock) < 0) goto done;
    }

    /* socket -> tap */
    if (pfd[1].revents & (POLLIN | POLLHUP)) {
      for (int k = 0; k < 64; k++) {
        if (SOCK_BUF - wr < 4 + MAX_FRAME) { /* compact: move the partial frame to the front */
          memmove(sbuf, sbuf + rd, wr - rd);
          wr -= rd;
          rd = 0;
        }
        ssize_t r = read(sock, sbuf + wr, SOCK_BUF - wr);
        if (r < 0) {
          if (errno == EAGAIN || errno == EINTR) break;
          goto done;
        }
        if (r == 0) goto done; /* gateway closed */
        wr += (size_t)r;
        while (wr - rd >= 4) {
          const unsigned char *p = sbuf + rd;
          uint32_t len = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
          if (len > MAX_FRAME) {
            fprintf(stderr, "tap-relay: frame length %u from the socket exceeds %u\n", len, MAX_FRAME);
            rc = 1;
            goto done;
          }
          if (wr - rd < 4 + (size_t)len) break;
          if (len > 0 && send_to_tap(tap, p + 4, len) < 0) die("write tap");
          rd += 4 + len;
        }
        if (rd == wr) rd = wr = 0;
        if ((size_t)r < 65536) break; /* drained for now */
      }
    }
  }
done:
  flush_held(tap, sock, 0);
  if (!quiet)
    fprintf(stderr,
            "tap-relay: to-socket %llu frames %llu bytes %llu dropped %llu reordered; "
            "to-tap %llu frames %llu bytes %llu dropped %llu reordered\n",
            (unsigned long long)to_sock.frames, (unsigned long long)to_sock.bytes,
            (unsigned long long)to_sock.dropped, (unsigned long long)to_sock.reordered,
            (unsigned long long)to_tap.frames, (unsigned long long)to_tap.bytes,
            (unsigned long long)to_tap.dropped, (unsigned long long)to_tap.reordered);
  close(sock);
  close(tap);
  free(sbuf);
  return rc;
}
