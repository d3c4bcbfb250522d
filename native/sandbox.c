/* kiln-sandbox: runs one RUN step isolated from the host.
 *
 * Protocol: fd 3 is a socket; the spec arrives on it (see spec.c) and is read to EOF (kiln shuts
 * its side down for writing), then status lines go back on the same socket:
 *   "error MESSAGE"   the sandbox could not be set up; the command did not run
 *   "exit N" / "signal N"   how the step's PID 1 ended
 * The step's stdout and stderr are the helper's own. SIGTERM, SIGINT or SIGHUP to the helper
 * kill the step. After the step the helper removes its mount targets from the upperdir and the
 * "scrap" folders (see cleanup.c). A kill -9 of the helper kills it too (parent-death signal), and since every
 * mount lives in the step's own mount namespace, nothing is left on the host. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "sandbox.h"

int status_fd = 3;
static int timing_on;
static struct timespec t_start;

void timing(const char *phase) {
  if (!timing_on) return;
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  report("time %s %ld", phase, (long)((t.tv_sec - t_start.tv_sec) * 1000000 + (t.tv_nsec - t_start.tv_nsec) / 1000));
}
extern char **environ;

void report(const char *fmt, ...) {
  char buf[8192];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof(buf) - 2) n = (int)sizeof(buf) - 2;
  buf[n++] = '\n';
  /* One write per line: lines from the step's init and from the supervisor never interleave. */
  if (write(status_fd, buf, (size_t)n) < 0) {
  }
}

void fail(int errnum, const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (errnum) report("error %s: %s", msg, strerror(errnum));
  else report("error %s", msg);
  _exit(125);
}

static char *read_all(int fd, size_t *size) {
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (n == cap && !(buf = realloc(buf, cap *= 2))) fail(0, "out of memory");
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(errno, "read spec");
    if (r == 0) break;
    n += (size_t)r;
  }
  *size = n;
  return buf;
}

static void join_cgroups(const struct spec *s, pid_t pid) {
  char path[4096], num[32];
  int len = snprintf(num, sizeof(num), "%d", (int)pid);
  for (int i = 0; i < s->ncgroups; i++) {
    snprintf(path, sizeof(path), "%s/cgroup.procs", s->cgroups[i]);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, num, (size_t)len) != len) {
      int e = errno;
      kill(pid, SIGKILL);
      fail(e, "join cgroup %s", s->cgroups[i]);
    }
    close(fd);
  }
}

/* The step's PID 1 until exec: waits for the supervisor to place it in its cgroups, then
 * builds the sandbox and becomes the command. */
static void step_init(const struct spec *s, int go_fd) {
  char c;
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) fail(errno, "pdeathsig");
  if (go_fd >= 0) {
    if (read(go_fd, &c, 1) != 1) _exit(125); /* the supervisor died or gave up */
    close(go_fd);
  }
  if (fcntl(status_fd, F_SETFD, FD_CLOEXEC) < 0) fail(errno, "status fd");
  /* After the cgroup move, so the step sees its own cgroup as the root. */
  if (s->ncgroups > 0 && unshare(CLONE_NEWCGROUP) < 0) fail(errno, "cgroup namespace");
  if (s->net_none) bring_loopback_up();
  if (sethostname(s->hostname, strlen(s->hostname)) < 0) fail(errno, "sethostname");
  timing("init");
  setup_rootfs(s);
  timing("rootfs");
  apply_rlimits(s);
  apply_security(s);
  timing("security");
  environ = s->envp;
  execvp(s->argv[0], s->argv);
  int e = errno;
  fprintf(stderr, "kiln-sandbox: %s: %s\n", s->argv[0], strerror(e));
  _exit(e == ENOENT ? 127 : 126);
}

static volatile pid_t step_pid;

/* The init writes to it once the root overlay is mounted: from then on the supervisor removes the
 * overlay's volatile markers from the workdir while the step runs, instead of after it. */
static int mounted_pipe[2] = {-1, -1};

void overlay_mounted(void) {
  if (mounted_pipe[1] < 0) return;
  /* Best effort: if the supervisor is gone, the markers stay for the cleanup after the step. */
  ssize_t w = write(mounted_pipe[1], "o", 1);
  (void)w;
  close(mounted_pipe[1]);
  mounted_pipe[1] = -1;
}

static void await_overlay_then_remove_markers(const struct spec *s) {
  if (mounted_pipe[0] < 0) return;
  char c;
  ssize_t r;
  do r = read(mounted_pipe[0], &c, 1);
  while (r < 0 && errno == EINTR);
  close(mounted_pipe[0]);
  if (r == 1) remove_overlay_markers(s->workdir);
  timing("markers");
}

static void on_stop_signal(int sig) {
  (void)sig;
  if (step_pid > 0) kill(step_pid, SIGKILL);
}

int main(void) {
  struct spec s;
  size_t size;
  /* Dies with kiln, and takes the step with it (the step's init has the same setting). */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) fail(errno, "pdeathsig");
  if (getppid() == 1) return 125;
  clock_gettime(CLOCK_MONOTONIC, &t_start);
  timing_on = getenv("KILN_SANDBOX_TIMING") != NULL;
  char *buf = read_all(status_fd, &size);
  if (parse_spec(buf, size, &s) < 0) fail(0, "malformed spec");

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sigaction(SIGQUIT, &sa, NULL);

  stub_log_init();
  /* Only a step with cgroups waits to be moved into them before it starts; the others go at once. */
  int go[2] = {-1, -1};
  if (s.ncgroups > 0 && pipe2(go, O_CLOEXEC) < 0) fail(errno, "pipe");
  if (s.workdir && pipe2(mounted_pipe, O_CLOEXEC) < 0) fail(errno, "pipe");
  unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
  if (s.net_none) flags |= CLONE_NEWNET;
  /* A fork with namespace flags: no stack juggling, and this process is single-threaded. */
  pid_t pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
  if (pid < 0) fail(errno, "clone");
  if (pid == 0) {
    if (go[1] >= 0) close(go[1]);
    if (mounted_pipe[0] >= 0) close(mounted_pipe[0]);
    step_init(&s, go[0]);
  }
  step_pid = pid;
  if (mounted_pipe[1] >= 0) {
    close(mounted_pipe[1]);
    mounted_pipe[1] = -1;
  }
  timing("cloned");
  if (go[0] >= 0) {
    close(go[0]);
    join_cgroups(&s, pid);
    if (write(go[1], "g", 1) != 1) {
      kill(pid, SIGKILL);
      fail(errno, "start the step");
    }
    close(go[1]);
  }
  await_overlay_then_remove_markers(&s);

  int st;
  for (;;) {
    pid_t w = waitpid(pid, &st, 0);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) fail(errno, "waitpid");
  }
  timing("reaped");
  clean_after_step(&s);
  timing("cleaned");
  if (WIFEXITED(st)) report("exit %d", WEXITSTATUS(st));
  else if (WIFSIGNALED(st)) report("signal %d", WTERMSIG(st));
  return 0;
}
