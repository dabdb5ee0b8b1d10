/* Loaded into tritonserver with LD_PRELOAD (triton_ner/server/wakeup.py): Triton's scheduler threads never sleep
 * on a condition variable for more than WAKEUP_NS at a time.
 *
 * Triton's dynamic batcher (core DynamicBatchScheduler::WaitForPayloadSlotAvailable, every release up to now) waits
 * up to 500 ms for an idle model instance when the model has a queue policy. It is woken by the payload's
 * completion callback, which runs before the instance thread counts itself idle again (RateLimiter::DequeuePayload):
 * when the last busy instances finish together, every wake-up comes too early, the batcher sleeps its 500 ms out,
 * and the queued requests wait with every instance idle. A condition-variable wait may always end early (POSIX's
 * spurious wake-up); libstdc++'s wait_for then checks the clock and its predicate and waits again. Ending the
 * scheduler threads' waits every WAKEUP_NS turns a lost wake-up into a delay of at most that.
 *
 * Scheduler threads are the ones that set their own niceness at start (the dynamic and sequence batchers and the
 * model instances' threads, whose own waits are untimed); every other thread is left alone. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WAKEUP_NS 2000000LL /* 2 ms */

typedef int (*setpriority_fn)(__priority_which_t, id_t, int);
typedef int (*clockwait_fn)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *);

static __thread int scheduler_thread;

int setpriority(__priority_which_t which, id_t who, int prio) {
  static setpriority_fn real;
  if (!real) real = (setpriority_fn)dlsym(RTLD_NEXT, "setpriority");
  if (which == PRIO_PROCESS && who == (id_t)syscall(SYS_gettid)) scheduler_thread = 1;
  return real(which, who, prio);
}

int pthread_cond_clockwait(pthread_cond_t *cond, pthread_mutex_t *mutex, clockid_t clock,
                           const struct timespec *abstime) {
  static clockwait_fn real;
  if (!real) real = (clockwait_fn)dlsym(RTLD_NEXT, "pthread_cond_clockwait");
  if (scheduler_thread) {
    struct timespec now;
    clock_gettime(clock, &now);
    long long left = (abstime->tv_sec - now.tv_sec) * 1000000000LL + (abstime->tv_nsec - now.tv_nsec);
    if (left > WAKEUP_NS) {
      long long at = now.tv_sec * 1000000000LL + now.tv_nsec + WAKEUP_NS;
      struct timespec sooner = {at / 1000000000LL, at % 1000000000LL};
      int done = real(cond, mutex, clock, &sooner);
      return done == ETIMEDOUT ? 0 : done; /* the caller's deadline has not passed: a spurious wake-up */
    }
  }
  return real(cond, mutex, clock, abstime);
}
