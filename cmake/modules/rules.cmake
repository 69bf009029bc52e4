# Rules module: Pruvan's integration rules as a pure library (pb_rules).
#
# The status table is generated from spec/status-matrix.csv at build time
# by a small C tool, so editing the CSV rebuilds the table and the code and
# the table cannot drift.
add_executable(pb_gen_status_table tools/gen_status_table.c)

set(PB_STATUS_CSV ${PROJECT_SOURCE_DIR}/spec/status-matrix.csv)
set(PB_STATUS_TABLE_C ${CMAKE_CURRENT_BINARY_DIR}/generated/status_table.c)
add_custom_command(
  OUTPUT ${PB_STATUS_TABLE_C}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/generated
  COMMAND pb_gen_status_table ${PB_STATUS_CSV} ${PB_STATUS_TABLE_C}
  DEPENDS pb_gen_status_table ${PB_STATUS_CSV}
  COMMENT "Generating the status table from spec/status-matrix.csv"
  VERBATIM)

set(PB_RULES_SOURCES src/rules/rules.c src/rules/rules_event.c src/rules/rules_dates.c
    src/rules/rules_source.c
    ${PB_STATUS_TABLE_C})
add_library(pb_rules STATIC ${PB_RULES_SOURCES})
target_include_directories(pb_rules PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(pb_rules PUBLIC pb_base PkgConfig::JANSSON)

pb_unit_test(test_rules tests/unit/test_rules.c pb_rules)
pb_unit_test(test_rules_cases tests/unit/test_rules_cases.c pb_rules)
pb_unit_test(test_rules_matrix tests/unit/test_rules_matrix.c pb_rules)

# Fuzz inputs that once crashed (and the seed corpora) are replayed through
# the fuzz targets' entry points in every normal build, without libFuzzer.
foreach(kind event response)
  add_executable(fuzz_replay_${kind} tests/fuzz/replay.c tests/fuzz/fuzz_${kind}.c)
  target_link_libraries(fuzz_replay_${kind} PRIVATE pb_rules)
  add_test(NAME fuzz_replay_${kind}
           COMMAND fuzz_replay_${kind}
                   ${PROJECT_SOURCE_DIR}/tests/fuzz/regressions/${kind}
                   ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${kind})
  set_tests_properties(fuzz_replay_${kind} PROPERTIES LABELS unit)
endforeach()

# libFuzzer targets (tests/fuzz/run.sh): the library is rebuilt with
# coverage instrumentation so it is fuzzed, not just the harness.
if(PB_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "PB_FUZZ needs clang (libFuzzer)")
  endif()
  add_library(pb_rules_fuzz STATIC ${PB_RULES_SOURCES})
  target_include_directories(pb_rules_fuzz PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(pb_rules_fuzz PRIVATE
                         -fsanitize=fuzzer-no-link,address,undefined)
  target_link_libraries(pb_rules_fuzz PUBLIC pb_base PkgConfig::JANSSON)
  foreach(kind event response)
    add_executable(fuzz_${kind} tests/fuzz/fuzz_${kind}.c)
    target_compile_options(fuzz_${kind} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(fuzz_${kind} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(fuzz_${kind} PRIVATE pb_rules_fuzz)
  endforeach()
endif()
