/* The PROXY protocol parser and the trusted-proxy lists: tables of input
 * and verdict, every prefix of a valid header reported as incomplete, and
 * guard-page inputs so that a read past the end faults. */
#define _GNU_SOURCE
#include "check.h"
#include "proxyproto.h"
#include "trust.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* p copied to the very end of a page followed by an inaccessible one */
static int parse_guarded(const void *p, size_t n, piston__proxy_info *out) {
  long pg = sysconf(_SC_PAGESIZE);
  size_t span = ((n + (size_t)pg - 1) / (size_t)pg + 1) * (size_t)pg;
  char *m =
      mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANON, -1, 0);
  if (m == MAP_FAILED)
    abort();
  mprotect(m + span - (size_t)pg, (size_t)pg, PROT_NONE);
  char *at = m + span - (size_t)pg - n;
  memcpy(at, p, n);
  int rc = piston__proxy_parse((const uint8_t *)at, n, out);
  munmap(m, span);
  return rc;
}

static const char sig[] = "\r\n\r\n\0\r\nQUIT\n";

static size_t v2(uint8_t *b, int vc, int fam, size_t len, const void *body) {
  memcpy(b, sig, 12);
  b[12] = (uint8_t)vc;
  b[13] = (uint8_t)fam;
  b[14] = (uint8_t)(len >> 8);
  b[15] = (uint8_t)len;
  memcpy(b + 16, body, len);
  return 16 + len;
}

static void check_prefixes(const uint8_t *h, size_t n,
                           piston__proxy_info *info) {
  for (size_t k = 0; k < n; k++)
    CHECK_EQ_INT(parse_guarded(h, k, info), 0);
  CHECK_EQ_INT(parse_guarded(h, n, info), (long long)n);
}

