# The worker: pipeline and the pruvan-bridge binary. Named to sort after
# the modules it links (config, core, ops, rules).
# produce.c: producer error classes and record size bounds; SHA-256 of the
# parts an outcome record carries truncated comes from OpenSSL's libcrypto.
pkg_check_modules(LIBCRYPTO REQUIRED IMPORTED_TARGET libcrypto)
add_library(pb_produce STATIC src/io/produce.c)
target_link_libraries(pb_produce PUBLIC pb_base PkgConfig::RDKAFKA PkgConfig::LIBCRYPTO)

# The pipeline's pure parts: the outcome record's text and the DLQ copy's
# headers (record.h), the offset carried across a revoke (carry.h). Their
# own library, so that their unit tests link nothing of the loop.
add_library(pb_pipeline_pure STATIC src/pipeline/record.c src/pipeline/carry.c)
target_include_directories(pb_pipeline_pure PUBLIC ${PROJECT_SOURCE_DIR}/src/pipeline)
target_link_libraries(pb_pipeline_pure PUBLIC pb_headers pb_produce pb_base PkgConfig::RDKAFKA
  PkgConfig::JANSSON)
pb_unit_test(test_record tests/unit/test_record.c pb_pipeline_pure)
pb_unit_test(test_carry tests/unit/test_carry.c pb_pipeline_pure)

add_library(pb_pipeline STATIC src/pipeline/build.c src/pipeline/consume.c
  src/pipeline/decide.c src/pipeline/offsets.c src/pipeline/pipeline.c
  src/pipeline/publish.c src/pipeline/rebalance.c src/pipeline/stages.c
  src/pipeline/task.c src/pipeline/counters.c src/io/fetchwake.c)
target_include_directories(pb_pipeline PRIVATE ${PROJECT_SOURCE_DIR}/src/pipeline)
target_link_libraries(pb_pipeline PUBLIC pb_headers pb_pipeline_pure)
target_link_libraries(pb_pipeline PUBLIC pb_kafka_conf pb_base pb_tracker pb_orderq pb_state pb_pusher
  pb_rules pb_metrics pb_produce PkgConfig::RDKAFKA PkgConfig::CURL PkgConfig::JANSSON Threads::Threads)

add_library(pb_replay STATIC src/cli/replay.c)
target_link_libraries(pb_replay PUBLIC pb_headers pb_kafka_conf pb_base pb_config PkgConfig::RDKAFKA)

add_executable(pruvan-bridge src/cli/main.c)
target_compile_definitions(pruvan-bridge PRIVATE PB_VERSION="${PROJECT_VERSION}")
target_link_libraries(pruvan-bridge PRIVATE pb_cli pb_explain pb_pipeline pb_replay pb_watch pb_ops
  pb_relay pb_metrics pb_config pb_state pb_state_repair pb_base PkgConfig::RDKAFKA PkgConfig::CURL Threads::Threads)
# jemalloc as the allocator: the loop allocates and frees many small JSON
# nodes per event next to large pipelined Redis buffers, which makes glibc
# malloc consolidate and split chunks on the hot path (the benchmark in
# docs/benchmarks.md measured +35% events/s). Optional: built without it
# when the library is missing, and never under the sanitizers.
option(PB_JEMALLOC "Link pruvan-bridge against jemalloc when available" ON)
if(PB_JEMALLOC AND NOT PB_SANITIZE)
  pkg_check_modules(JEMALLOC QUIET IMPORTED_TARGET jemalloc)
  if(JEMALLOC_FOUND)
    target_sources(pruvan-bridge PRIVATE src/core/alloc_conf.c)
    target_link_libraries(pruvan-bridge PRIVATE PkgConfig::JEMALLOC)
  else()
    message(STATUS "jemalloc not found (libjemalloc-dev): pruvan-bridge uses the libc allocator")
  endif()
endif()
install(TARGETS pruvan-bridge RUNTIME DESTINATION bin)

pb_unit_test(test_produce tests/unit/test_produce.c pb_produce)
