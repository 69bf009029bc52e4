# Operations: the metrics registry (pb_metrics) and the HTTP server that
# exposes /metrics, /healthz and /readyz (pb_ops, libmicrohttpd on its own
# thread). pb_metrics has no dependency beyond pthreads and libm so every
# module can link it.
add_library(pb_metrics STATIC src/ops/metrics.c src/ops/kstats.c src/ops/procstat.c)
target_include_directories(pb_metrics PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(pb_metrics PUBLIC pb_base Threads::Threads m)

add_library(pb_ops STATIC src/ops/ops.c)
target_include_directories(pb_ops PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(pb_ops PUBLIC pb_metrics pb_base PkgConfig::MHD
                      Threads::Threads)

pb_unit_test(test_metrics tests/unit/test_metrics.c pb_metrics)
pb_unit_test(test_ops tests/unit/test_ops.c pb_ops PkgConfig::CURL)

# Schema self-tests and manifest validation need python3-jsonschema and
# node/npm respectively; registered only when the tools exist so a bare
# build still runs its unit tests.
find_program(PB_PYTHON3 python3)
if(PB_PYTHON3)
  add_test(NAME schemas_check
           COMMAND ${PROJECT_SOURCE_DIR}/tests/schemas/check.sh)
  set_tests_properties(schemas_check PROPERTIES LABELS "schemas"
                       SKIP_RETURN_CODE 77)
endif()
find_program(PB_NPM npm)
if(PB_NPM)
  add_test(NAME deploy_validate
           COMMAND ${PROJECT_SOURCE_DIR}/tests/deploy/validate.sh --self-test)
  set_tests_properties(deploy_validate PROPERTIES LABELS "deploy" TIMEOUT 300
                       SKIP_RETURN_CODE 77)
endif()
