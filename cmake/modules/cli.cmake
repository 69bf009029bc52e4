# Command line (pb_cli: the option tables, the parser and the help texts,
# pure) and `explain` (pb_explain: the rules' decision for given events,
# described as a table or JSON; reads Redis only with --with-state).
add_library(pb_cli STATIC src/cli/cli.c)
target_include_directories(pb_cli PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(pb_cli PUBLIC pb_base)
pb_unit_test(test_cli tests/unit/test_cli.c pb_cli)

add_library(pb_explain STATIC src/cli/explain.c)
target_include_directories(pb_explain PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(pb_explain PUBLIC pb_rules pb_state pb_config pb_base
                      PkgConfig::JANSSON)
pb_unit_test(test_explain tests/unit/test_explain.c pb_explain)

# check-config: kafka properties applied to librdkafka, --no-env.
pb_unit_test(test_config_check tests/unit/test_config_check.c pb_kafka_conf)

# The back office's Kafka headers through outcome, DLQ and replay
# (pb_headers), and Schema Registry framing on input records (in the same
# small library: both are what the worker does with a record's envelope).
add_library(pb_headers STATIC src/io/headers.c src/io/framing.c)
target_include_directories(pb_headers PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(pb_headers PUBLIC pb_base PkgConfig::RDKAFKA)
pb_unit_test(test_headers tests/unit/test_headers.c pb_headers)

# The explain-with-state suite reads Redis's key count directly.
function(pb_cli_link_it)
  if(TARGET it_test_cli_live)
    target_link_libraries(it_test_cli_live PRIVATE PkgConfig::HIREDIS)
  endif()
endfunction()
pb_after_modules(pb_cli_link_it)

# The configuration reference: docs/configuration.md and
# docs/schemas/config.schema.json generated from src/config/config.c. The test
# regenerates both into the build tree and diffs them against the
# committed files, then validates config/*.json, config/examples/*.json and
# the deploy ConfigMap's config.json against the schema and checks each
# example with `check-config --no-env`. Regenerate with
#   cmake --build build --target config_reference
add_executable(gen_config_doc tools/gen_config_doc.c)
target_link_libraries(gen_config_doc PRIVATE pb_config)
add_custom_target(config_reference
  COMMAND gen_config_doc ${PROJECT_SOURCE_DIR}/docs/configuration.md
          ${PROJECT_SOURCE_DIR}/docs/schemas/config.schema.json
  COMMENT "Writing docs/configuration.md and docs/schemas/config.schema.json")
function(pb_cli_add_reference_test)
  if(NOT (PB_PYTHON3 AND TARGET pruvan-bridge))
    return()
  endif()
  add_test(NAME config_reference
    COMMAND ${PROJECT_SOURCE_DIR}/tests/config/check_reference.sh
            $<TARGET_FILE:gen_config_doc> $<TARGET_FILE:pruvan-bridge>
            ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR}/config-reference)
  set_tests_properties(config_reference PROPERTIES LABELS "schemas"
                       SKIP_RETURN_CODE 77)
endfunction()
pb_after_modules(pb_cli_add_reference_test)

# librdkafka's statistics and the process_* metrics (in pb_metrics).
pb_unit_test(test_kstats tests/unit/test_kstats.c pb_metrics)

# The Grafana dashboard (deploy/grafana/) and the alerts: every PromQL
# expression parsed by promtool (as recording rules) and naming only
# metrics the worker declares.
# (python3 looked up here too: ops.cmake, which also looks, may come after
# this file, and a first configure would then leave the test out)
find_program(PB_PROMTOOL promtool)
find_program(PB_PYTHON3 python3)
if(PB_PROMTOOL AND PB_PYTHON3)
  add_test(NAME grafana_dashboard
    COMMAND ${PROJECT_SOURCE_DIR}/tests/grafana/check_dashboard.sh
            ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR}/grafana-check)
  set_tests_properties(grafana_dashboard PROPERTIES LABELS "deploy"
                       SKIP_RETURN_CODE 77)
endif()

# OIDC tokens for SASL/OAUTHBEARER, fetched by the worker (in pb_kafka_conf).
pb_unit_test(test_oidc tests/unit/test_oidc.c pb_kafka_conf PkgConfig::MHD)
