# pruvan-sim: the Pruvan simulator (tools/pruvan-sim.c, model in
# tools/sim_state.c, sim_batch.c, sim_store.c) and its integration test,
# which starts the real binary on a free port and drives it over HTTP.
add_executable(pruvan-sim tools/pruvan-sim.c tools/sim_state.c
                          tools/sim_batch.c tools/sim_store.c)
target_include_directories(pruvan-sim PRIVATE ${PROJECT_SOURCE_DIR}/src
                                              ${PROJECT_SOURCE_DIR}/tools)
target_link_libraries(pruvan-sim PRIVATE pb_base PkgConfig::MHD
                                         PkgConfig::JANSSON Threads::Threads)
set_target_properties(pruvan-sim PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

add_executable(test_sim tests/unit/test_sim.c)
target_include_directories(test_sim PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(test_sim PRIVATE pb_base PkgConfig::CURL
                                       PkgConfig::JANSSON PkgConfig::CMOCKA)
add_dependencies(test_sim pruvan-sim)
add_test(NAME test_sim COMMAND test_sim $<TARGET_FILE:pruvan-sim>)
set_tests_properties(test_sim PROPERTIES
  ENVIRONMENT "PB_SIM=$<TARGET_FILE:pruvan-sim>;PB_FIXTURES=${PROJECT_SOURCE_DIR}/tests/fixtures"
  LABELS integration
  TIMEOUT 120)

# The simulator's body scan against jansson's reading (generated and
# mutated bodies).
pb_unit_test(test_sim_batch tests/unit/test_sim_batch.c pb_base
             PkgConfig::JANSSON)
target_sources(test_sim_batch PRIVATE tools/sim_batch.c)
target_include_directories(test_sim_batch PRIVATE ${PROJECT_SOURCE_DIR}/tools)
