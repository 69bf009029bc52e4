# Integration tests against real services: redis-server (from PATH), a
# librdkafka mock cluster inside the test process, the Pruvan simulator and
# pruvan-bridge itself as subprocesses. Harness: tests/harness/; suites:
# tests/integration/ (one executable each, so ctest -j runs them in
# parallel). Run them with `ctest -L integration -j2`.
add_library(pb_harness STATIC tests/harness/harness.c)
target_include_directories(pb_harness PUBLIC ${PROJECT_SOURCE_DIR}/tests/harness)
target_link_libraries(pb_harness PUBLIC pb_base PkgConfig::RDKAFKA
  PkgConfig::CURL PkgConfig::JANSSON)

find_program(PB_REDIS_SERVER redis-server)
find_program(PB_PYTHON3 python3)

# pb_integration_test(NAME SOURCE): a cmocka suite using the harness.
function(pb_integration_test name source)
  add_executable(${name} ${source})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src
                                             ${PROJECT_SOURCE_DIR}/tests/harness)
  target_link_libraries(${name} PRIVATE pb_harness PkgConfig::CMOCKA)
  add_dependencies(${name} pruvan-bridge pruvan-sim)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "PB_BRIDGE=$<TARGET_FILE:pruvan-bridge>;PB_SIM=$<TARGET_FILE:pruvan-sim>;PB_FIXTURES=${PROJECT_SOURCE_DIR}/tests/fixtures;PB_SCHEMAS=${PROJECT_SOURCE_DIR}/docs/schemas;PB_PYTHON3=${PB_PYTHON3};ASAN_OPTIONS=detect_leaks=1"
    LABELS integration
    TIMEOUT 300)
endfunction()

if(PB_REDIS_SERVER)
  file(GLOB PB_IT_SOURCES CONFIGURE_DEPENDS
       ${PROJECT_SOURCE_DIR}/tests/integration/test_*.c)
  foreach(src ${PB_IT_SOURCES})
    get_filename_component(tname ${src} NAME_WE)
    pb_integration_test(it_${tname} ${src})
  endforeach()
else()
  message(STATUS "redis-server not found: integration tests not registered")
endif()

# The state suite calls the Redis state module directly.
if(TARGET it_test_state)
  target_link_libraries(it_test_state PRIVATE pb_state)
endif()

# Redis as production runs it (TLS, ACL, Sentinel) for test_redis_prod.
target_sources(pb_harness PRIVATE tests/harness/harness_redis.c)
target_link_libraries(pb_harness PUBLIC PkgConfig::HIREDIS)
if(TARGET it_test_redis_prod)
  target_link_libraries(it_test_redis_prod PRIVATE pb_state)
endif()
if(TARGET it_test_egress)
  target_link_libraries(it_test_egress PRIVATE Threads::Threads)
endif()

# Suites that race real timeouts against injected broker errors or a
# shutdown grace period (message.timeout.ms 1000, a 1.5 s grace) run
# alone, so that a loaded machine does not stretch them past their bounds.
foreach(t it_test_rel_produce it_test_relay_pushkey)
  if(TARGET ${t})
    set_tests_properties(${t} PROPERTIES RUN_SERIAL TRUE)
  endif()
endforeach()
