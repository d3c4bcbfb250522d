/* Spec parsing. The spec is a list of records; a record is a list of tokens ended by an
 * empty token; a token is "<decimal length>:<bytes>". Length prefixes (not separators) let
 * secret and heredoc contents carry any byte. */
#include <stdlib.h>
#include <string.h>
#include "sandbox.h"

static int next_token(const char **p, const char *end, char **out, size_t *outlen) {
  size_t n = 0;
  const char *q = *p;
  if (q >= end) return -1;
  while (q < end && *q >= '0' && *q <= '9') n = n * 10 + (size_t)(*q++ - '0');
  if (q >= end || *q != ':' || (size_t)(end - q - 1) < n) return -1;
  q++;
  char *t = malloc(n + 1);
  if (!t) return -1;
  memcpy(t, q, n);
  t[n] = 0;
  *out = t;
  *outlen = n;
  *p = q + n;
  return 0;
}

static void push(void ***arr, int *n, void *v) {
  *arr = realloc(*arr, sizeof(void *) * (size_t)(*n + 2));
  if (!*arr) fail(0, "out of memory");
  (*arr)[(*n)++] = v;
  (*arr)[*n] = NULL;
}

int parse_spec(const char *buf, size_t size, struct spec *s) {
  const char *p = buf, *end = buf + size;
  int nargv = 0, nenv = 0;
  memset(s, 0, sizeof(*s));
  while (p < end) {
    struct record r = {0};
    for (;;) {
      char *t;
      size_t l;
      if (next_token(&p, end, &t, &l) < 0) return -1;
      if (l == 0) {
        free(t);
        break;
      }
      r.tok = realloc(r.tok, sizeof(char *) * (size_t)(r.n + 1));
      r.len = realloc(r.len, sizeof(size_t) * (size_t)(r.n + 1));
      if (!r.tok || !r.len) return -1;
      r.tok[r.n] = t;
      r.len[r.n] = l;
      r.n++;
    }
    if (r.n == 0) continue;
    const char *k = r.tok[0];
    if (!strcmp(k, "overlay") && r.n == 3) { s->ovl_cwd = r.tok[1]; s->ovl_data = r.tok[2]; }
    else if (!strcmp(k, "private") && r.n == 2) s->private_dir = r.tok[1];
    else if (!strcmp(k, "cwd") && r.n == 2) s->cwd = r.tok[1];
    else if (!strcmp(k, "hostname") && r.n == 2) s->hostname = r.tok[1];
    else if (!strcmp(k, "arg") && r.n == 2) push((void ***)&s->argv, &nargv, r.tok[1]);
    else if (!strcmp(k, "env") && r.n == 2) push((void ***)&s->envp, &nenv, r.tok[1]);
    else if (!strcmp(k, "net-none")) s->net_none = 1;
    else if (!strcmp(k, "insecure")) s->insecure = 1;
    else if (!strcmp(k, "cgroup") && r.n == 2) push((void ***)&s->cgroups, &s->ncgroups, r.tok[1]);
    else if (!strcmp(k, "upper") && r.n == 2) s->upper = r.tok[1];
    else if (!strcmp(k, "lower") && r.n == 2) push((void ***)&s->lowers, &s->nlowers, r.tok[1]);
    else if (!strcmp(k, "workdir") && r.n == 2) s->workdir = r.tok[1];
    else if (!strcmp(k, "scrap") && r.n == 2) push((void ***)&s->scrap, &s->nscrap, r.tok[1]);
    else if (!strcmp(k, "shm-size") && r.n == 2) s->shm_size = r.tok[1];
    else if (!strcmp(k, "rlimit") && r.n == 4) {
      s->rlimits = realloc(s->rlimits, sizeof(struct record) * (size_t)(s->nrlimits + 1));
      if (!s->rlimits) return -1;
      s->rlimits[s->nrlimits++] = r;
      continue;
    }
    else if (!strcmp(k, "user") && r.n >= 3) {
      s->uid = (uid_t)strtoul(r.tok[1], NULL, 10);
      s->gid = (gid_t)strtoul(r.tok[2], NULL, 10);
      s->ngroups = r.n - 3;
      s->groups = calloc((size_t)s->ngroups + 1, sizeof(gid_t));
      for (int i = 3; i < r.n; i++) s->groups[i - 3] = (gid_t)strtoul(r.tok[i], NULL, 10);
    }
    /* Mount records ("bind", "tmpfs", "overlay-at", "file") are kept in order for setup_rootfs. */
    s->rec = realloc(s->rec, sizeof(struct record) * (size_t)(s->nrec + 1));
    if (!s->rec) return -1;
    s->rec[s->nrec++] = r;
  }
  if (!s->private_dir || !s->ovl_data || !s->argv || !s->argv[0]) return -1;
  if (!s->envp) {
    s->envp = calloc(1, sizeof(char *));
  }
  if (!s->cwd) s->cwd = "/";
  if (!s->hostname) s->hostname = "kiln";
  return 0;
}
