/*
 * alloc_conf.c: jemalloc's tuning for pruvan-bridge, linked only when the
 * binary links jemalloc (cmake/modules/worker.cmake).
 *
 * jemalloc reads this symbol at start-up. Two arenas instead of four per
 * core: one thread (the pipeline loop) does nearly all allocation, the
 * librdkafka and ops threads little, and every extra arena keeps pages of
 * its own. Dirty pages go back to the kernel after one second instead of
 * ten, so the resident size follows the events held rather than the peak
 * (docs/benchmarks.md: peak RSS). Blocks up to 256 KiB are kept in the
 * thread's cache when freed (32 KiB by default): librdkafka's LZ4
 * compressor allocates and frees its context and block buffers for every
 * message set, and the stages their per-batch arrays; from the arena,
 * those pages were purged and faulted in again each time (5% of the
 * worker's CPU in madvise and page faults), for about 1.5 MiB more
 * resident. MALLOC_CONF in the environment still overrides each of these.
 */
const char *malloc_conf =
    "narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0,tcache_max:262144";
