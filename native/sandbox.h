/* kiln-sandbox: shared declarations of the per-RUN sandbox helper. */
#ifndef KILN_SANDBOX_H
#define KILN_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

/* A spec record: its tokens (NUL-terminated copies) and their byte lengths. */
struct record {
  char **tok;
  size_t *len;
  int n;
};

struct spec {
  struct record *rec;
  int nrec;
  /* Filled from the records for quick access. */
  const char *ovl_cwd;      /* lowerdir paths in ovl_data may be relative to this folder */
  const char *ovl_data;     /* overlay mount options: lowerdir=...,upperdir=...,workdir=... */
  /* Host folder the step's init mounts a private tmpfs on (seen only in its namespace): it
   * holds the root overlay's mount point and the contents of secrets and heredocs. */
  const char *private_dir;
  const char *cwd;
  const char *hostname;
  char **argv;
  char **envp;
  uid_t uid;
  gid_t gid;
  gid_t *groups;
  int ngroups;
  int net_none;
  int insecure;
  char **cgroups;
  int ncgroups;
  const char *upper;        /* the step's upperdir, cleaned of stubs after the step */
  char **lowers;            /* host folders of the layers, top first */
  int nlowers;
  const char *workdir;      /* the root overlay's workdir: its volatile markers go while the step runs */
  char **scrap;             /* scaffolding folders removed after the step */
  int nscrap;
  const char *shm_size;     /* /dev/shm's size in bytes (--shm-size); default 64 MiB */
  struct record *rlimits;   /* "rlimit NAME SOFT HARD" records (--ulimit) */
  int nrlimits;
};

extern int status_fd;

/* Writes one status line ("stub d /x", "error ...") to the status pipe. */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports an error (with errno text when errnum != 0) and ends the process. */
void fail(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* With KILN_SANDBOX_TIMING set, reports "time PHASE MICROSECONDS" since the helper started. */
void timing(const char *phase);

void stub_log_init(void);
/* A mount target the sandbox created in the root (type 'd' or 'f'). */
void record_stub(char type, const char *path);
void clean_after_step(const struct spec *s);
/* Removes what a volatile overlay mount leaves in its workdir besides work/ itself. */
void remove_overlay_markers(const char *workdir);
/* Called by the step's init once the root overlay is mounted. */
void overlay_mounted(void);

int parse_spec(const char *buf, size_t size, struct spec *s);

/* Runs inside the new namespaces: builds the root filesystem and pivots into it. */
void setup_rootfs(const struct spec *s);
/* Lowers the step's resource limits (--ulimit); a limit above the current hard one fails. */
void apply_rlimits(const struct spec *s);
/* Drops capabilities, switches user, installs seccomp; the last step before exec. */
void apply_security(const struct spec *s);
void bring_loopback_up(void);

#endif