int main(void) {
  piston__proxy_info info;
  static const struct {
    const char *in;
    int rc; /* -1 bad, 0 incomplete, else the length */
    const char *addr;
    int port;
  } v1[] = {
      {"PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\r\n", 40, "192.0.2.1", 5555},
      {"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", 36, "2001:db8::1", 1},
      {"PROXY UNKNOWN\r\n", 15, NULL, 0},
      {"PROXY UNKNOWN whatever is here\r\nGET", 32, NULL, 0},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\r\nGET / HTTP/1.1\r\n", 40,
       "192.0.2.1", 5555},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 5555 65536\r\n", -1, NULL, 0},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 5555 -1\r\n", -1, NULL, 0},
      {"PROXY TCP4 192.0.2.1  192.0.2.2 5555 80\r\n", -1, NULL, 0},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 5555 80 9\r\n", -1, NULL, 0},
      {"PROXY TCP4 ::1 192.0.2.2 5555 80\r\n", -1, NULL, 0},
      {"PROXY tcp4 192.0.2.1 192.0.2.2 5555 80\r\n", -1, NULL, 0},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\r\r", -1, NULL, 0},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\n", -1, NULL, 0},
      {"PROXY\r\n", -1, NULL, 0},
      {"proxy TCP4", -1, NULL, 0},
      {"GET / HTTP/1.1\r\n", -1, NULL, 0},
      {"PROXY TCP4 192.0.2.1", 0, NULL, 0},
      {"PROX", 0, NULL, 0},
  };
  for (size_t i = 0; i < sizeof v1 / sizeof v1[0]; i++) {
    int rc = parse_guarded(v1[i].in, strlen(v1[i].in), &info);
    CHECK_EQ_INT(rc, v1[i].rc);
    if (rc > 0) {
      CHECK_EQ_INT(info.has_src, v1[i].addr != NULL);
      if (v1[i].addr) {
        char text[64];
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)&info.src;
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&info.src;
        if (info.src.ss_family == AF_INET)
          inet_ntop(AF_INET, &a4->sin_addr, text, sizeof text);
        else
          inet_ntop(AF_INET6, &a6->sin6_addr, text, sizeof text);
        CHECK_EQ_MEM(text, strlen(text), v1[i].addr);
        CHECK_EQ_INT(
            ntohs(info.src.ss_family == AF_INET ? a4->sin_port : a6->sin6_port),
            v1[i].port);
      }
    }
  }
  /* 107 bytes is the longest line; one more without its end is bad */
  char line[200] = "PROXY UNKNOWN ";
  memset(line + 14, 'x', sizeof line - 14);
  memcpy(line + 105, "\r\n", 2);
  CHECK_EQ_INT(parse_guarded(line, 107, &info), 107);
  memcpy(line + 105, "xx", 2);
  CHECK_EQ_INT(parse_guarded(line, 106, &info), 0);
  CHECK_EQ_INT(parse_guarded(line, 107, &info), -1);
  memcpy(line + 106, "\r\n", 2);
  CHECK_EQ_INT(parse_guarded(line, 108, &info), -1);
  check_prefixes((const uint8_t *)"PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\r\n",
                 40, &info);

  /* v2 */
  uint8_t b[600], body[300] = {192, 0, 2, 1, 192, 0, 2, 2, 0x15, 0xb3, 0, 80};
  size_t n = v2(b, 0x21, 0x11, 12, body);
  check_prefixes(b, n, &info);
  CHECK(info.has_src && info.src.ss_family == AF_INET);
  CHECK_EQ_INT(ntohs(((struct sockaddr_in *)&info.src)->sin_port), 5555);
  /* TLVs after the addresses are skipped: the length covers them */
  memcpy(body + 12,
         "\x05\x00\x03"
         "abc",
         6);
  CHECK_EQ_INT(parse_guarded(b, v2(b, 0x21, 0x11, 18, body), &info), 34);
  /* LOCAL: no address to use, whatever the family says */
  CHECK_EQ_INT(parse_guarded(b, v2(b, 0x20, 0x11, 12, body), &info), 28);
  CHECK(!info.has_src);
  CHECK_EQ_INT(parse_guarded(b, v2(b, 0x20, 0x00, 0, body), &info), 16);
  CHECK_EQ_INT(parse_guarded(b, v2(b, 0x21, 0x00, 3, body), &info), 19);
  CHECK(!info.has_src);
  CHECK_EQ_INT(parse_guarded(b, v2(b, 0x21, 0x21, 36, body), &info), 52);
  CHECK(info.has_src && info.src.ss_family == AF_INET6);
  CHECK_EQ_INT(parse_guarded(b, v2(b, 0x21, 0x31, 216, body), &info), 232);
  CHECK(!info.has_src);
  /* bad: version, command, family, transport, a length short of the
   * addresses, the signature */
  CHECK_EQ_INT(parse_guarded(b, v2(b, 0x11, 0x11, 12, body), &info), -1);
  CHECK_EQ_INT(parse_guarded(b, v2(b, 0x22, 0x11, 12, body), &info), -1);
  CHECK_EQ_INT(parse_guarded(b, v2(b, 0x21, 0x41, 12, body), &info), -1);
  CHECK_EQ_INT(parse_guarded(b, v2(b, 0x21, 0x12, 12, body), &info), -1);
  CHECK_EQ_INT(parse_guarded(b, v2(b, 0x21, 0x11, 11, body), &info), -1);
  CHECK_EQ_INT(parse_guarded(b, v2(b, 0x21, 0x21, 35, body), &info), -1);
  n = v2(b, 0x21, 0x11, 12, body);
  b[11] = 'X';
  CHECK_EQ_INT(parse_guarded(b, n, &info), -1);
  CHECK_EQ_INT(parse_guarded(b, 0, &info), 0);

  /* trusted lists */
  piston__trust *t;
  char bad[64];
  CHECK_EQ_INT(piston__trust_parse("127.0.0.1, 10.0.0.0/8 ::1,fd00::/8 unix:",
                                   &t, bad, sizeof bad),
               0);
  struct sockaddr_storage ss;
  static const struct {
    const char *addr;
    bool trusted;
  } peers[] = {
      {"127.0.0.1", true},
      {"127.0.0.2", false},
      {"10.255.1.2", true},
      {"11.0.0.1", false},
      {"::1", true},
      {"::2", false},
      {"fdab::1", true},
      {"fe00::1", false},
      {"::ffff:10.1.1.1", true},
      {"::ffff:127.0.0.1", true},
      {"[::1]", true},
      {"::ffff:11.1.1.1", false},
  };
  for (size_t i = 0; i < sizeof peers / sizeof peers[0]; i++) {
    CHECK(piston__addr_parse(peers[i].addr, strlen(peers[i].addr), &ss));
    CHECK_EQ_INT(piston__trust_peer(t, (struct sockaddr *)&ss),
                 peers[i].trusted);
  }
  struct sockaddr un = {.sa_family = AF_UNIX};
  CHECK(piston__trust_peer(t, &un));
  free(t);
  CHECK_EQ_INT(piston__trust_parse("10.0.0.0/7", &t, bad, sizeof bad), 0);
  CHECK(piston__addr_parse("11.9.9.9", 8, &ss));
  CHECK(piston__trust_peer(t, (struct sockaddr *)&ss));
  CHECK(!piston__trust_peer(t, &un));
  free(t);
  CHECK_EQ_INT(piston__trust_parse("*", &t, bad, sizeof bad), 0);
  CHECK(piston__trust_peer(t, &un) && t->any);
  free(t);
  CHECK_EQ_INT(piston__trust_parse("", &t, bad, sizeof bad), 0);
  CHECK(!piston__trust_peer(t, (struct sockaddr *)&ss));
  free(t);
  static const char *const wrong[] = {"10.0.0.0/33", "::/129", "10.0.0.0/",
                                      "localhost",   "1.2.3",  "unix",
                                      "10.0.0.0/a"};
  for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
    CHECK_EQ_INT(piston__trust_parse(wrong[i], &t, bad, sizeof bad),
                 PISTON_EINVAL);
    CHECK_EQ_MEM(bad, strlen(bad), wrong[i]);
  }
  return CHECK_DONE();
}
