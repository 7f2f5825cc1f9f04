/* Goal hooks for the sanitizer stress runs (.ci/sanitize-stress.sh): installed
   before `main`, they hold every emptied page back for 20-30 ms (a tag per
   10 ms tick of the monotonic clock), so the stress program's threads reuse waiting
   pages, abandon them with goals pending at thread exit, and reclaim and
   release them on other threads: the paths of delayed page reuse, under the
   sanitizer, without gcmalloc's Rust side. Like gcmalloc's own hooks they
   neither allocate nor block, and a goal, once reached, stays reached. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include "mimalloc.h"
#include "mimalloc/internal.h"  // and so csrc/gcmalloc.h, which declares the hooks

static uint32_t tick(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint32_t)((uint64_t)now.tv_sec * 100 + (uint64_t)now.tv_nsec / 10000000);
}

// Relaxed: counts for the summary, read after every other thread ended.
static atomic_size_t goals;
static atomic_size_t held;

static uint32_t goal(size_t page_bytes) {
  (void)page_bytes;
  atomic_fetch_add_explicit(&goals, 1, memory_order_relaxed);
  const uint32_t g = tick() + 3;
  return (g == 0 ? 1 : g);  // 0 would mean "reuse at once"
}

static bool reached(uint32_t g) {
  const bool yes = (int32_t)(tick() - g) >= 0;  // by signed difference: the tick wraps
  if (!yes) atomic_fetch_add_explicit(&held, 1, memory_order_relaxed);
  return yes;
}

__attribute__((constructor)) static void install_goal_hooks(void) {
  mi_page_delay_set_hooks(&goal, &reached);
}

// Shows that the run exercised the delay: goals given, and pages found
// still waiting (held back) when asked.
__attribute__((destructor)) static void show_goal_counts(void) {
  mi_acct_usage_t usage;
  mi_acct_usage(&usage);
  printf("goal hooks: %zu goals, %zu times a page was held back, %zu pages waiting at exit\n",
         atomic_load_explicit(&goals, memory_order_relaxed), atomic_load_explicit(&held, memory_order_relaxed),
         usage.delayed_pages);
}
