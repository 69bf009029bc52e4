# Command line (pb_cli: the option tables, the parser and the help texts,
# pure) and `explain` (pb_explain: the rules' decision for given events,
# described as a table or JSON; reads Redis only with --with-state).
add_library(pb_cli STATIC src/cli.c)
target_include_directories(pb_cli PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(pb_cli PUBLIC pb_base)
pb_unit_test(test_cli tests/unit/test_cli.c pb_cli)

add_library(pb_explain STATIC src/explain.c)
target_include_directories(pb_explain PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(pb_explain PUBLIC pb_rules pb_state pb_config pb_base
                      PkgConfig::JANSSON)
pb_unit_test(test_explain tests/unit/test_explain.c pb_explain)

# check-config: kafka properties applied to librdkafka, --no-env.
pb_unit_test(test_config_check tests/unit/test_config_check.c pb_kafka_conf)
