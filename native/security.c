/* The step's privileges: Docker's default capability set, its user and groups, and a seccomp
 * filter refusing (EPERM) every syscall Docker's default profile refuses. no_new_privs stays off,
 * as in BuildKit (which asks for new privileges explicitly): with it, setuid programs such as sudo
 * or su cannot work in a step run as another user. A setuid program reaches no more than the
 * step's root already has: the bounding set and the filter hold for every process of the step. */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sched.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "sandbox.h"

static const int default_caps[] = {
    CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FSETID,  CAP_FOWNER,     CAP_MKNOD,        CAP_NET_RAW,    CAP_SETGID,
    CAP_SETUID, CAP_SETFCAP,     CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL, CAP_AUDIT_WRITE};

static int is_default_cap(int c) {
  for (size_t i = 0; i < sizeof(default_caps) / sizeof(default_caps[0]); i++)
    if (default_caps[i] == c) return 1;
  return 0;
}

static int last_cap(void) {
  FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "r");
  int n = CAP_LAST_CAP;
  if (f) {
    if (fscanf(f, "%d", &n) != 1) n = CAP_LAST_CAP;
    fclose(f);
  }
  return n;
}

static void drop_bounding_set(int last) {
  for (int c = 0; c <= last; c++)
    if (!is_default_cap(c) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
      fail(errno, "drop capability %d", c);
}

static void set_caps(void) {
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof(data));
  for (size_t i = 0; i < sizeof(default_caps) / sizeof(default_caps[0]); i++) {
    int c = default_caps[i];
    data[c / 32].effective |= 1u << (c % 32);
    data[c / 32].permitted |= 1u << (c % 32);
  }
  if (syscall(SYS_capset, &hdr, data) < 0) fail(errno, "capset");
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

/* The filter is compiled at build time by gen/seccomp-gen.c (see the Makefile). */
#include "seccomp-bpf.h"

static void install_seccomp(void) {
  struct sock_fprog prog = {
      .len = (unsigned short)(sizeof(seccomp_bpf) / sizeof(struct sock_filter)),
      .filter = (struct sock_filter *)(void *)seccomp_bpf,
  };
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) fail(errno, "seccomp");
}

void apply_security(const struct spec *s) {
  if (!s->insecure) drop_bounding_set(last_cap());
  /* Before the user changes: without no_new_privs, loading a filter takes CAP_SYS_ADMIN. The
   * filter allows what follows (Docker's profile does too). */
  if (!s->insecure) install_seccomp();
  if (setgroups((size_t)s->ngroups, s->groups) < 0) fail(errno, "setgroups");
  if (setresgid(s->gid, s->gid, s->gid) < 0) fail(errno, "setgid %u", (unsigned)s->gid);
  if (setresuid(s->uid, s->uid, s->uid) < 0) fail(errno, "setuid %u", (unsigned)s->uid);
  /* A non-root uid has already lost every capability with setuid. */
  if (s->uid == 0 && !s->insecure) set_caps();
  timing("creds");
  /* Credentials changed above, which clears the parent-death signal: set it again. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) fail(errno, "pdeathsig");
}

void bring_loopback_up(void) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) fail(errno, "socket");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) fail(errno, "get lo flags");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) fail(errno, "bring lo up");
  close(sock);
}
