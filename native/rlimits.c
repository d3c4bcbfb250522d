/* --ulimit: the step's resource limits, set by its init just before exec. Names are Docker's
 * (the TypeScript side has already checked them and their values). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "sandbox.h"

static const struct { const char *name; int resource; } names[] = {
    {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},         {"data", RLIMIT_DATA},
    {"fsize", RLIMIT_FSIZE},       {"locks", RLIMIT_LOCKS},     {"memlock", RLIMIT_MEMLOCK},
    {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},       {"nofile", RLIMIT_NOFILE},
    {"nproc", RLIMIT_NPROC},       {"rss", RLIMIT_RSS},         {"rtprio", RLIMIT_RTPRIO},
    {"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK}};

static rlim_t limit_value(const char *v) {
  return strcmp(v, "unlimited") ? (rlim_t)strtoull(v, NULL, 10) : RLIM_INFINITY;
}

void apply_rlimits(const struct spec *s) {
  for (int i = 0; i < s->nrlimits; i++) {
    const struct record *r = &s->rlimits[i];
    int resource = -1;
    for (size_t j = 0; j < sizeof(names) / sizeof(names[0]); j++)
      if (!strcmp(names[j].name, r->tok[1])) resource = names[j].resource;
    if (resource < 0) fail(0, "--ulimit: unknown limit %s", r->tok[1]);
    struct rlimit lim = {.rlim_cur = limit_value(r->tok[2]), .rlim_max = limit_value(r->tok[3])};
    if (setrlimit(resource, &lim) < 0) {
      struct rlimit now;
      if (errno == EPERM && getrlimit(resource, &now) == 0 && now.rlim_max != RLIM_INFINITY)
        fail(0, "--ulimit %s=%s:%s: above this machine's hard limit (%llu); a step's limits can only be lowered",
             r->tok[1], r->tok[2], r->tok[3], (unsigned long long)now.rlim_max);
      fail(errno, "--ulimit %s=%s:%s", r->tok[1], r->tok[2], r->tok[3]);
    }
  }
}
