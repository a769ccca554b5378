/*
 * actions: the console's writes (requeue, pause, resume) run as the
 * `relayq` command itself, so a click changes Redis exactly as the
 * documented CLI command does: same script, same checks, same messages.
 * The Redis URL travels in the child's environment (RELAYQ_REDIS_URL),
 * never on its command line, where other users could read a password in
 * the process list. Output is bounded; the child gets 30 s.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "web.h"

#define OUTPUT_MAX 65536
#define CHILD_MS 30000

static void child(const struct web_app *app, const char *const *args, int out) {
  dup2(out, STDOUT_FILENO);
  dup2(out, STDERR_FILENO);
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, STDIN_FILENO);
  setenv("RELAYQ_REDIS_URL", app->redis_url, 1);
  setenv("RELAYQ_PREFIX", app->prefix, 1);
  const char *argv[16];
  size_t n = 0;
  argv[n++] = "relayq";
  for (size_t i = 0; args[i] && n < 15; i++) argv[n++] = args[i];
  argv[n] = NULL;
  execv(app->self_exe, (char *const *)argv);
  dprintf(out, "cannot run %s: %s\n", app->self_exe, strerror(errno));
  _exit(127);
}

int web_run_cli(const struct web_app *app, const char *const *args, struct rq_buf *out) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    close(fds[0]);
    /* The write end must survive exec: clear its close-on-exec flag. */
    fcntl(fds[1], F_SETFD, 0);
    child(app, args, fds[1]);
  }
  close(fds[1]);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  char buf[4096];
  for (;;) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long left = CHILD_MS - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
    if (left <= 0) {
      kill(pid, SIGKILL);
      rq_buf_puts(out, "\n(the command took longer than 30 s and was stopped)\n");
      break;
    }
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    ssize_t got = read(fds[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    if (out->len < OUTPUT_MAX) rq_buf_append(out, buf, (size_t)got);
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
